// Finalize: viewer metadata on the output and report.json beside it. Safe to re-run.

import type { Ledger } from '../ledger/index.ts';
import { writeOmeMetadata } from '../volume/index.ts';
import type { JobContext } from './context.ts';
import { type ChunkTiming, type RunReport, summariseTimings } from './report.ts';
import type { VerifyResult } from './verify.ts';

export const REPORT_KEY = '/report.json';

export async function finalizeJob(
  ctx: JobContext,
  o: {
    ledger: Ledger;
    verify: VerifyResult;
    startedAt: Date;
    timings: Record<string, number>;
    chunkTimings?: ChunkTiming[];
    workers: number;
    device: string;
  },
): Promise<RunReport> {
  const { plan, manifest } = ctx;
  if (o.verify.status === 'COMPLETE') {
    await writeOmeMetadata(ctx.outputStore, {
      name: manifest.name,
      channels: manifest.model.outputChannels,
      voxelSize: ctx.input.voxelSize,
    });
  }
  let attempts = 0;
  let retried = 0;
  let maxPer = 0;
  let inferred = 0;
  for await (const row of o.ledger.list(ctx.jobId)) {
    attempts += row.attempts;
    if (row.attempts > 1) retried++;
    maxPer = Math.max(maxPer, row.attempts);
    if (row.status === 'DONE') inferred += plan.describeChunk(row.chunkId).patchCount;
  }
  const finishedAt = new Date();
  const seconds = (finishedAt.getTime() - o.startedAt.getTime()) / 1000;
  const report: RunReport = {
    version: 1,
    jobId: ctx.jobId,
    name: manifest.name,
    status: o.verify.status === 'COMPLETE' ? 'SUCCEEDED' : 'FAILED',
    output: manifest.output.url,
    startedAt: o.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    chunks: { ...o.verify.counts, total: plan.counts.chunks },
    patches: {
      inferred,
      total: plan.counts.patches,
      marginCroppingWouldInfer: Math.round(
        plan.counts.marginCroppingPatchVoxels /
          (plan.patchShape[0] * plan.patchShape[1] * plan.patchShape[2]),
      ),
    },
    voxels: {
      region: plan.counts.regionVoxels,
      patchVoxels: plan.counts.patchVoxels,
      perSecond: seconds > 0 ? Math.round(plan.counts.regionVoxels / seconds) : 0,
    },
    blocks: {
      total: plan.counts.blocks,
      owned: plan.counts.ownedBlocks,
      seam: plan.counts.seamBlocks,
    },
    attempts: { total: attempts, retriedChunks: retried, maxPerChunk: maxPer },
    timings: o.timings,
    chunkMs: summariseTimings(o.chunkTimings ?? []),
    failures: o.verify.poison,
    workers: o.workers,
    device: o.device,
  };
  await ctx.outputStore.set(
    REPORT_KEY,
    new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`),
  );
  return report;
}
