// The ledger port: which chunks of a job are done, who works on which, and the claim
// protocol that keeps every chunk with exactly one live owner.
//
// Every transition is decided by ONE condition on ONE row (a chunk row, the job row or
// an output-claim row): no decision needs two rows at once, so no adapter locks rows.
// What a transition writes can be more than that row: where a chunk's status moves, the
// job's per-status counters move with it, and the DynamoDB adapter writes the pair as
// one TransactWriteItems (the row's conditional Update plus a counter ADD; writes that
// keep the status, heartbeat and re-claiming an expired lease, stay plain UpdateItems).
// createJob writes the job row and then the chunk rows in batches, resumably. The row
// conditions, as the DynamoDB adapter writes them:
//
//   claim      SET status=RUNNING, owner=:o, token=token+1, attempts=attempts+1,
//              leaseExpiresAt=:now+leaseMs
//              IF attempts < :max AND (status = PENDING OR
//                 (status = RUNNING AND leaseExpiresAt < :now - SKEW_MS))
//   poison     SET status=FAILED, lastError=…   (a RUNNING row found expired at max)
//              IF status = RUNNING AND token = :seen AND attempts >= :max
//                 AND leaseExpiresAt < :now - SKEW_MS
//   heartbeat  SET leaseExpiresAt=:now+leaseMs          IF status=RUNNING AND owner AND token
//   complete   SET status=DONE|SKIPPED, REMOVE lease    IF status=RUNNING AND owner AND token
//              (on ConditionalCheckFailed, an ALL_OLD row already DONE by the same owner
//              and token is success: the first response was lost, the write was not)
//   release    SET status=PENDING, attempts=attempts-1  IF status=RUNNING AND owner AND token
//   fail       SET status=PENDING|FAILED, lastError     IF status=RUNNING AND owner AND token
//              (the caller reads attempts from its claim; the condition pins the token,
//              so attempts cannot have moved under it)
//   claimOutput PUT output-claim row {url, jobId}    (its own item, keyed by the output URL)
//              IF absent OR jobId = :job [OR jobId = :replacing]
//   rearm      SET status=PENDING, attempts=0, lastError=<re-armed, was …>, REMOVE owner
//              IF status = :seen   (one UpdateItem per row; :seen is DONE, SKIPPED or
//              FAILED as read, so the per-status counters move from the right one)
//
// The fencing token increments on every claim and never otherwise, so owner+token names
// one tenure of one chunk: a worker that stalled past its lease and wakes up after
// someone else claimed the chunk is refused, even if the new owner has the same name
// (a restarted process reusing its host name).

/** PENDING: claimable. RUNNING: leased to `owner`. DONE/SKIPPED: final. FAILED: poison. */
export type ChunkStatus = 'PENDING' | 'RUNNING' | 'DONE' | 'FAILED' | 'SKIPPED';

export const CHUNK_STATUSES: readonly ChunkStatus[] = [
  'PENDING',
  'RUNNING',
  'DONE',
  'FAILED',
  'SKIPPED',
];

/**
 * Clock disagreement tolerated between workers. Leases are written with the owner's clock
 * (a lab box and a Batch child may be seconds apart), so a claimer treats a lease as
 * expired only once `leaseExpiresAt + SKEW_MS < now` on its own clock: an owner whose
 * clock runs up to SKEW_MS behind the claimer's, and which heartbeats in time by its
 * own clock, never loses its chunk to a duplicate claim. Leases must be much longer
 * than this (tens of seconds to minutes) for the allowance to cost little.
 */
export const SKEW_MS = 5000;

export interface ChunkRow {
  jobId: string;
  chunkId: string;
  index: number;
  status: ChunkStatus;
  owner?: string;
  /** Epoch ms on the owner's clock; set while RUNNING. */
  leaseExpiresAt?: number;
  /** Claims that counted: +1 per claim, -1 per release (a graceful stop is not a try). */
  attempts: number;
  /** Fencing token: +1 on every claim, never otherwise. */
  token: number;
  lastError?: string;
  updatedAt: number;
}

export interface JobSpec {
  jobId: string;
  chunkCount: number;
  /** Claims a chunk may use up (fail or lease expiry) before it is FAILED as poison. */
  maxAttempts: number;
  leaseMs: number;
  createdAt: number;
  attributes?: Record<string, string | number | boolean>;
}

/** What a claim hands the worker; owner + token are its proof of tenure. */
export interface Claim {
  jobId: string;
  chunkId: string;
  index: number;
  owner: string;
  token: number;
  /** 1 for the first counted try of this chunk. */
  attempt: number;
  leaseExpiresAt: number;
}

export type StatusCounts = Record<ChunkStatus, number>;

/** Which rows `rearm` gives back: every FAILED row, or the named chunks. */
export type RearmSelection = { status: 'FAILED' } | { chunkIds: readonly string[] };

/** Final states: the only ones `rearm` moves (RUNNING and PENDING rows are left as they are). */
export const FINAL_STATUSES: readonly ChunkStatus[] = ['DONE', 'SKIPPED', 'FAILED'];

/** One chunk handed to createJob: `index` runs over 0..chunkCount-1, each exactly once. */
export interface ChunkRef {
  chunkId: string;
  index: number;
}

export interface Ledger {
  /** Idempotent: a second call with the same jobId creates nothing and returns created:false (and the existing spec). */
  createJob(job: JobSpec, chunks: Iterable<ChunkRef>): Promise<{ created: boolean; job: JobSpec }>;
  getJob(jobId: string): Promise<JobSpec | undefined>;
  /**
   * Claims one claimable chunk or returns undefined when none is claimable now.
   * `startIndex` is where this worker starts looking (its shard), then it steals from
   * others: PENDING chunks are taken lowest index first from startIndex upward, wrapping
   * to 0; a startIndex ≥ chunkCount is taken modulo chunkCount (a fleet larger than the
   * job). Adapters may prefer expired leases over PENDING chunks (re-driving dead
   * workers' chunks early shortens the job's tail); the contract does not pin that.
   * A RUNNING chunk found expired at maxAttempts is made FAILED on the way.
   */
  claim(
    jobId: string,
    owner: string,
    o?: { startIndex?: number; now?: number },
  ): Promise<Claim | undefined>;
  /** Extends the lease to now + leaseMs. Throws LeaseLostError if the tenure ended. */
  heartbeat(claim: Claim, o?: { now?: number }): Promise<Claim>;
  /** → DONE (or SKIPPED). Call only after the chunk's writes are durable. */
  complete(claim: Claim, o?: { skipped?: boolean }): Promise<void>;
  /** → PENDING, the attempt is NOT counted (graceful spot/SIGTERM stop). */
  release(claim: Claim): Promise<void>;
  /** → PENDING if attempts < maxAttempts else FAILED (poison); returns the new row. */
  fail(claim: Claim, error: string): Promise<ChunkRow>;
  counts(jobId: string): Promise<StatusCounts>;
  /**
   * The status of each of `chunks`, in their order, read consistently: once complete()
   * has returned for a chunk, every later call reads it DONE (or SKIPPED). A worker asks
   * it whether it is the last contributor of a seam block (core/pipeline/seam-handoff.ts).
   * An index or id this job does not have is ChunkNotFoundError.
   */
  statuses(jobId: string, chunks: readonly ChunkRef[]): Promise<ChunkStatus[]>;
  /** Rows in index order, optionally of one status. */
  list(jobId: string, status?: ChunkStatus): AsyncIterable<ChunkRow>;
  /** Verify's re-drive: RUNNING rows whose lease expired become claimable (or FAILED at maxAttempts); returns what changed. */
  sweep(jobId: string, o?: { now?: number }): Promise<{ expired: number; failed: number }>;
  /**
   * Claims output location `url` (a canonical URL: one place, one spelling) for `jobId`,
   * so two jobs never write one output. Succeeds when no job holds it or `jobId` already
   * does (a re-plan or resume of the same job); otherwise throws OutputClaimedError naming
   * the holder. With `replacing`, the claim is also taken over from that one job (the
   * caller has made sure its output is gone and it is finished). Unrelated to job rows:
   * it may precede createJob, and a job's rows never release it.
   */
  claimOutput(url: string, jobId: string, o?: { replacing?: string }): Promise<void>;
  /**
   * The way back after a fix (the coordinator's call, never a worker's): the selected rows
   * in a final state (DONE, SKIPPED, FAILED) become PENDING with 0 attempts, no owner, the
   * token unchanged (the next claim increments it) and lastError saying what they were
   * re-armed from (the old error kept in it). RUNNING and PENDING rows are skipped, never
   * touched: a live tenure is not taken away. A chunk id the job does not have throws
   * UnknownChunkIdsError naming them, before any row moves. Returns how many rows moved.
   */
  rearm(jobId: string, which: RearmSelection): Promise<{ rearmed: number }>;
}

/** Chunk indices from..to-1 (half-open). */
export interface IndexRange {
  from: number;
  to: number;
}

/**
 * createJob split over index ranges, for a plan larger than one caller can write in its
 * time limit (the state machine's PlanRanges Map: one Lambda a range). The rows of a job
 * planned this way stay invisible, as a half-written createJob's do, until completePlan.
 * Implemented by MemoryLedger, LocalLedger and DynamoLedger; wrappers of the port
 * (PausingLedger, the IPC client, the clock-offset fault hook) do not carry it: only the
 * cloud's planner tasks plan in ranges (the Plan task opens the plan through planJob's
 * inRanges, PlanRange/CompletePlan fill and close it), each narrowing the ledger it was
 * given with rangePlannerOf (core/cloud/plan-ranges.ts), which refuses a wrapper by name.
 */
export interface RangePlanner {
  /**
   * Writes the rows of indices range.from..range.to-1; `chunks` holds exactly those, each
   * once. The first range of a job records its spec (later ranges adopt that spec, and
   * must have its chunkCount). Idempotent and resumable: a range run again after a stop
   * half-way, or ranges that overlap, leave each row once, as createJob would have. For
   * a job already complete it writes nothing and returns complete: true.
   */
  planRange(
    job: JobSpec,
    range: IndexRange,
    chunks: Iterable<ChunkRef>,
  ): Promise<{ written: number; complete: boolean }>;
  /**
   * Makes a range-planned job visible once its planned ranges cover 0..chunkCount-1
   * (else PlanIncompleteError naming the missing ones, and nothing changes). Idempotent:
   * created is true for exactly one call; JobNotFoundError when no range was planned.
   */
  completePlan(jobId: string): Promise<{ created: boolean; job: JobSpec }>;
}

/** The port's reads: what `tessera status` needs of a ledger, and all a JournalView has. */
export type LedgerReader = Pick<Ledger, 'getJob' | 'counts' | 'list' | 'statuses'>;
