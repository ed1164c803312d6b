// The Plan task and the S3 trigger: a manifest object becomes a planned job (the core
// plan step over the stack's memory budget) with its blend items, and the trigger starts
// one execution per job (its name is the job id, so duplicate events start nothing).
// A job of more than PLAN_RANGE_ROWS chunks (deps.planRangeRows) gets its output claim,
// description, blend items and status here but no chunk row: the Plan task opens a range
// plan and reports rangeRows, and the PlanRanges Map writes the rows (plan-ranges.ts).

import type {
  BlendItem,
  ManifestLocation,
  PipelineInput,
  PlanTaskResult,
} from '../../contracts/cloud.ts';
import { KEYS, PLAN_RANGE_ROWS } from '../../contracts/cloud.ts';
import { BLOCKS_PER_BLEND_ITEM } from '../../contracts/stack-sizing.ts';
import { ManifestError } from '../manifest/index.ts';
import { checkJobFits, type JobContext } from '../pipeline/index.ts';
import { CLOUD_WORKER_MEMORY_MIB } from '../pipeline/memory-estimate.ts';
import { planStep } from '../pipeline/steps.ts';
import type { CloudDeps } from './deps.ts';
import {
  type AcceptOutcome,
  acceptManifest,
  contextFor,
  rejectManifest,
  triggerLocationProblem,
} from './manifest-intake.ts';
import { planRangeItems, rangePlannerOf, rangeRowsFor } from './plan-ranges.ts';
import { encodeJson as enc, bucketKey as key, readStatus, writeStatus } from './status.ts';

export type PlanOutcome =
  | { kind: 'planned'; result: PlanTaskResult; created: boolean }
  | Extract<AcceptOutcome, { kind: 'rejected' }>;

/**
 * The Plan task: accept, then claim the output and create the ledger rows (or, past
 * planRangeRows chunks, open the range plan the PlanRanges Map fills), the blend items and
 * the status (idempotent).
 */
export async function planFromManifest(
  deps: CloudDeps,
  loc: ManifestLocation,
  o: {
    /**
     * No state machine follows this plan (the trigger's inline plan on a bare data plane):
     * write every row here, whatever the chunk count, as nothing would run the ranges.
     */
    inline?: boolean;
  } = {},
): Promise<PlanOutcome> {
  const accepted = await acceptManifest(deps, loc);
  if (accepted.kind === 'rejected') return accepted;
  const { jobId, manifest } = accepted;
  const ctx = await contextFor(deps, jobId, manifest);
  // Workers that cannot fit in the stack's job definition would fail every chunk: refused
  // here, before any row exists. The model is not read in a Lambda (up to 2 GiB, and no
  // inference runtime in the bundle): each worker checks its signature once, at load.
  const device = manifest.compute.device;
  const fit = checkJobFits(ctx, {
    model: 'skip',
    workers: 1,
    memory: {
      bytes: CLOUD_WORKER_MEMORY_MIB[device] * 2 ** 20,
      source: `the stack's ${device.toUpperCase()} worker job definition (${CLOUD_WORKER_MEMORY_MIB[device]} MiB)`,
    },
  });
  const chunks = ctx.plan.counts.chunks;
  const rangeRows = o.inline ? 0 : rangeRowsFor(chunks, deps.planRangeRows ?? PLAN_RANGE_ROWS);
  // Narrowed before anything is written: a ledger that cannot plan in ranges is refused
  // while the job has no output claim and no rows.
  const inRanges = rangeRows > 0 ? rangePlannerOf(deps.ledger, jobId) : undefined;
  const { created, workers } = await planStep(ctx, deps.ledger, {
    fit,
    maxWorkers: manifest.compute.maxWorkers,
    leaseMs: deps.leaseMs,
    ...(inRanges ? { inRanges } : {}),
    // A job holding this output.url may hand it over (once its output is deleted) only
    // when its status says it ended: a planned job's workers may not have started yet.
    isJobOver: async (id) => {
      const s = await readStatus(deps, id);
      return s === undefined || s.status === 'SUCCEEDED' || s.status === 'FAILED';
    },
  });
  const items = blendItems(ctx, deps.blocksPerBlendItem ?? BLOCKS_PER_BLEND_ITEM);
  await deps.bucketStore.set(key(KEYS.blendItems(jobId)), enc(items));
  const status = await readStatus(deps, jobId);
  if (!status || status.status === 'SUBMITTED') {
    await writeStatus(deps, {
      ...(status ?? {}),
      jobId,
      status: 'PLANNED',
      manifest: accepted.source,
      output: manifest.output.url,
      ...(rangeRows > 0
        ? {
            plannedInRanges: {
              chunks,
              ranges: planRangeItems(chunks, rangeRows).length,
              rows: rangeRows,
            },
          }
        : {}),
    });
  }
  const { plan } = ctx;
  return {
    kind: 'planned',
    created,
    result: {
      jobId,
      arraySize: workers,
      chunks: plan.counts.chunks,
      seamBlocks: plan.counts.seamBlocks,
      blendItemsKey: KEYS.blendItems(jobId),
      blendItemCount: items.length,
      device: manifest.compute.device,
      rangeRows,
    },
  };
}

/** Ranges of the region's block grid holding about `perItem` seam blocks each. */
export function blendItems(ctx: JobContext, perItem: number): BlendItem[] {
  const { plan } = ctx;
  if (plan.counts.seamBlocks === 0) return [];
  const items = Math.max(1, Math.ceil(plan.counts.seamBlocks / perItem));
  const span = Math.ceil(plan.counts.blocks / items);
  const out: BlendItem[] = [];
  for (let from = 0; from < plan.counts.blocks; from += span) {
    out.push({ jobId: ctx.jobId, from, to: Math.min(plan.counts.blocks, from + span) });
  }
  return out;
}

/**
 * The S3-trigger path: validate, then start the execution named by the job id. Duplicate
 * or replayed events start nothing new (the name is taken), and only the execution's
 * Plan task writes ledger rows, so two planners never race over one job. Without a
 * state machine (a bare data plane, tests) it plans inline instead.
 */
export async function handleManifestCreated(
  deps: CloudDeps,
  locs: ManifestLocation[],
): Promise<(AcceptOutcome | PlanOutcome)[]> {
  const outcomes: (AcceptOutcome | PlanOutcome)[] = [];
  for (const loc of locs) {
    const foreign = triggerLocationProblem(deps, loc);
    if (foreign !== undefined) {
      const source = `s3://${loc.bucket}/${loc.key}`;
      outcomes.push(
        await rejectManifest(
          deps,
          loc,
          new ManifestError([{ path: '', message: foreign }], { source }),
        ),
      );
      continue;
    }
    if (!deps.startExecution) {
      outcomes.push(await planFromManifest(deps, loc, { inline: true }));
      continue;
    }
    const accepted = await acceptManifest(deps, loc);
    outcomes.push(accepted);
    if (accepted.kind === 'rejected') continue;
    const input: PipelineInput = { manifest: accepted.source };
    const { executionArn } = await deps.startExecution(accepted.jobId, input);
    if (executionArn) {
      const status = await readStatus(deps, accepted.jobId);
      if (status && !status.executionArn) await writeStatus(deps, { ...status, executionArn });
    }
  }
  return outcomes;
}
