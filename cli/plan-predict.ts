// `tessera plan --calibrate`'s prediction of a local `tessera run`'s wall time, from two
// real sample runs (the real `runLocal`: worker processes, model loads, reads, inference,
// accumulation, writes, seam blending, finalize, the main thread's contention with the
// inference threads) over small regions at the middle of the input, into a scratch
// directory. Each sample run costs start-up + finish + its patches ÷ the workers that
// share them × seconds per patch; two of them of different size give both parts, and the
// plan's patch count gives the whole run's (see predictRun).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Plan, Vec3 } from '../core/geometry/index.ts';
import type { Manifest } from '../core/manifest/schema.ts';
import { localPathOf } from '../core/manifest/url.ts';
import type { LoadedManifest } from './job-files.ts';
import { runLocal } from './local-run.ts';

/** One timed sample run: its patches and chunks, and the wall seconds it took. */
export interface SampleRun {
  patches: number;
  chunks: number;
  seconds: number;
}

export interface RunPrediction {
  workers: number;
  /** Start-up and finish seconds: the CLI's own start, workers' process and model start, verify, blend tail, finalize. */
  fixedSeconds: number;
  /** Wall seconds per patch for one worker (everything a chunk does, per patch). */
  secondsPerPatch: number;
  /** Workers the run's patches are shared among: min(workers, chunks). */
  sharing: number;
  patches: number;
  seconds: number;
  samples: SampleRun[];
}

/**
 * Wall seconds = cliStart + fixed + patches ÷ sharing × secondsPerPatch, with fixed and
 * secondsPerPatch solved from two sample runs a, b (same workers) of different patch
 * counts: secondsPerPatch = (b.seconds − a.seconds) ÷ (b.patches/sharing_b −
 * a.patches/sharing_a), fixed = a.seconds − a.patches/sharing_a × secondsPerPatch, each
 * sharing = min(workers, chunks). A negative fixed part (noise) is taken as 0 and the
 * per-patch part refitted through the origin from the larger sample.
 */
export function predictRun(
  samples: readonly [SampleRun, SampleRun],
  run: { patches: number; chunks: number; workers: number },
  cliStartSeconds = 0,
): RunPrediction {
  const share = (s: { chunks: number }): number => Math.max(1, Math.min(run.workers, s.chunks));
  const [a, b] = samples[0].patches <= samples[1].patches ? samples : [samples[1], samples[0]];
  const xa = a.patches / share(a);
  const xb = b.patches / share(b);
  let perPatch = xb > xa ? (b.seconds - a.seconds) / (xb - xa) : b.seconds / xb;
  let fixed = a.seconds - xa * perPatch;
  if (fixed < 0 || perPatch <= 0) {
    fixed = 0;
    perPatch = b.seconds / xb;
  }
  const sharing = share(run);
  fixed += cliStartSeconds;
  return {
    workers: run.workers,
    fixedSeconds: fixed,
    secondsPerPatch: perPatch,
    sharing,
    patches: run.patches,
    seconds: fixed + (run.patches / sharing) * perPatch,
    samples: [a, b],
  };
}

/**
 * A region of at least `chunks` whole chunks (where the volume has them) at the middle of
 * the input: chunk pitches added along x, then y, then z.
 */
export function sampleRegion(plan: Plan, chunks: number): { start: Vec3; stop: Vec3 } {
  const pitch = [0, 1, 2].map((a) => plan.patchesPerChunk[a]! * plan.stride[a]!);
  const want = [1, 1, 1];
  for (const a of [2, 1, 0])
    while (want[0]! * want[1]! * want[2]! < chunks && want[a]! < plan.chunkGrid[a]!) want[a]!++;
  const start: number[] = [];
  const stop: number[] = [];
  for (let a = 0; a < 3; a++) {
    const lo = plan.region.start[a]!;
    const hi = plan.region.stop[a]!;
    // The chunks' pitches plus the overlap their last patch reaches past them.
    const size = Math.min(hi - lo, want[a]! * pitch[a]! + plan.overlap[a]!);
    const s = lo + Math.floor((hi - lo - size) / 2);
    start.push(s);
    stop.push(s + size);
  }
  return { start: start as unknown as Vec3, stop: stop as unknown as Vec3 };
}

/** The manifest over `region`, every local URL made absolute, output in `outDir`, no pyramid change. */
export function sampleManifest(
  m: Manifest,
  baseDir: string,
  region: { start: Vec3; stop: Vec3 },
  outDir: string,
): Manifest {
  const abs = (url: string): string => localPathOf(url, baseDir) ?? url;
  return {
    ...m,
    input: { ...m.input, url: abs(m.input.url) },
    model: { ...m.model, url: abs(m.model.url) },
    output: { ...m.output, url: join(outDir, 'output.zarr') },
    region,
  } as Manifest;
}

/**
 * Runs the job twice on regions at the middle of its input (`workers` and 3 × `workers`
 * chunk pitches deep), each into its own scratch directory, and predicts the whole run.
 */
export async function calibrateRun(
  loaded: LoadedManifest,
  plan: Plan,
  o: {
    workers: number;
    batchSize: number;
    /** Seconds the CLI took to start (node, loader, modules) before the command ran. */
    cliStartSeconds?: number;
    log?: (l: string) => void;
  },
): Promise<RunPrediction> {
  const samples: SampleRun[] = [];
  for (const k of [o.workers, 3 * o.workers]) {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-calibrate-'));
    try {
      const manifest = sampleManifest(loaded.manifest, loaded.baseDir, sampleRegion(plan, k), dir);
      const t0 = performance.now();
      const result = await runLocal(
        {
          manifest,
          path: join(dir, 'manifest.json'),
          baseDir: loaded.baseDir,
          jobId: `${loaded.jobId}-calibrate-${k}`,
        },
        { workers: o.workers, batchSize: o.batchSize, stateDir: join(dir, 'state') },
      );
      const seconds = (performance.now() - t0) / 1000;
      if (result.status !== 'SUCCEEDED' || !result.report)
        throw new Error(
          `plan --calibrate: the sample run over ${k} chunk(s) ${result.status}: ${result.message ?? 'no message'}; run the job with tessera run to see why`,
        );
      const sample = {
        patches: result.report.patches.inferred,
        chunks: result.report.chunks.total,
        seconds,
      };
      o.log?.(
        `calibrate: sample run of ${sample.chunks} chunk(s), ${sample.patches} patches: ${seconds.toFixed(2)}s`,
      );
      samples.push(sample);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return predictRun(
    [samples[0]!, samples[1]!],
    { patches: plan.counts.patches, chunks: plan.counts.chunks, workers: o.workers },
    o.cliStartSeconds ?? 0,
  );
}

/** The `run` lines plan prints: the prediction and its parts. */
export function runLines(p: RunPrediction): string[] {
  const [a, b] = p.samples;
  return [
    `run        tessera run here with ${p.workers} worker(s): ≈ ${p.seconds.toFixed(1)}s wall = ` +
      `${p.fixedSeconds.toFixed(2)}s start-up and finish + ${p.patches} patches ÷ ${p.sharing} worker(s) × ${(p.secondsPerPatch * 1000).toFixed(1)} ms per patch`,
    `           from two sample runs at the middle of the input: ${a!.chunks} chunk(s), ${a!.patches} patches in ${a!.seconds.toFixed(2)}s; ` +
      `${b!.chunks} chunk(s), ${b!.patches} patches in ${b!.seconds.toFixed(2)}s (this machine, as loaded now)`,
  ];
}
