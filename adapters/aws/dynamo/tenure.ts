// The lease holder's writes: heartbeat, complete, release and fail, each conditional on
// the claim's tenure (status RUNNING, owner, token, chunk id). A refused write becomes the
// port's error carrying the row as it is now (LeaseLostError), or ChunkNotFoundError
// when the row is not the claim's chunk; the retry of a write whose response was lost
// recognises its own effect (complete) or re-reads the attempts once (fail).

import {
  ChunkNotFoundError,
  type LeaseAction,
  LeaseLostError,
} from '../../../core/ledger/errors.ts';
import type { ChunkRow, ChunkStatus, Claim } from '../../../core/ledger/port.ts';
import { capError, holdsLease } from '../../../core/ledger/protocol.ts';
import { LEAVE_OPEN, reopen, tenureOf } from './conditions.ts';
import { writeRow } from './counted-writes.ts';
import { allOf, equals, type Item } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { leaseKey, OPEN_SK } from './schema.ts';
import type { LedgerTable } from './table.ts';

export async function heartbeat(
  t: LedgerTable,
  job: JobMeta,
  claim: Claim,
  now: number,
): Promise<Claim> {
  const leaseExpiresAt = now + job.spec.leaseMs;
  const r = await writeRow(
    t,
    job,
    claim.index,
    { set: { leaseExpiresAt, [OPEN_SK]: leaseKey(leaseExpiresAt), updatedAt: now } },
    tenureOf(claim),
  );
  if (!r.ok) throw refused(t, 'heartbeat', claim, r.old);
  return { ...claim, leaseExpiresAt };
}

export async function complete(
  t: LedgerTable,
  job: JobMeta,
  claim: Claim,
  skipped: boolean,
): Promise<void> {
  const status: ChunkStatus = skipped ? 'SKIPPED' : 'DONE';
  const r = await writeRow(
    t,
    job,
    claim.index,
    { set: { status, updatedAt: Date.now() }, remove: LEAVE_OPEN },
    tenureOf(claim),
    { from: 'RUNNING', to: status },
  );
  if (r.ok) return;
  const now = r.old && t.items.row(claim.jobId, r.old);
  // The retry after a lost response finds its own completion: same owner, same token.
  if (
    now?.chunkId === claim.chunkId &&
    now.status === status &&
    now.owner === claim.owner &&
    now.token === claim.token
  ) {
    return;
  }
  throw refused(t, 'complete', claim, r.old);
}

export async function release(t: LedgerTable, job: JobMeta, claim: Claim): Promise<void> {
  // Undo the claim's attempt: a spot reclaim or SIGTERM says nothing about the chunk.
  const r = await writeRow(
    t,
    job,
    claim.index,
    {
      set: { status: 'PENDING', ...reopen(claim.index), updatedAt: Date.now() },
      decrement: ['attempts'],
      remove: ['owner', 'leaseExpiresAt'],
    },
    tenureOf(claim),
    { from: 'RUNNING', to: 'PENDING' },
  );
  if (!r.ok) throw refused(t, 'release', claim, r.old);
}

export async function fail(
  t: LedgerTable,
  job: JobMeta,
  claim: Claim,
  error: string,
): Promise<ChunkRow> {
  const lastError = capError(error);
  // The claim says how many attempts it used; the condition checks it, and a forged or
  // stale count is corrected from the row once.
  let attempts = claim.attempt;
  for (let tries = 0; ; tries++) {
    const poisoned = attempts >= job.spec.maxAttempts;
    const status: ChunkStatus = poisoned ? 'FAILED' : 'PENDING';
    const updatedAt = Date.now();
    const r = await writeRow(
      t,
      job,
      claim.index,
      poisoned
        ? { set: { status, lastError, updatedAt }, remove: LEAVE_OPEN }
        : {
            set: { status, lastError, ...reopen(claim.index), updatedAt },
            remove: ['owner', 'leaseExpiresAt'],
          },
      allOf(tenureOf(claim), equals('attempts', attempts)),
      { from: 'RUNNING', to: status },
    );
    if (r.ok) {
      const row: ChunkRow = {
        jobId: claim.jobId,
        chunkId: claim.chunkId,
        index: claim.index,
        status,
        attempts,
        token: claim.token,
        lastError,
        updatedAt,
      };
      // A FAILED row keeps its last owner: the report names the worker whose log to read.
      if (poisoned) row.owner = claim.owner;
      return row;
    }
    const now = r.old && t.items.row(claim.jobId, r.old);
    if (tries === 0 && now?.chunkId === claim.chunkId && holdsLease(now, claim)) {
      attempts = now.attempts;
      continue;
    }
    throw refused(t, 'fail', claim, r.old);
  }
}

/** A refused lease write as the port's error: the row moved on, or it is not this chunk. */
function refused(t: LedgerTable, action: LeaseAction, claim: Claim, old: Item | undefined): Error {
  const row = old && t.items.row(claim.jobId, old);
  if (!row || row.chunkId !== claim.chunkId) {
    return new ChunkNotFoundError(claim.jobId, claim.chunkId, claim.index);
  }
  return new LeaseLostError(action, claim, row);
}
