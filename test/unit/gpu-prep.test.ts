import { spawnSync } from 'node:child_process';
import { mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const script = new URL('../../bench/gpu-prep.sh', import.meta.url).pathname;

describe('bench/gpu-prep.sh', () => {
  it('is valid bash', () => {
    expect(spawnSync('bash', ['-n', script]).status).toBe(0);
  });
  it('without nvidia-smi it stops at once with a clear message', () => {
    // A PATH holding only the tools the script's first lines need, no nvidia-smi.
    const bin = mkdtempSync(join(tmpdir(), 'fakepath-'));
    for (const tool of ['mkdir', 'tee', 'printf', 'env']) {
      const real = spawnSync('bash', ['-c', `command -v ${tool}`])
        .stdout.toString()
        .trim();
      if (real.startsWith('/')) symlinkSync(real, join(bin, tool));
    }
    const out = mkdtempSync(join(tmpdir(), 'prep-out-'));
    const r = spawnSync(
      process.env.SHELL?.endsWith('bash') ? process.env.SHELL : '/bin/bash',
      [script],
      {
        env: { PATH: bin, OUT: out },
      },
    );
    expect(r.status).toBe(1);
    expect(r.stderr.toString()).toMatch(/nvidia-smi not found on PATH/);
  });
});
