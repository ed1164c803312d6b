// report.json: what a run did, written next to the output by finalize.

import type { Vec3 } from '../geometry/index.ts';
import { ttaFactor } from '../infer/tta.ts';
import type { StatusCounts } from '../ledger/index.ts';
import type { InputNormalisation } from './job-description.ts';

export interface ChunkTiming {
  chunkId: string;
  read: number;
  infer: number;
  write: number;
}

export interface RunReport {
  version: 1;
  jobId: string;
  name: string;
  status: 'SUCCEEDED' | 'FAILED';
  output: string;
  startedAt: string;
  finishedAt: string;
  chunks: StatusCounts & { total: number };
  patches: { inferred: number; total: number; marginCroppingWouldInfer: number };
  voxels: { region: number; patchVoxels: number; perSecond: number };
  /**
   * model.tta: model runs per patch (each patch transformed, the outputs averaged before
   * blending) and the patch voxels the model saw in all (patchVoxels × transforms).
   */
  tta?: { transforms: number; modelPatchVoxels: number };
  blocks: { total: number; owned: number; seam: number };
  attempts: { total: number; retriedChunks: number; maxPerChunk: number };
  /** Seconds per step. */
  timings: Record<string, number>;
  /** Per-chunk milliseconds, summarised. */
  chunkMs: { read: Quantiles; infer: Quantiles; write: Quantiles } | undefined;
  failures: { chunkId: string; attempts: number; lastError?: string | undefined }[];
  workers: number;
  device: string;
  /** The output channels' names (model.channelNames, or "channel 0", ...). */
  channels?: string[];
  /** What the model received: the job's frozen input normalisation. */
  normalization?: InputNormalisation;
  /** Per-chunk read + infer + write milliseconds, binned (local runs; cloud workers report none). */
  chunkHistogram?: Histogram;
  /** Chunks finished (DONE or SKIPPED) per time bin, from the ledger's completion times. */
  timeline?: { start: string; binSeconds: number; chunks: number[] };
  /** Resolution levels of the output (OME-Zarr datasets), level 0 first. */
  levels?: { path: string; shape: Vec3; factor: Vec3 }[];
  /** Files finalize wrote beside report.json (keys in the output group). */
  files?: { preview?: string; html?: string };
  /** Links to open the output in a viewer (neuroglancer, for outputs on S3). */
  viewer?: { neuroglancer?: string };
}

/** report.json's `tta` section: present only when model.tta runs the model more than once. */
export function ttaSection(
  model: Parameters<typeof ttaFactor>[0],
  patchVoxels: number,
): Pick<RunReport, 'tta'> {
  const transforms = ttaFactor(model);
  return transforms > 1 ? { tta: { transforms, modelPatchVoxels: patchVoxels * transforms } } : {};
}

export interface Histogram {
  /** Bin edges, one more than counts. */
  edges: number[];
  counts: number[];
}

/** `bins` equal-width bins over [min, max] of `values` (one bin when they are all equal). */
export function histogram(values: readonly number[], bins = 20): Histogram | undefined {
  if (values.length === 0) return undefined;
  let lo = Number.POSITIVE_INFINITY;
  let hi = Number.NEGATIVE_INFINITY;
  for (const v of values) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
  }
  const n = hi > lo ? bins : 1;
  const width = hi > lo ? (hi - lo) / n : 1;
  const counts = new Array<number>(n).fill(0);
  for (const v of values) counts[Math.min(n - 1, Math.floor((v - lo) / width))]!++;
  const edges = Array.from({ length: n + 1 }, (_, i) => Math.round((lo + i * width) * 10) / 10);
  return { edges, counts };
}

/** Completion times (epoch ms) binned into about `bins` bins from `start`. */
export function timeline(
  times: readonly number[],
  start: number,
  bins = 40,
): RunReport['timeline'] | undefined {
  if (times.length === 0) return undefined;
  const first = Math.min(start, minOf(times));
  const last = maxOf(times);
  const binMs = Math.max(1000, Math.ceil((last - first + 1) / bins / 1000) * 1000);
  const chunks = new Array<number>(Math.max(1, Math.ceil((last - first + 1) / binMs))).fill(0);
  for (const t of times) chunks[Math.floor((t - first) / binMs)]!++;
  return { start: new Date(first).toISOString(), binSeconds: binMs / 1000, chunks };
}

// Loops, not Math.min(...xs): a million completion times would overflow the call stack.
function minOf(xs: readonly number[]): number {
  let m = Number.POSITIVE_INFINITY;
  for (const x of xs) m = Math.min(m, x);
  return m;
}

function maxOf(xs: readonly number[]): number {
  let m = Number.NEGATIVE_INFINITY;
  for (const x of xs) m = Math.max(m, x);
  return m;
}

export interface Quantiles {
  p50: number;
  p95: number;
  max: number;
}

export function quantiles(values: number[]): Quantiles {
  if (values.length === 0) return { p50: 0, p95: 0, max: 0 };
  const s = [...values].sort((a, b) => a - b);
  const at = (q: number): number =>
    Math.round(s[Math.min(s.length - 1, Math.floor(q * s.length))]! * 10) / 10;
  return { p50: at(0.5), p95: at(0.95), max: Math.round(s[s.length - 1]! * 10) / 10 };
}

export function summariseTimings(t: ChunkTiming[]): RunReport['chunkMs'] {
  if (t.length === 0) return undefined;
  return {
    read: quantiles(t.map((x) => x.read)),
    infer: quantiles(t.map((x) => x.infer)),
    write: quantiles(t.map((x) => x.write)),
  };
}
