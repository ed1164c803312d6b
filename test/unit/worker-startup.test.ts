// A forked local worker's start-up is on every run's critical path: it takes the manifest
// the coordinator validated, so its code must not load the validator (zod and its ~50
// locale modules cost ~0.1 s of start-up per worker).

import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../fixtures/scripts/worker-imports.ts', import.meta.url));

describe('local worker start-up', () => {
  it("loads the worker's code without the manifest validator", () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', SCRIPT], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      worker: boolean;
      afterManifest: boolean;
    };
    expect(r.afterManifest).toBe(true);
    expect(r.worker).toBe(false);
  });
});
