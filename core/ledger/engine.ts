// The ledger's engine: the protocol's transitions over a LedgerState (ledger-state.ts).
// MemoryLedger, LocalLedger and JournalView each hold their own, and none of them is
// another's base class:
//
//   MemoryLedger  = engine, nothing persisted                  (the reference adapter)
//   LocalLedger   = engine + journal writer + lock             (a local run)
//   JournalView   = a LedgerState replayed from a journal, reads only   (`tessera status`)
//
// Every transition runs to completion synchronously, which is what makes it atomic here,
// as one conditional UpdateItem is in DynamoDB; EngineLedger wraps them in the port's
// promises. Each first hands its change to the engine's Persistence (none for
// MemoryLedger; LocalLedger's journal) and only then applies it to the state, so a
// transition that could not be recorded never becomes visible.

import {
  ChunkNotFoundError,
  LeaseLostError,
  OutputClaimedError,
  UnknownChunkIdsError,
} from './errors.ts';
import {
  isLive,
  type JobState,
  LedgerState,
  materialize,
  type OutputClaimChange,
  type RowChange,
  rowOf,
} from './ledger-state.ts';
import {
  type ChunkRef,
  type ChunkRow,
  type ChunkStatus,
  type Claim,
  FINAL_STATUSES,
  type JobSpec,
  type RearmSelection,
} from './port.ts';
import {
  capError,
  collectChunkIds,
  expiredMessage,
  holdsLease,
  isClaimable,
  isPoisoned,
  leaseExpired,
  poisonMessage,
  type RowState,
  rearmedRow,
  startIndexFor,
  toClaim,
  validateJobSpec,
} from './protocol.ts';

/** Where changes are recorded before they become visible; a throw aborts the change. */
export interface Persistence {
  job(spec: JobSpec, ids: readonly string[]): void;
  /** One call for the lot: a re-arm or an abandon lands whole or not at all. */
  rows(changes: readonly RowChange[]): void;
  output(change: OutputClaimChange): void;
}

/** MemoryLedger's persistence: none. */
export const NOT_PERSISTED: Persistence = {
  job: () => undefined,
  rows: () => undefined,
  output: () => undefined,
};

export class LedgerEngine {
  constructor(
    private readonly persist: Persistence = NOT_PERSISTED,
    readonly state: LedgerState = new LedgerState(),
  ) {}

  // ---- transitions (the Ledger port's, in its order) ----------------------------------

  createJob(job: JobSpec, chunks: Iterable<ChunkRef>): { created: boolean; job: JobSpec } {
    validateJobSpec(job);
    // Idempotent by id alone: a duplicate S3 event or a repeated start must not re-plan.
    if (this.state.has(job.jobId)) return { created: false, job: this.state.getJob(job.jobId)! };
    const spec = structuredClone(job);
    const ids = collectChunkIds(spec, chunks);
    this.persist.job(spec, ids);
    this.state.restoreJob(spec, ids);
    return { created: true, job: structuredClone(spec) };
  }

  claim(
    jobId: string,
    owner: string,
    o: { startIndex?: number; now?: number } = {},
  ): Claim | undefined {
    const s = this.state.job(jobId);
    const now = o.now ?? Date.now();
    const start = startIndexFor(s.spec, o.startIndex);
    const index = this.takeExpired(s, now) ?? this.takePending(s, start);
    if (index === undefined) return undefined;
    const row = rowOf(s, index);
    const next: RowState = {
      status: 'RUNNING',
      owner,
      leaseExpiresAt: now + s.spec.leaseMs,
      attempts: row.attempts + 1,
      token: row.token + 1,
      updatedAt: now,
    };
    if (row.lastError !== undefined) next.lastError = row.lastError;
    this.commit([{ jobId, index, row: next }]);
    return toClaim(s.spec, s.ids[index]!, index, next);
  }

  heartbeat(claim: Claim, o: { now?: number } = {}): Claim {
    const { s, row } = this.tenure(claim, 'heartbeat');
    const now = o.now ?? Date.now();
    const next: RowState = { ...row, leaseExpiresAt: now + s.spec.leaseMs, updatedAt: now };
    this.commit([{ jobId: claim.jobId, index: claim.index, row: next }]);
    return { ...claim, leaseExpiresAt: next.leaseExpiresAt! };
  }

  complete(claim: Claim, o: { skipped?: boolean } = {}): void {
    const status: ChunkStatus = o.skipped ? 'SKIPPED' : 'DONE';
    const s = this.state.job(claim.jobId, claim.chunkId);
    const current = this.rowFor(s, claim);
    // A retry after a lost response finds its own completion: same owner, same token.
    if (
      current.status === status &&
      current.owner === claim.owner &&
      current.token === claim.token
    ) {
      return;
    }
    const { row } = this.tenure(claim, 'complete');
    const { leaseExpiresAt: _, ...rest } = row;
    this.commit([
      { jobId: claim.jobId, index: claim.index, row: { ...rest, status, updatedAt: Date.now() } },
    ]);
  }

  release(claim: Claim): void {
    const { row } = this.tenure(claim, 'release');
    // Undo the claim's attempt: a spot reclaim or SIGTERM says nothing about the chunk.
    const next: RowState = {
      status: 'PENDING',
      attempts: row.attempts - 1,
      token: row.token,
      updatedAt: Date.now(),
    };
    if (row.lastError !== undefined) next.lastError = row.lastError;
    this.commit([{ jobId: claim.jobId, index: claim.index, row: next }]);
  }

  fail(claim: Claim, error: string): ChunkRow {
    const { s, row } = this.tenure(claim, 'fail');
    const poisoned = row.attempts >= s.spec.maxAttempts;
    const next: RowState = {
      status: poisoned ? 'FAILED' : 'PENDING',
      attempts: row.attempts,
      token: row.token,
      lastError: capError(error),
      updatedAt: Date.now(),
    };
    // A FAILED row keeps its last owner: the report names the worker whose log to read.
    if (poisoned && row.owner !== undefined) next.owner = row.owner;
    this.commit([{ jobId: claim.jobId, index: claim.index, row: next }]);
    return materialize(s, claim.index);
  }

  sweep(jobId: string, o: { now?: number } = {}): { expired: number; failed: number } {
    const s = this.state.job(jobId);
    const now = o.now ?? Date.now();
    let expired = 0;
    let failed = 0;
    for (;;) {
      const top = s.leases.peek((e) => isLive(s, e));
      if (!top || !leaseExpired(rowOf(s, top.index), now)) break;
      const row = rowOf(s, top.index);
      if (isPoisoned(row, s.spec, now)) {
        this.poison(s, top.index, row, now);
        failed++;
        continue;
      }
      const next: RowState = {
        status: 'PENDING',
        attempts: row.attempts,
        token: row.token,
        lastError: expiredMessage(row),
        updatedAt: now,
      };
      this.commit([{ jobId, index: top.index, row: next }]);
      expired++;
    }
    return { expired, failed };
  }

  claimOutput(url: string, jobId: string, o: { replacing?: string } = {}): void {
    if (url === '' || jobId === '')
      throw new RangeError('claimOutput needs a non-empty output url and job id');
    const holder = this.state.outputHolder(url);
    if (holder === jobId) return;
    if (holder !== undefined && holder !== o.replacing)
      throw new OutputClaimedError(url, holder, jobId);
    const change: OutputClaimChange = { url, jobId };
    this.persist.output(change);
    this.state.restoreOutput(change);
  }

  rearm(jobId: string, which: RearmSelection): { rearmed: number } {
    const s = this.state.job(jobId);
    const now = Date.now();
    let indices: Iterable<number>;
    if ('status' in which) {
      if (which.status !== 'FAILED')
        throw new RangeError(
          `rearm: only { status: 'FAILED' } selects by status, got ${String(which.status)}`,
        );
      // Every FAILED row is a touched row: no pass over untouched chunks.
      indices = [...s.rows].filter(([, r]) => r.status === 'FAILED').map(([i]) => i);
    } else indices = this.indicesOf(s, which.chunkIds);
    const changes: RowChange[] = [];
    for (const index of new Set(indices)) {
      const row = rowOf(s, index);
      if (!FINAL_STATUSES.includes(row.status)) continue;
      changes.push({ jobId, index, row: rearmedRow(row, now) });
    }
    // One journal write for the lot: a re-arm lands whole or not at all.
    if (changes.length > 0) this.commit(changes);
    return { rearmed: changes.length };
  }

  /**
   * Local admin, not in the port: makes the RUNNING chunks of owners known to be dead
   * claimable now, without waiting for their leases.
   *
   * `spend` says whose fault the death was. true (the default): the worker died alone on
   * its chunks (killed for memory on that chunk, a crash), so their attempts stay counted
   * and a chunk already at maxAttempts becomes FAILED. false: the run was stopped as a
   * whole (a kill of the run, a double Ctrl-C, a stop the coordinator decided), which
   * says nothing about the chunks: each is handed back as a release does (attempts - 1)
   * and never made FAILED.
   */
  abandonOwners(
    jobId: string,
    predicate: (owner: string) => boolean,
    o: { now?: number; spend?: boolean } = {},
  ): { released: number; failed: number } {
    const s = this.state.job(jobId);
    const now = o.now ?? Date.now();
    const spend = o.spend ?? true;
    const changes: RowChange[] = [];
    let failed = 0;
    for (const [index, row] of s.rows) {
      if (row.status !== 'RUNNING' || row.owner === undefined || !predicate(row.owner)) continue;
      if (!spend) {
        changes.push({
          jobId,
          index,
          row: {
            status: 'PENDING',
            attempts: Math.max(0, row.attempts - 1),
            token: row.token,
            lastError: `owner "${row.owner}" (token ${row.token}) was handed back unspent: the run it belonged to was stopped as a whole`,
            updatedAt: now,
          },
        });
        continue;
      }
      const dead = row.attempts >= s.spec.maxAttempts;
      if (dead) failed++;
      const next: RowState = {
        status: dead ? 'FAILED' : 'PENDING',
        attempts: row.attempts,
        token: row.token,
        lastError: dead
          ? poisonMessage(s.spec, row)
          : `owner "${row.owner}" (token ${row.token}) was abandoned: its process is gone`,
        updatedAt: now,
      };
      if (dead) next.owner = row.owner;
      changes.push({ jobId, index, row: next });
    }
    if (changes.length > 0) this.commit(changes);
    return { released: changes.length - failed, failed };
  }

  // ---- internals ----------------------------------------------------------------------

  private commit(changes: readonly RowChange[]): void {
    this.persist.rows(changes);
    for (const c of changes) this.state.restoreRow(c);
  }

  /** Indices of `chunkIds`, or UnknownChunkIdsError naming those the job lacks. */
  private indicesOf(s: JobState, chunkIds: readonly string[]): number[] {
    const wanted = new Set(chunkIds);
    const found = new Map<string, number>();
    // One pass over the id list: a re-arm is rare, and a job keeps no id → index map.
    s.ids.forEach((id, i) => {
      if (wanted.has(id)) found.set(id, i);
    });
    const unknown = [...wanted].filter((id) => !found.has(id));
    if (unknown.length > 0)
      throw new UnknownChunkIdsError(s.spec.jobId, unknown.slice(0, 20), unknown.length);
    return [...found.values()];
  }

  private rowFor(s: JobState, claim: Claim): RowState {
    if (s.ids[claim.index] !== claim.chunkId) {
      throw new ChunkNotFoundError(claim.jobId, claim.chunkId, claim.index);
    }
    return rowOf(s, claim.index);
  }

  /** The claim's row if the claim still holds it, else LeaseLostError with the row as it is. */
  private tenure(
    claim: Claim,
    action: 'heartbeat' | 'complete' | 'release' | 'fail',
  ): { s: JobState; row: RowState } {
    const s = this.state.job(claim.jobId, claim.chunkId);
    const row = this.rowFor(s, claim);
    if (!holdsLease(row, claim)) {
      throw new LeaseLostError(action, claim, materialize(s, claim.index));
    }
    return { s, row };
  }

  /**
   * The earliest-expiring lease, if it is past expiry on this caller's clock: re-driving a
   * dead worker's chunk first keeps it from becoming the job's tail. Poisoned leases met
   * on the way are made FAILED (the claim path of the poison rule). The heap is ordered
   * by expiry, so whatever clock the caller has, checking the top answers for all.
   */
  private takeExpired(s: JobState, now: number): number | undefined {
    for (;;) {
      const top = s.leases.peek((e) => isLive(s, e));
      if (!top) return undefined;
      const row = rowOf(s, top.index);
      if (!leaseExpired(row, now)) return undefined;
      if (isClaimable(row, s.spec, now)) return top.index;
      this.poison(s, top.index, row, now);
    }
  }

  private takePending(s: JobState, start: number): number | undefined {
    const i = s.pending.nextWrapping(start);
    return i < 0 ? undefined : i;
  }

  private poison(s: JobState, index: number, row: RowState, now: number): void {
    const next: RowState = {
      status: 'FAILED',
      attempts: row.attempts,
      token: row.token,
      lastError: poisonMessage(s.spec, row),
      updatedAt: now,
    };
    if (row.owner !== undefined) next.owner = row.owner;
    this.commit([{ jobId: s.spec.jobId, index, row: next }]);
  }
}
