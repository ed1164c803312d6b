// Start-up is on every run's critical path: a forked local worker takes the manifest its
// coordinator validated, so it must not load the validator (zod and its ~50 locale
// modules, ~0.1 s per worker); `tessera run` and `tessera demo` work on local files, so
// they must not load the AWS SDK the cloud commands need (~0.3 s per command).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../fixtures/scripts/startup-imports.ts', import.meta.url));

describe('what start-up loads', () => {
  it('a local worker loads neither the manifest validator nor the AWS SDK; run and demo load no AWS SDK', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', SCRIPT], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      worker: { zod: boolean; aws: boolean };
      localCommands: { aws: boolean };
      afterCloudCommand: { aws: boolean; zod: boolean };
    };
    // The probes see the dependencies once something loads them.
    expect(r.afterCloudCommand).toEqual({ aws: true, zod: true });
    expect(r.worker).toEqual({ zod: false, aws: false });
    expect(r.localCommands).toEqual({ aws: false });
  });
});
