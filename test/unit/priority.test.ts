// On a CPU worker, inference must come first: every thread but the inference threads
// (main, libuv's pool, V8's helpers) is lowered, so they run in the gaps instead of
// stalling onnxruntime's parallel sections. Checked from /proc in a child process (nice
// values are per thread on Linux, and lowering the test runner would slow every test).

import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../fixtures/scripts/priorities.ts', import.meta.url));
const MODEL = fileURLToPath(new URL('../fixtures/models/realistic.onnx', import.meta.url));

describe.runIf(existsSync('/proc/self/task'))('ThreadedModel.yieldToInference', () => {
  it('lowers every thread except the ones that run inference', () => {
    const out = execFileSync(process.execPath, ['--import', 'tsx', SCRIPT, MODEL], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      base: number;
      pid: string;
      threads: { tid: string; nice: number; cpuTicks: number }[];
    };
    const lowered = Math.min(19, r.base + 10);
    const main = r.threads.find((t) => t.tid === r.pid)!;
    expect(main.nice).toBe(lowered);
    // The threads that did the work while only inference ran kept the user's priority...
    const busy = r.threads.filter((t) => t.cpuTicks >= 20);
    expect(busy.length).toBeGreaterThanOrEqual(1);
    for (const t of busy.filter((t) => t.tid !== r.pid))
      expect(t.nice, `thread ${t.tid}`).toBe(r.base);
    // ...and everything else was lowered. Kept: only threads started with the model (its
    // JS thread and that thread's module-loader threads, onnxruntime's pool of 2 - 1).
    const kept = r.threads.filter((t) => t.nice === r.base);
    expect(kept.length).toBeGreaterThanOrEqual(busy.length - 1);
    expect(kept.length).toBeLessThanOrEqual(4);
    expect(r.threads.length - kept.length).toBeGreaterThanOrEqual(5); // main, libuv pool, V8 helpers
    for (const t of r.threads.filter((t) => t.nice !== r.base)) expect(t.nice).toBe(lowered);
  });
});
