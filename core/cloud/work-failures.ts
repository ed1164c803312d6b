// Why a Work round's workers failed, as Batch tells it: read through the deps'
// workFailures port, kept per round in the status document, summarised in one line for
// a failure reason. Never fatal: the ledger, not Batch, decides a job's fate.

import type { VerifyTaskEvent, WorkBatchResult, WorkerFailure } from '../../contracts/cloud.ts';
import { WORKER_FAILURES_KEPT } from '../../contracts/cloud.ts';
import { type CloudDeps, warn } from './deps.ts';
import { FleetReadError } from './errors.ts';
import { tryJson } from './status.ts';

/**
 * The failed workers of the round that just ended, when its Batch job did not succeed.
 * Never throws for Batch's sake: a Batch that cannot be read, or a Cause that is no job
 * description, is recorded as such (the ledger, not Batch, decides the verdict).
 */
export async function readWorkFailures(
  deps: CloudDeps,
  e: VerifyTaskEvent,
): Promise<{ entries: WorkerFailure[]; undescribed: number }> {
  const none = { entries: [], undescribed: 0 };
  const b = e.batch;
  if (!b || (b.Error === undefined && b.Status !== 'FAILED')) return none;
  const round = e.round;
  const ref = batchJobRef(b);
  if (ref.kind === 'malformed')
    return { entries: [{ round, batchJobId: '?', statusReason: ref.problem }], undescribed: 0 };
  if (!deps.workFailures) return { entries: [ref.fallback(round)], undescribed: 0 };
  try {
    const r = await deps.workFailures(ref.jobId, { limit: WORKER_FAILURES_KEPT });
    // The job failed, yet no child is listed as failed (Batch's listing lags its status):
    // the job's own description is what there is.
    if (r.described.length === 0) return { entries: [ref.fallback(round)], undescribed: 0 };
    return {
      entries: r.described.map((f) => ({ round, ...f })),
      undescribed: Math.max(0, r.failed - r.described.length),
    };
  } catch (error) {
    if (!(error instanceof FleetReadError)) throw error;
    warn(deps, 'could not read Batch failures', {
      jobId: e.jobId,
      round,
      batchJobId: ref.jobId,
      error: error.message,
    });
    return {
      entries: [
        {
          round,
          batchJobId: ref.jobId,
          statusReason: `could not read Batch failures: ${error.message}`,
        },
      ],
      undescribed: 0,
    };
  }
}

type BatchJobRef =
  | { kind: 'job'; jobId: string; fallback: (round: number) => WorkerFailure }
  | { kind: 'malformed'; problem: string };

/**
 * The Batch job a Work result names: `JobId` on success, or inside the catch's Cause (the
 * job description as a JSON string). Parsed defensively: anything else is described, not thrown.
 */
export function batchJobRef(b: WorkBatchResult): BatchJobRef {
  const fromCause = b.Cause === undefined ? undefined : tryJson(b.Cause);
  const described = isRecord(fromCause) ? fromCause : undefined;
  const jobId = typeof b.JobId === 'string' && b.JobId !== '' ? b.JobId : described?.JobId;
  if (typeof jobId !== 'string' || jobId === '') {
    const cause =
      b.Cause === undefined ? 'no Cause' : `Cause ${JSON.stringify(b.Cause.slice(0, 300))}`;
    return {
      kind: 'malformed',
      problem: `the Work task failed (${b.Error ?? b.Status ?? 'no Error'}) with no Batch job id: ${cause} is not a Batch job description`,
    };
  }
  const statusReason =
    typeof described?.StatusReason === 'string' && described.StatusReason !== ''
      ? described.StatusReason
      : `the Batch job failed (${b.Error ?? b.Status ?? 'FAILED'})`;
  return {
    kind: 'job',
    jobId,
    fallback: (round) => ({ round, batchJobId: jobId, statusReason }),
  };
}

/** `kept` with `round`'s entries replaced by `entries` (a retried Verify rewrites its round), newest rounds last. */
export function keepFailures(
  kept: readonly WorkerFailure[],
  round: number,
  entries: readonly WorkerFailure[],
  limit = WORKER_FAILURES_KEPT,
): WorkerFailure[] {
  const merged = [...kept.filter((f) => f.round !== round), ...entries];
  // Stable: within a round, Batch's order (by array index) stays.
  merged.sort((a, b) => a.round - b.round);
  return merged.slice(-limit);
}

/**
 * One line for a failure reason: "Batch: 2 worker(s) failed: OutOfMemoryError: Container
 * killed due to memory usage (exit 137, log worker/default/abc)". Up to three distinct
 * reasons, each with its newest example's exit code and log stream.
 */
export function summarizeFailures(failures: readonly WorkerFailure[], undescribed = 0): string {
  const byText = new Map<string, WorkerFailure>();
  for (const f of failures) {
    const text = f.reason ?? f.statusReason;
    byText.delete(text);
    byText.set(text, f);
  }
  const newestFirst = [...byText].reverse();
  const parts = newestFirst.slice(0, 3).map(([text, f]) => {
    const detail = [
      f.exitCode !== undefined ? `exit ${f.exitCode}` : undefined,
      f.logStream ? `log ${f.logStream}` : undefined,
    ].filter(Boolean);
    return `${oneLine(text)}${detail.length > 0 ? ` (${detail.join(', ')})` : ''}`;
  });
  const more = newestFirst.length - parts.length;
  return `Batch: ${failures.length + undescribed} worker(s) failed: ${parts.join('; ')}${
    more > 0 ? `; and ${more} other reason(s)` : ''
  }`;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 300);

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
