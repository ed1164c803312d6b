// The ledger's state in memory: every job's spec, chunk ids and touched rows, the
// indexes that find claimable chunks without a scan, and the output claims. No rules:
// the transitions that move it are the engine's (engine.ts); a JournalView holds one of
// these replayed from a journal and nothing else.
//
// A job of 10^6 chunks costs its id list plus a few bits per chunk: rows that never left
// their initial PENDING state are implicit, and claimable chunks are found through an
// IndexSet (PENDING) and a LeaseHeap (RUNNING, by expiry) instead of a scan.

import { ChunkNotFoundError, JobNotFoundError } from './errors.ts';
import { IndexSet } from './index-set.ts';
import { type LeaseEntry, LeaseHeap } from './lease-heap.ts';
import type { ChunkRef, ChunkRow, ChunkStatus, JobSpec, StatusCounts } from './port.ts';
import { initialRow, type RowState } from './protocol.ts';

/** One row transition: the full new state of one chunk row. */
export interface RowChange {
  jobId: string;
  index: number;
  row: RowState;
}

/** One output claim: the whole new state of one output-claim row. */
export interface OutputClaimChange {
  url: string;
  jobId: string;
}

export interface JobState {
  readonly spec: JobSpec;
  readonly ids: readonly string[];
  /** Rows that left their initial state; absent = PENDING, 0 attempts, token 0. */
  readonly rows: Map<number, RowState>;
  readonly pending: IndexSet;
  readonly leases: LeaseHeap;
  readonly counts: StatusCounts;
}

const zeroCounts = (): StatusCounts => ({
  PENDING: 0,
  RUNNING: 0,
  DONE: 0,
  FAILED: 0,
  SKIPPED: 0,
});

/** The row at `index` (an untouched one as created). */
export const rowOf = (s: JobState, index: number): RowState =>
  s.rows.get(index) ?? initialRow(s.spec);

export const materialize = (s: JobState, index: number): ChunkRow => ({
  jobId: s.spec.jobId,
  chunkId: s.ids[index]!,
  index,
  ...rowOf(s, index),
});

/** Whether a lease heap entry is still the row's current lease. */
export function isLive(s: JobState, e: LeaseEntry): boolean {
  const row = s.rows.get(e.index);
  return (
    row !== undefined &&
    row.status === 'RUNNING' &&
    row.token === e.token &&
    row.leaseExpiresAt === e.expiresAt
  );
}

export class LedgerState {
  private readonly jobs = new Map<string, JobState>();
  /** Output URL → the job that holds it. */
  private readonly outputs = new Map<string, string>();

  /** The job's state, or JobNotFoundError (naming the chunk asked about, if one was). */
  job(jobId: string, chunkId?: string): JobState {
    const s = this.jobs.get(jobId);
    if (!s) throw new JobNotFoundError(jobId, chunkId);
    return s;
  }

  has(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  // ---- reads --------------------------------------------------------------------------

  getJob(jobId: string): JobSpec | undefined {
    const s = this.jobs.get(jobId);
    return s ? structuredClone(s.spec) : undefined;
  }

  counts(jobId: string): StatusCounts {
    return { ...this.job(jobId).counts };
  }

  /** The status of each ref's row; a ref this job does not have is ChunkNotFoundError. */
  statuses(jobId: string, refs: readonly ChunkRef[]): ChunkStatus[] {
    const s = this.job(jobId);
    return refs.map((r) => {
      if (s.ids[r.index] !== r.chunkId) throw new ChunkNotFoundError(jobId, r.chunkId, r.index);
      return rowOf(s, r.index).status;
    });
  }

  /** Rows in index order, optionally of one status; lazy, so an unknown job throws on the first step. */
  *list(jobId: string, status?: ChunkStatus): Generator<ChunkRow> {
    const s = this.job(jobId);
    if (status === undefined || status === 'PENDING') {
      for (let i = 0; i < s.spec.chunkCount; i++) {
        if (status === undefined || rowOf(s, i).status === status) yield materialize(s, i);
      }
      return;
    }
    // Every non-PENDING row is a touched row: no pass over a million untouched chunks.
    const indices = [...s.rows.keys()].sort((a, b) => a - b);
    for (const i of indices) {
      if (rowOf(s, i).status === status) yield materialize(s, i);
    }
  }

  /** Ids of the jobs, in order of creation. */
  jobIds(): string[] {
    return [...this.jobs.keys()];
  }

  /** The job holding output location `url`, if one does. */
  outputHolder(url: string): string | undefined {
    return this.outputs.get(url);
  }

  /** Every job with its touched rows (index → state): what a compacted journal must hold. */
  *snapshot(): Generator<{ spec: JobSpec; rows: ReadonlyMap<number, RowState> }> {
    for (const s of this.jobs.values()) yield { spec: s.spec, rows: s.rows };
  }

  /** Every output claim: what a compacted journal must hold besides the jobs. */
  *outputClaims(): Generator<OutputClaimChange> {
    for (const [url, jobId] of this.outputs) yield { url, jobId };
  }

  hasChunk(jobId: string, index: number): boolean {
    const s = this.jobs.get(jobId);
    return (
      s !== undefined && Number.isSafeInteger(index) && index >= 0 && index < s.spec.chunkCount
    );
  }

  // ---- applying without persisting (creation, and replay of a journal) ----------------

  restoreJob(spec: JobSpec, ids: readonly string[]): void {
    this.jobs.set(spec.jobId, {
      spec,
      ids,
      rows: new Map(),
      pending: new IndexSet(spec.chunkCount, true),
      leases: new LeaseHeap(),
      counts: { ...zeroCounts(), PENDING: spec.chunkCount },
    });
  }

  restoreRow(change: RowChange): void {
    const s = this.jobs.get(change.jobId);
    if (!s) throw new JobNotFoundError(change.jobId);
    const { index, row } = change;
    const before = rowOf(s, index);
    s.counts[before.status]--;
    s.counts[row.status]++;
    s.rows.set(index, row);
    if (row.status === 'PENDING') s.pending.add(index);
    else s.pending.delete(index);
    if (row.status === 'RUNNING' && row.leaseExpiresAt !== undefined) {
      s.leases.push({ expiresAt: row.leaseExpiresAt, index, token: row.token });
      s.leases.compact((e) => isLive(s, e), s.counts.RUNNING);
    }
  }

  restoreOutput(change: OutputClaimChange): void {
    this.outputs.set(change.url, change.jobId);
  }
}
