// The claim protocol's rules as pure predicates over one row, so every adapter (and the
// contract test's model) decides claimability, expiry and tenure the same way. The
// DynamoDB adapter writes the same rules as condition expressions (see port.ts).

import { InvalidJobError } from './errors.ts';
import { IndexSet } from './index-set.ts';
import { type ChunkRef, type ChunkRow, type Claim, type JobSpec, SKEW_MS } from './port.ts';

/** The per-row fields the protocol moves; jobId/chunkId/index never change. */
export type RowState = Omit<ChunkRow, 'jobId' | 'chunkId' | 'index'>;

/** lastError is capped: one DynamoDB item holds at most 400 KB, and a stack trace can be longer. */
export const MAX_ERROR_LENGTH = 4000;

export const initialRow = (job: JobSpec): RowState => ({
  status: 'PENDING',
  attempts: 0,
  token: 0,
  updatedAt: job.createdAt,
});

/** Expired on the claimer's clock, allowing for the owner's clock being SKEW_MS behind. */
export const leaseExpired = (row: RowState, now: number): boolean =>
  row.status === 'RUNNING' &&
  row.leaseExpiresAt !== undefined &&
  row.leaseExpiresAt + SKEW_MS < now;

export const isClaimable = (row: RowState, job: JobSpec, now: number): boolean =>
  row.attempts < job.maxAttempts && (row.status === 'PENDING' || leaseExpired(row, now));

/** An expired lease with no attempts left: its workers died or hung maxAttempts times. */
export const isPoisoned = (row: RowState, job: JobSpec, now: number): boolean =>
  leaseExpired(row, now) && row.attempts >= job.maxAttempts;

export const holdsLease = (row: RowState, claim: Claim): boolean =>
  row.status === 'RUNNING' && row.owner === claim.owner && row.token === claim.token;

export const poisonMessage = (job: JobSpec, row: RowState): string =>
  `poison: the workers that claimed this chunk died or hung ${row.attempts} times ` +
  `(maxAttempts ${job.maxAttempts}, last owner "${row.owner ?? '?'}" whose lease expired ` +
  `at ${row.leaseExpiresAt ?? '?'}); inspect the chunk's input and that worker's logs`;

export const expiredMessage = (row: RowState): string =>
  `lease of "${row.owner ?? '?'}" (token ${row.token}) expired at ${row.leaseExpiresAt ?? '?'}: ` +
  'the worker died or hung; re-driven by sweep';

export const capError = (error: string): string =>
  error.length <= MAX_ERROR_LENGTH ? error : `${error.slice(0, MAX_ERROR_LENGTH - 1)}…`;

export const toClaim = (job: JobSpec, chunkId: string, index: number, row: RowState): Claim => ({
  jobId: job.jobId,
  chunkId,
  index,
  owner: row.owner ?? '',
  token: row.token,
  attempt: row.attempts,
  leaseExpiresAt: row.leaseExpiresAt ?? 0,
});

const isCount = (n: number, min: number): boolean => Number.isSafeInteger(n) && n >= min;

/** Rejects a spec no adapter could run; shared so every adapter rejects the same specs. */
export function validateJobSpec(job: JobSpec): void {
  const id = typeof job.jobId === 'string' ? job.jobId : String(job.jobId);
  if (typeof job.jobId !== 'string' || job.jobId.length === 0) {
    throw new InvalidJobError(id, 'jobId', 'must be a non-empty string');
  }
  if (!isCount(job.chunkCount, 0)) {
    throw new InvalidJobError(
      id,
      'chunkCount',
      `must be a non-negative integer, got ${job.chunkCount}`,
    );
  }
  if (!isCount(job.maxAttempts, 1)) {
    throw new InvalidJobError(id, 'maxAttempts', `must be an integer ≥ 1, got ${job.maxAttempts}`);
  }
  if (!isCount(job.leaseMs, 1)) {
    throw new InvalidJobError(id, 'leaseMs', `must be a positive integer, got ${job.leaseMs}`);
  }
  if (!Number.isFinite(job.createdAt)) {
    throw new InvalidJobError(id, 'createdAt', `must be epoch ms, got ${job.createdAt}`);
  }
}

/** Chunk ids are keys in every adapter, and lines in the local ids file. */
export function validateChunkId(jobId: string, chunkId: string, index: number): void {
  if (typeof chunkId !== 'string' || chunkId.length === 0 || /[\r\n]/.test(chunkId)) {
    throw new InvalidJobError(
      jobId,
      `chunks[${index}].chunkId`,
      `must be a non-empty string without line breaks, got ${JSON.stringify(chunkId)}`,
    );
  }
}

/** Maps a worker's start index (e.g. its Batch array index) into the job's index range. */
export function startIndexFor(job: JobSpec, startIndex: number | undefined): number {
  if (startIndex === undefined || job.chunkCount === 0) return 0;
  if (!Number.isSafeInteger(startIndex) || startIndex < 0) {
    throw new RangeError(
      `job "${job.jobId}": startIndex must be a non-negative integer, got ${startIndex}`,
    );
  }
  // A fleet may be larger than the job; its extra workers start somewhere and steal.
  return startIndex % job.chunkCount;
}

/** Reads a chunk list into index order, checking it covers 0..chunkCount-1 exactly once. */
export function collectChunkIds(job: JobSpec, chunks: Iterable<ChunkRef>): string[] {
  const ids = new Array<string>(job.chunkCount);
  const seenIndex = new IndexSet(job.chunkCount);
  const seenId = new Set<string>();
  let n = 0;
  for (const { chunkId, index } of chunks) {
    if (!Number.isSafeInteger(index) || index < 0 || index >= job.chunkCount) {
      throw new InvalidJobError(
        job.jobId,
        `chunks[${n}].index`,
        `must be an integer in 0..${job.chunkCount - 1}, got ${index}`,
      );
    }
    validateChunkId(job.jobId, chunkId, index);
    if (seenIndex.has(index)) {
      throw new InvalidJobError(job.jobId, `chunks[${n}].index`, `repeats index ${index}`);
    }
    if (seenId.has(chunkId)) {
      throw new InvalidJobError(job.jobId, `chunks[${n}].chunkId`, `repeats "${chunkId}"`);
    }
    seenIndex.add(index);
    seenId.add(chunkId);
    ids[index] = chunkId;
    n++;
  }
  if (n !== job.chunkCount) {
    throw new InvalidJobError(
      job.jobId,
      'chunks',
      `has ${n} entries but chunkCount is ${job.chunkCount}`,
    );
  }
  return ids;
}

/**
 * What `rearm` makes of a final row: PENDING, 0 attempts, no owner, the token kept (the
 * next claim increments it), and lastError saying what it was re-armed from.
 */
export function rearmedRow(row: RowState, now: number): RowState {
  return {
    status: 'PENDING',
    attempts: 0,
    token: row.token,
    lastError: rearmedMessage(row),
    updatedAt: now,
  };
}

/** lastError of a re-armed row: its old state and error, so a report can still show them. */
export const rearmedMessage = (row: Pick<RowState, 'status' | 'attempts' | 'lastError'>): string =>
  capError(
    `re-armed from ${row.status} after ${row.attempts} attempt(s)` +
      (row.lastError === undefined ? '' : `; its last error then: ${row.lastError}`),
  );
