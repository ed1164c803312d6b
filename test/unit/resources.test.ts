// A worker's reported peak memory must be its own. getrusage's ru_maxrss carries the
// forking parent's RSS over into the child on Linux, so a worker forked by a large
// coordinator (or by the benchmark) would report the parent's memory as its own.

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

const WORKER = new URL('../../cli/local-worker.ts', import.meta.url).href;

describe.runIf(existsSync('/proc/self/status'))('peakRssBytes', () => {
  it("reports the process's own peak, not its parent's", () => {
    const held = new Uint8Array(700 * 2 ** 20).fill(1); // this process: > 700 MiB resident
    const out = execFileSync(
      process.execPath,
      [
        '--import',
        'tsx',
        '--input-type=module',
        '-e',
        `const { peakRssBytes } = await import(${JSON.stringify(WORKER)});
         const grow = new Uint8Array(64 * 2 ** 20).fill(1);
         console.log(JSON.stringify({ peak: peakRssBytes(), grow: grow[1] }));`,
      ],
      { encoding: 'utf8' },
    );
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as { peak: number };
    expect(held[12345]).toBe(1);
    const MiB = 2 ** 20;
    // Its own: the 64 MiB it touched and Node itself, far below the parent's 700 MiB.
    expect(r.peak).toBeGreaterThan(64 * MiB);
    expect(r.peak).toBeLessThan(400 * MiB);
  });
});
