// The Pyramid step: the output's downsampled levels built by many bounded tasks instead of
// one pass in Finalize (which one 15-minute Lambda could not finish past ~5·10^10 voxels).
//
//   level l:  `level` call ─► creates array "l", returns the range tasks' first blocks
//             PyramidTasks Map ─► `range` calls, ≤ blocksPerTask level-l blocks each
//   then l + 1, until `level` answers done; Finalize then writes metadata and the report.
//
// Level l is built from level l-1 only, so a level fans out once the one below is final
// (the Map's end). Every call rewrites identical bytes: a retried or re-driven task is safe.

import type {
  PyramidLevelResult,
  PyramidRangeEvent,
  PyramidRangeResult,
  PyramidTaskEvent,
} from '../../contracts/cloud.ts';
import type { JobContext } from '../pipeline/context.ts';
import { isLabelOutput } from '../pipeline/convert.ts';
import { checkOutputOwner } from '../volume/index.ts';
import { buildPyramidTask, type PyramidOptions, preparePyramidLevel } from '../volume/pyramid.ts';
import type { CloudDeps } from './deps.ts';
import { loadCloudJob } from './manifest-intake.ts';

export async function pyramidStep(
  deps: CloudDeps,
  e: PyramidTaskEvent,
): Promise<PyramidLevelResult | PyramidRangeResult> {
  const ctx = await loadCloudJob(deps, e.jobId);
  return e.step === 'level' ? pyramidLevel(ctx, e.level) : pyramidRange(ctx, e);
}

/** What the manifest asks of the pyramid. */
export function pyramidOptions(ctx: JobContext): PyramidOptions {
  const voxelSize = ctx.input.voxelSize;
  return {
    levels: ctx.manifest.output.pyramid ?? 0,
    ...(voxelSize ? { voxelSize } : {}),
    ...(isLabelOutput(ctx.manifest.output.transform) ? { sampling: 'nearest' as const } : {}),
  };
}

/** Creates level `level` and lists its tasks; done when the pyramid has no such level. */
export async function pyramidLevel(ctx: JobContext, level: number): Promise<PyramidLevelResult> {
  const o = pyramidOptions(ctx);
  const done = { jobId: ctx.jobId, level, done: true, blocksPerTask: 0, starts: [] };
  if (level > o.levels) return done;
  // The level's array is written here: never into another job's output.
  await checkOutputOwner(ctx.outputStore, ctx.jobId);
  const plan = await preparePyramidLevel(ctx.outputStore, level, o);
  if (!plan) return done;
  return {
    jobId: ctx.jobId,
    level,
    done: false,
    blocksPerTask: plan.blocksPerTask,
    starts: plan.starts,
  };
}

/** One range task: level blocks from..from+blocks-1, read from level - 1. */
export async function pyramidRange(
  ctx: JobContext,
  e: Pick<PyramidRangeEvent, 'level' | 'from' | 'blocks'>,
): Promise<PyramidRangeResult> {
  const { written } = await buildPyramidTask(ctx.outputStore, {
    ...pyramidOptions(ctx),
    level: e.level,
    from: e.from,
    blocks: e.blocks,
    concurrency: 4,
  });
  return { jobId: ctx.jobId, level: e.level, written };
}
