// Planning a job too large for one planner Lambda: its chunk rows are written by a Map of
// PlanRange tasks, one index range each, then made visible by CompletePlan (the ledger's
// RangePlanner). The Plan task (plan-step.ts) decides, with plansInRanges, and does
// everything else (output claim, frozen description, blend items, status); for such a
// job it only opens the plan (planJob with inRanges: the spec recorded with an empty
// range, OPENING_RANGE, and no row written)
// and tells the state machine the rows per range ($.plan.rangeRows), which the
// PlanInRanges? choice and the PlanRanges Map follow:
//
//   Plan ──► rangeRows > 0? ──► RangeStarts ──► PlanRanges (Map of PlanRange) ──► CompletePlan ──► StartRounds
//                  └── 0 (Plan wrote the rows itself with createJob) ────────────────────────────────┘
//
// Each step is idempotent, so a retried task, a re-run execution, or a job whose rows all
// exist already (planRange on a complete job writes nothing) is harmless.
//
// RangePlanner stays a port of its own beside Ledger (core/ledger/port.ts): only these
// planner tasks plan in ranges, over the adapter's ledger itself. The wrappers a worker's
// ledger goes through (PausingLedger, the IPC client, the clock-offset fault hook) would
// each have to forward two calls no worker makes; rangePlannerOf narrows the ledger a task
// was given, and refuses (before anything is written) one that cannot plan in ranges.

import {
  type CompletePlanTaskEvent,
  PLAN_RANGE_ROWS,
  type PlanRangeTaskEvent,
  type PlanRangeTaskResult,
} from '../../contracts/cloud.ts';
import {
  type IndexRange,
  type Ledger,
  LedgerCannotPlanRangesError,
  type RangePlanner,
} from '../ledger/index.ts';
import type { JobContext } from '../pipeline/index.ts';
import { jobSpecOf, type PlanJobOptions } from '../pipeline/plan-job.ts';
import type { CloudDeps } from './deps.ts';
import { loadCloudJob } from './manifest-intake.ts';

/** The ranges of a job of `chunkCount` chunks: [0, R), [R, 2R), … (none for 0 chunks). */
export function planRangeItems(chunkCount: number, rows = PLAN_RANGE_ROWS): IndexRange[] {
  const out: IndexRange[] = [];
  for (let from = 0; from < chunkCount; from += rows) {
    out.push({ from, to: Math.min(chunkCount, from + rows) });
  }
  return out;
}

/** Whether the Plan task leaves this job's rows to the PlanRanges Map. */
export const plansInRanges = (chunkCount: number, rows = PLAN_RANGE_ROWS): boolean =>
  chunkCount > rows;

/**
 * Rows per PlanRange task for a job of `chunkCount` chunks, as the Plan task reports it
 * ($.plan.rangeRows): 0 when the Plan task writes every row itself.
 */
export const rangeRowsFor = (chunkCount: number, rows = PLAN_RANGE_ROWS): number =>
  plansInRanges(chunkCount, rows) ? rows : 0;

export type RangePlanOptions = Pick<PlanJobOptions, 'leaseMs' | 'now'>;

/** The spec of a range-planned job: planJob's own (jobSpecOf), so the two cannot drift. */
export const rangeJobSpec = jobSpecOf;

/**
 * One PlanRange task: the rows of [from, from + rows) ∩ the job, their chunk ids made
 * lazily from the plan (never a list of the whole job).
 */
export async function planRangeStep(
  ledger: RangePlanner,
  ctx: Pick<JobContext, 'jobId' | 'plan' | 'manifest'>,
  e: PlanRangeTaskEvent,
  o: RangePlanOptions = {},
): Promise<PlanRangeTaskResult> {
  const { plan } = ctx;
  const range = { from: e.from, to: Math.min(plan.counts.chunks, e.from + e.rows) };
  const chunks = (function* () {
    for (let i = range.from; i < range.to; i++)
      yield { chunkId: plan.chunkId(plan.chunkCoordAt(i)), index: i };
  })();
  const { written, complete } = await ledger.planRange(rangeJobSpec(ctx, o), range, chunks);
  return { jobId: ctx.jobId, ...range, written, complete };
}

/** The CompletePlan task: the job becomes claimable once every range is written. */
export async function completePlanStep(
  ledger: RangePlanner,
  jobId: string,
): Promise<{ jobId: string; created: boolean }> {
  const { created } = await ledger.completePlan(jobId);
  return { jobId, created };
}

/** The ledger a task was given, as the RangePlanner it must be (DynamoLedger, MemoryLedger…). */
export function rangePlannerOf(ledger: Ledger, jobId: string): Ledger & RangePlanner {
  const l = ledger as Ledger & Partial<RangePlanner>;
  if (typeof l.planRange !== 'function' || typeof l.completePlan !== 'function') {
    throw new LedgerCannotPlanRangesError(jobId);
  }
  return l as Ledger & RangePlanner;
}

/** What the plan-range Lambda does with either of its events (the handler maps only errors). */
export async function planRangeTask(
  deps: CloudDeps,
  e: PlanRangeTaskEvent | CompletePlanTaskEvent,
): Promise<PlanRangeTaskResult | { jobId: string; created: boolean }> {
  const ledger = rangePlannerOf(deps.ledger, e.jobId);
  if (e.step === 'complete') return completePlanStep(ledger, e.jobId);
  const ctx = await loadCloudJob(deps, e.jobId);
  return planRangeStep(ledger, ctx, e, {
    ...(deps.leaseMs === undefined ? {} : { leaseMs: deps.leaseMs }),
  });
}
