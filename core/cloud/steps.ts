// The Verify, Blend and Finalize tasks: each loads the job the Plan task froze and calls
// one core step (core/pipeline/steps.ts), then records what it decided in the job's
// status document.

import type {
  BlendItem,
  BlendTaskResult,
  FinalizeTaskResult,
  JobStatusDocument,
  VerifyTaskEvent,
  VerifyTaskResult,
} from '../../contracts/cloud.ts';
import { KEYS } from '../../contracts/cloud.ts';
import { BLOCKS_PER_BLEND_ITEM } from '../../contracts/stack-sizing.ts';
import type { Manifest } from '../manifest/index.ts';
import { finishLeftovers, openJobOutput, REPORT_KEY } from '../pipeline/index.ts';
import { blendRange, finalizeFinished, verifyRound } from '../pipeline/steps.ts';
import { type CloudDeps, warn } from './deps.ts';
import { contextFor, frozenManifest, loadCloudJob } from './manifest-intake.ts';
import { bucketKey, encodeJson, readStatus, writeStatus } from './status.ts';
import { keepFailures, readWorkFailures, summarizeFailures } from './work-failures.ts';

export async function verifyStep(deps: CloudDeps, e: VerifyTaskEvent): Promise<VerifyTaskResult> {
  const manifest = await frozenManifest(deps, e.jobId);
  const verdict = await verifyRound(deps.ledger, e.jobId, {
    roundsDone: e.round,
    maxRounds: deps.maxRounds,
    maxWorkers: manifest.compute.maxWorkers,
    ...(deps.ownedOutputDamage
      ? {
          job: () => contextFor(deps, e.jobId, manifest),
          ownedOutputDamage: deps.ownedOutputDamage,
        }
      : {}),
  });
  if (verdict.rearmed)
    warn(deps, 'output blocks of DONE chunks are missing; re-running them', {
      jobId: e.jobId,
      damaged: verdict.rearmed.damaged.length,
      first: verdict.rearmed.damaged[0]?.key,
      chunks: verdict.rearmed.chunks,
    });
  const read = await readWorkFailures(deps, e);
  const status = await readStatus(deps, e.jobId);
  const workerFailures =
    read.entries.length > 0
      ? keepFailures(status?.workerFailures ?? [], e.round, read.entries)
      : status?.workerFailures;
  const batch =
    workerFailures && workerFailures.length > 0
      ? summarizeFailures(workerFailures, read.undescribed)
      : undefined;
  // Poison lines stay one chunk per line; the Batch summary is a line of its own.
  const reason =
    verdict.reason === undefined
      ? undefined
      : `${verdict.reason}${batch ? `${verdict.status === 'FAILED' ? '\n' : '; '}${batch}` : ''}`;
  if (status) {
    // PLANNED → RUNNING once workers ran; a FAILED verdict is MarkFailed's to write.
    const next: JobStatusDocument = {
      ...status,
      ...(verdict.status !== 'FAILED' && status.status === 'PLANNED' ? { status: 'RUNNING' } : {}),
      ...(workerFailures ? { workerFailures } : {}),
    };
    if (next.status !== status.status || read.entries.length > 0) await writeStatus(deps, next);
  }
  return {
    jobId: e.jobId,
    status: verdict.status,
    round: e.round,
    redrive: verdict.redrive,
    remaining: verdict.remaining,
    arraySize: verdict.workers,
    ...(reason ? { reason } : {}),
    ...(verdict.status === 'COMPLETE'
      ? { blendItemCount: await leftoverBlendItems(deps, e.jobId, manifest) }
      : {}),
  };
}

/**
 * A COMPLETE job's seam blocks that no last contributor blended, as the Blend Map's items
 * (jobs/<jobId>/blend-items.json rewritten; their count returned). Without the listing
 * (deps.unblendedSeams absent), the planner's items stay.
 */
async function leftoverBlendItems(
  deps: CloudDeps,
  jobId: string,
  manifest: Manifest,
): Promise<number> {
  const itemsKey = bucketKey(KEYS.blendItems(jobId));
  if (!deps.leftovers) {
    const planned = await deps.bucketStore.get(itemsKey);
    return planned === undefined
      ? 0
      : (JSON.parse(new TextDecoder().decode(planned)) as unknown[]).length;
  }
  const left = await deps.leftovers(await contextFor(deps, jobId, manifest));
  const perItem = deps.blocksPerBlendItem ?? BLOCKS_PER_BLEND_ITEM;
  const items: BlendItem[] = [];
  for (let i = 0; i < left.length; i += perItem)
    items.push({ jobId, keys: left.slice(i, i + perItem) });
  await deps.bucketStore.set(itemsKey, encodeJson(items));
  if (items.length > 0)
    warn(
      deps,
      'seam blocks left unblended by their last contributors; the Blend step finishes them',
      {
        jobId,
        blocks: left.length,
        first: left[0],
      },
    );
  return items.length;
}

export async function blendStep(deps: CloudDeps, item: BlendItem): Promise<BlendTaskResult> {
  const ctx = await loadCloudJob(deps, item.jobId);
  const blocks =
    'keys' in item
      ? await finishLeftovers(ctx, await openJobOutput(ctx), item.keys, { concurrency: 8 })
      : await blendRange(ctx, item, { concurrency: 8 });
  return { jobId: item.jobId, blocks };
}

export async function finalizeStep(
  deps: CloudDeps,
  e: { jobId: string },
): Promise<FinalizeTaskResult> {
  const ctx = await loadCloudJob(deps, e.jobId);
  // The Pyramid step built the levels (core/cloud/pyramid-step.ts): metadata and report only.
  await finalizeFinished(ctx, deps.ledger, {
    fleetSize: ctx.manifest.compute.maxWorkers,
    rebuildPyramid: false,
  });
  const status = await readStatus(deps, e.jobId);
  await writeStatus(deps, {
    jobId: e.jobId,
    status: 'SUCCEEDED',
    manifest: status?.manifest ?? { bucket: deps.bucket, key: '' },
    output: ctx.manifest.output.url,
    ...(status?.executionArn ? { executionArn: status.executionArn } : {}),
    // Kept for the record; `stalled` is not: a finished job stalls no more.
    ...(status?.workerFailures ? { workerFailures: status.workerFailures } : {}),
  });
  return {
    jobId: e.jobId,
    status: 'SUCCEEDED',
    output: ctx.manifest.output.url,
    reportKey: `${ctx.manifest.output.url.replace(/\/$/, '')}${REPORT_KEY}`,
  };
}
