// Fault-injection hook, off by default: TESSERA_CLOCK_OFFSET_MS=<ms> makes this process's
// ledger calls run on a clock that is that many milliseconds ahead (negative: behind),
// as on a lab machine whose clock drifted. Leases it writes and expiries it judges both
// use the skewed clock, which is exactly what the claim protocol's SKEW_MS allowance is
// for; the fault matrix (faults/run.ts) uses it to check that allowance. Unset or empty,
// the ledger is returned untouched.

import type { Claim, Ledger } from '../../core/ledger/index.ts';

export const CLOCK_OFFSET_ENV = 'TESSERA_CLOCK_OFFSET_MS';

export function withClockOffset(ledger: Ledger, env: NodeJS.ProcessEnv = process.env): Ledger {
  const raw = env[CLOCK_OFFSET_ENV];
  if (raw === undefined || raw.trim() === '') return ledger;
  const offset = Number(raw);
  if (!Number.isFinite(offset))
    throw new RangeError(`${CLOCK_OFFSET_ENV} must be a number of milliseconds, got "${raw}"`);
  const now = (given?: number): number => given ?? Date.now() + offset;
  return {
    createJob: (job, chunks) => ledger.createJob(job, chunks),
    getJob: (jobId) => ledger.getJob(jobId),
    claim: (jobId, owner, o = {}) => ledger.claim(jobId, owner, { ...o, now: now(o.now) }),
    heartbeat: (claim: Claim, o = {}) => ledger.heartbeat(claim, { now: now(o.now) }),
    complete: (claim, o) => ledger.complete(claim, o),
    release: (claim) => ledger.release(claim),
    fail: (claim, error) => ledger.fail(claim, error),
    counts: (jobId) => ledger.counts(jobId),
    list: (jobId, status) => ledger.list(jobId, status),
    statuses: (jobId, chunks) => ledger.statuses(jobId, chunks),
    sweep: (jobId, o = {}) => ledger.sweep(jobId, { now: now(o.now) }),
    claimOutput: (url, jobId, o) => ledger.claimOutput(url, jobId, o),
    rearm: (jobId, which) => ledger.rearm(jobId, which),
  };
}
