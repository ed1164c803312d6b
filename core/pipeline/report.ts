// report.json: what a run did, written next to the output by finalize.

import type { StatusCounts } from '../ledger/index.ts';

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
  blocks: { total: number; owned: number; seam: number };
  attempts: { total: number; retriedChunks: number; maxPerChunk: number };
  /** Seconds per step. */
  timings: Record<string, number>;
  /** Per-chunk milliseconds, summarised. */
  chunkMs: { read: Quantiles; infer: Quantiles; write: Quantiles } | undefined;
  failures: { chunkId: string; attempts: number; lastError?: string | undefined }[];
  workers: number;
  device: string;
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
