// `npm run bench -- --only calibrate`: `tessera plan --calibrate`'s predicted wall time of
// `tessera run` against the measured one, for the demo job, each pair back to back.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeDemo } from '../cli/demo.ts';

const CLI = [join(import.meta.dirname, '..', 'bin', 'tessera.js')];

function tessera(args: string[]): { seconds: number; stdout: string } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`tessera ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return { seconds: (performance.now() - t0) / 1000, stdout: r.stdout };
}

/** Predicted and measured seconds of `tessera run` on the demo job, `repeats` pairs. */
export async function calibrateBench(
  repeats = 3,
): Promise<{ predicted: number; measured: number; ratio: number }[]> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-calibrate-'));
  try {
    const manifest = await writeDemo(dir, [96, 192, 192]);
    const pairs = [];
    for (let i = 0; i < repeats; i++) {
      const plan = JSON.parse(tessera(['plan', manifest, '--calibrate', '--json']).stdout) as {
        run: { seconds: number };
      };
      rmSync(join(dir, 'output.zarr'), { recursive: true, force: true });
      rmSync(join(dir, '.tessera'), { recursive: true, force: true });
      const measured = tessera(['run', manifest]).seconds;
      pairs.push({ predicted: plan.run.seconds, measured, ratio: measured / plan.run.seconds });
    }
    return pairs;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
