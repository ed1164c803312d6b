// Planning a job too large for one planner Lambda: its chunk rows are written by a Map of
// PlanRange tasks, one index range each, then made visible by CompletePlan (the ledger's
// RangePlanner). The Plan task still does everything else (output claim, frozen
// description, blend items, status) and, for such a job, only opens the plan:
//
//   Plan ──► chunks > PLAN_RANGE_ROWS? ──► PlanRanges (Map over range starts) ──► CompletePlan ──► StartRounds
//                     └── no (Plan wrote the rows itself with createJob) ──────────────────────────┘
//
// Each step is idempotent, so a retried task, a re-run execution, or a job whose Plan
// task wrote every row anyway (planRange on a complete job writes nothing) is harmless.

import {
  type CompletePlanTaskEvent,
  PLAN_RANGE_ROWS,
  type PlanRangeTaskEvent,
  type PlanRangeTaskResult,
} from '../../contracts/cloud.ts';
import { type CloudDeps, loadCloudJob } from '../../core/cloud/index.ts';
import type { IndexRange, JobSpec, Ledger, RangePlanner } from '../../core/ledger/index.ts';
import type { JobContext } from '../../core/pipeline/index.ts';
import { DEFAULT_LEASE_MS } from '../../core/pipeline/plan-job.ts';
import { LedgerCannotPlanRangesError } from './dynamo-errors.ts';

/** The ranges of a job of `chunkCount` chunks: [0, R), [R, 2R), … (none for 0 chunks). */
export function planRangeItems(chunkCount: number, rows = PLAN_RANGE_ROWS): IndexRange[] {
  const out: IndexRange[] = [];
  for (let from = 0; from < chunkCount; from += rows) {
    out.push({ from, to: Math.min(chunkCount, from + rows) });
  }
  return out;
}

/** Whether the state machine plans this job in ranges (the PlanInRanges? choice). */
export const plansInRanges = (chunkCount: number, rows = PLAN_RANGE_ROWS): boolean =>
  chunkCount > rows;

export interface RangePlanOptions {
  leaseMs?: number;
  now?: number;
}

/**
 * The spec of a range-planned job; the same fields as planJob's (core/pipeline/plan-job.ts),
 * which should build its spec with this function once both live in core.
 */
export function rangeJobSpec(ctx: JobContext, o: RangePlanOptions = {}): JobSpec {
  return {
    jobId: ctx.jobId,
    chunkCount: ctx.plan.counts.chunks,
    maxAttempts: ctx.manifest.maxAttempts,
    leaseMs: o.leaseMs ?? DEFAULT_LEASE_MS,
    createdAt: o.now ?? Date.now(),
    attributes: { name: ctx.manifest.name, output: ctx.manifest.output.url },
  };
}

/**
 * The Plan task's part for a job that plansInRanges, in place of createJob (after the
 * output claim and the frozen description, as planJob orders them): records the job's
 * spec, so every range adopts one createdAt, and writes no row.
 */
export async function openRangePlan(
  ledger: RangePlanner,
  ctx: JobContext,
  o: RangePlanOptions = {},
): Promise<void> {
  await ledger.planRange(rangeJobSpec(ctx, o), { from: 0, to: 0 }, []);
}

/**
 * One PlanRange task: the rows of [from, from + rows) ∩ the job, their chunk ids made
 * lazily from the plan (never a list of the whole job).
 */
export async function planRangeStep(
  ledger: RangePlanner,
  ctx: JobContext,
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
export function rangePlannerOf(ledger: Ledger, jobId: string): RangePlanner {
  const l = ledger as Partial<RangePlanner>;
  if (typeof l.planRange !== 'function' || typeof l.completePlan !== 'function') {
    throw new LedgerCannotPlanRangesError(jobId);
  }
  return ledger as Ledger & RangePlanner;
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
