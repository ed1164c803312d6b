// The decisions of the pipeline's steps, written once for both drivers: `tessera run`
// (cli/local-run.ts: forked workers) and the cloud (the state machine; each Lambda calls
// one of these through adapters/aws/cloud-steps.ts).
//
//   plan ──► work round ──► verifyRound ─┬─ COMPLETE ──────────────► blendStep ──► finalize
//                 ▲                       ├─ INCOMPLETE, rounds left ─┘ (nextArraySize workers)
//                 └───────────────────────┘
//                                         └─ FAILED | INCOMPLETE, no rounds left ──► stop
//
// A job is FAILED only once nothing is PENDING or RUNNING: a poison chunk does not stop the
// other chunks from running (a later --retry-failed then has only the failed ones left).

import type { JobSpec, Ledger } from '../ledger/index.ts';
import { isShardedOutput } from '../volume/index.ts';
import { blendSeams } from './blend-seams.ts';
import { type JobContext, openJobOutput } from './context.ts';
import { finalizeJob } from './finalize.ts';
import { checkOutput, type DamagedObject } from './output-check.ts';
import { type JobFit, type PlanJobOptions, planJob } from './plan-job.ts';
import { repairPlan } from './repair.ts';
import type { RunReport } from './report.ts';
import { lostPieces } from './shard-handoff.ts';
import { describePoison, type VerifyResult, verifyJob } from './verify.ts';

/** Batch's largest array job: the most workers one round starts. */
export const MAX_FLEET = 10_000;

/** The next Work round's fleet: no more workers than chunks left to claim. */
export function nextArraySize(maxWorkers: number, unfinished: number): number {
  return Math.max(1, Math.min(maxWorkers, MAX_FLEET, unfinished));
}

export interface PlanStepOptions extends PlanJobOptions {
  /**
   * The job's fit, checked by checkJobFits (the model against the manifest, the workers'
   * memory against their budget): a plan is only made for a job that fits, so a refusal
   * comes before any row exists.
   */
  fit: JobFit;
  /** The most workers a round may start (compute.maxWorkers, a local run's --workers). */
  maxWorkers: number;
}

export interface PlanStepResult {
  /** The job's rows were created by this call (false: they existed, the job resumes). */
  created: boolean;
  job: JobSpec;
  /** Workers for the first work round. */
  workers: number;
}

/**
 * Plan: the output claim, the frozen description and the job's chunk rows (idempotent;
 * see planJob), for a job that fits.
 */
export async function planStep(
  ctx: JobContext,
  ledger: Ledger,
  o: PlanStepOptions,
): Promise<PlanStepResult> {
  const { fit: _checked, maxWorkers, ...planOptions } = o;
  const { created, job } = await planJob(ctx, ledger, planOptions);
  return { created, job, workers: nextArraySize(maxWorkers, ctx.plan.counts.chunks) };
}

export interface RoundVerdict {
  /** FAILED: poison chunks and nothing left to run this job; INCOMPLETE: see `redrive`. */
  status: 'COMPLETE' | 'INCOMPLETE' | 'FAILED';
  verify: VerifyResult;
  /** Another work round follows (INCOMPLETE with rounds left). */
  redrive: boolean;
  /** Chunks PENDING or RUNNING. */
  remaining: number;
  /** Workers for the next round (nextArraySize). */
  workers: number;
  /** Why the job stops unfinished (FAILED, or INCOMPLETE without rounds left). */
  reason?: string;
  /** DONE chunks re-armed because their owned output blocks were missing. */
  rearmed?: { chunks: number; damaged: readonly DamagedObject[] };
}

export interface VerifyRoundOptions {
  /** Work rounds run so far. */
  roundsDone: number;
  maxRounds: number;
  /** The most workers a round may start (compute.maxWorkers, a local run's --workers). */
  maxWorkers: number;
  /**
   * The job opened (for the output check); absent: Verify trusts the ledger's DONE
   * (unit tests of the other decisions, over jobs that have no input).
   */
  job?: () => Promise<JobContext>;
  /** Owned level-0 blocks missing from the output; default missingOwnedBlocks. */
  ownedOutputDamage?: (ctx: JobContext) => Promise<readonly DamagedObject[]>;
}

/**
 * After a work round: is every chunk finished, and are the owned blocks of the DONE ones
 * in the output? A DONE chunk whose owned block is gone is re-armed and runs again.
 */
export async function verifyRound(
  ledger: Ledger,
  jobId: string,
  o: VerifyRoundOptions,
): Promise<RoundVerdict> {
  let v = await verifyJob(ledger, jobId);
  let rearmed: RoundVerdict['rearmed'];
  if (v.status === 'COMPLETE' && o.job) {
    const ctx = await o.job();
    const damaged = await (o.ownedOutputDamage ?? missingOwnedBlocks)(ctx);
    if (damaged.length > 0) {
      const { chunkIds } = repairPlan(ctx.plan, damaged);
      await ledger.rearm(jobId, { chunkIds });
      rearmed = { chunks: chunkIds.length, damaged };
      v = await verifyJob(ledger, jobId);
    }
  }
  return { ...verdictOf(v, o), ...(rearmed ? { rearmed } : {}) };
}

/** The decision over a verify result alone (no reads): see the module header. */
export function verdictOf(
  v: VerifyResult,
  o: Pick<VerifyRoundOptions, 'roundsDone' | 'maxRounds' | 'maxWorkers'>,
): RoundVerdict {
  const remaining = v.counts.PENDING + v.counts.RUNNING;
  const workers = nextArraySize(o.maxWorkers, remaining);
  const base = { verify: v, remaining, workers };
  if (remaining > 0 && o.roundsDone < o.maxRounds)
    return { ...base, status: 'INCOMPLETE', redrive: true };
  const unfinished =
    remaining > 0 ? `${remaining} chunk(s) still unfinished after ${o.roundsDone} work rounds` : '';
  if (v.counts.FAILED > 0)
    return {
      ...base,
      status: 'FAILED',
      redrive: false,
      reason: `${v.poison.length} chunk(s) failed every attempt:\n${describePoison(v.poison)}${unfinished ? `\n${unfinished}` : ''}`,
    };
  if (remaining > 0) return { ...base, status: 'INCOMPLETE', redrive: false, reason: unfinished };
  return { ...base, status: 'COMPLETE', redrive: false };
}

/**
 * Owned level-0 blocks missing from a job's output: one listing with sizes. A sharded
 * output's owned blocks are in shards, assembled when a shard's last contributor is done:
 * there, what is lost is a DONE chunk's piece of a shard not assembled yet.
 */
export async function missingOwnedBlocks(ctx: JobContext): Promise<readonly DamagedObject[]> {
  const { damaged } = await checkOutput(ctx, { scope: 'owned', depth: 'listing' });
  if (!ctx.shardShape) return damaged;
  const output = await openJobOutput(ctx);
  return isShardedOutput(output) ? [...damaged, ...(await lostPieces(ctx, output))] : damaged;
}

/** Blends the seam blocks `from`..`to` of the plan's seam-block enumeration. */
export async function blendRange(
  ctx: JobContext,
  range: { from: number; to: number },
  o: { concurrency?: number } = {},
): Promise<number> {
  const output = await openJobOutput(ctx);
  return blendSeams(ctx, output, {
    blocks: ctx.plan.seamBlockList(range.from, range.to),
    ...(o.concurrency === undefined ? {} : { concurrency: o.concurrency }),
  });
}

/**
 * Finalize in a step that ran none of the job (the cloud's Finalize Lambda): only a
 * COMPLETE job; its start is the ledger's job creation, its work time the ledger's, its
 * worker count the owners that finished chunks (see finalizeJob).
 */
export async function finalizeFinished(
  ctx: JobContext,
  ledger: Ledger,
  o: { fleetSize: number; now?: () => number; rebuildPyramid?: boolean },
): Promise<RunReport> {
  const verify = await verifyJob(ledger, ctx.jobId);
  if (verify.status !== 'COMPLETE')
    throw new Error(`job ${ctx.jobId} cannot be finalized: verify says ${verify.status}`);
  const now = o.now ?? Date.now;
  const job = await ledger.getJob(ctx.jobId);
  return finalizeJob(ctx, {
    ledger,
    verify,
    startedAt: new Date(job?.createdAt ?? now()),
    fleetSize: o.fleetSize,
    device: ctx.manifest.compute.device,
    now,
    ...(o.rebuildPyramid === false ? { rebuildPyramid: false } : {}),
  });
}
