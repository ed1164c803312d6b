// The figures of `tessera status`, from a job's ledger rows alone (so they are the same
// for a local journal and for DynamoDB): counts, throughput and ETA from completion
// times, attempts and poison chunks, and worker-hours spent.
//
// Worker-hours are estimated, since the ledger records when chunks finished, not when
// workers started: each worker (owner) is counted busy from one typical chunk time
// before its first completion to its last completion, plus the time since then if it
// holds a chunk now. A worker that died before finishing anything is not counted.

import type { WorkerFailure } from '../contracts/cloud.ts';
import {
  type ChunkRow,
  type ChunkStatus,
  type JobSpec,
  leaseExpired,
  type StatusCounts,
} from '../core/ledger/index.ts';
import type { WorkerPrice } from './prices.ts';

export interface JobStatus {
  jobId: string;
  name?: string;
  ledger: 'local' | 'dynamodb';
  /**
   * SUCCEEDED and FAILED as `tessera run` reports them (FAILED: a chunk is out of attempts);
   * RUNNING: live leases now; WAITING: work left, but no live worker holds a chunk.
   */
  state: 'RUNNING' | 'WAITING' | 'SUCCEEDED' | 'FAILED';
  createdAt: string;
  chunks: StatusCounts & { total: number };
  voxels?: { done: number; total: number };
  /** Over the last `windowSeconds` of completions. */
  rate?: { chunksPerSecond: number; voxelsPerSecond?: number; windowSeconds: number };
  etaSeconds?: number;
  lastCompletionAt?: string;
  attempts: { total: number; retriedChunks: number; maxPerChunk: number; maxAttempts: number };
  workers: { active: number; seen: number };
  /** RUNNING rows, soonest lease expiry first (at most 20); `stale`: their worker is gone. */
  running: {
    chunkId: string;
    owner: string;
    attempt: number;
    leaseExpiresInSeconds: number;
    stale: boolean;
  }[];
  /** PENDING chunks that already failed an attempt (they will be retried), with their errors. */
  retrying: { chunkId: string; attempts: number; lastError?: string }[];
  /** FAILED chunks: out of attempts; the job fails naming them. */
  poison: { chunkId: string; attempts: number; owner?: string; lastError?: string }[];
  spend: {
    workerHours: number;
    pricePerHour?: number;
    dollars?: number;
    basis: string;
  };
  /** Cloud jobs: failed Batch workers, as Verify recorded them in status.json (newest rounds). */
  workerFailures?: WorkerFailure[];
  /** Cloud jobs: set by the stall watchdog while no chunk finished for its threshold. */
  stalled?: { since: string; minutes: number };
}

export interface StatusInput {
  job: JobSpec;
  ledger: 'local' | 'dynamodb';
  counts: StatusCounts;
  rows: AsyncIterable<ChunkRow> | Iterable<ChunkRow>;
  now: number;
  /** Voxels of a chunk (its footprint), when the plan is known. */
  voxelsOf?: (chunkId: string) => number;
  totalVoxels?: number;
  price?: WorkerPrice;
  /** How far back completions count toward the rate. */
  windowMs?: number;
  /**
   * Whether anything can be working: false for a local state directory no run holds
   * (its RUNNING rows belong to a killed run). Undefined: judge by lease expiry alone.
   */
  workersAlive?: boolean;
}

const LIST_LIMIT = 20;

export async function jobStatus(i: StatusInput): Promise<JobStatus> {
  const { job, counts, now } = i;
  const windowMs = i.windowMs ?? 10 * 60_000;
  const finished: { t: number; voxels: number }[] = [];
  const byOwner = new Map<string, number[]>();
  const runningOwners = new Set<string>();
  const running: JobStatus['running'] = [];
  const retrying: JobStatus['retrying'] = [];
  const poison: JobStatus['poison'] = [];
  let attempts = 0;
  let retried = 0;
  let maxPer = 0;
  let doneVoxels = 0;
  for await (const row of i.rows) {
    attempts += row.attempts;
    if (row.attempts > 1 || (row.status === 'PENDING' && row.lastError !== undefined)) retried++;
    maxPer = Math.max(maxPer, row.attempts);
    if (isFinished(row.status)) {
      const v = i.voxelsOf?.(row.chunkId) ?? 0;
      doneVoxels += v;
      finished.push({ t: row.updatedAt, voxels: v });
      if (row.owner !== undefined) push(byOwner, row.owner, row.updatedAt);
    } else if (row.status === 'RUNNING') {
      const stale = i.workersAlive === false || leaseExpired(row, now);
      if (!stale && row.owner !== undefined) runningOwners.add(row.owner);
      running.push({
        chunkId: row.chunkId,
        owner: row.owner ?? '?',
        attempt: row.attempts,
        leaseExpiresInSeconds: Math.round(((row.leaseExpiresAt ?? now) - now) / 1000),
        stale,
      });
    } else if (row.status === 'FAILED') {
      poison.push({
        chunkId: row.chunkId,
        attempts: row.attempts,
        ...(row.owner !== undefined ? { owner: row.owner } : {}),
        ...(row.lastError !== undefined ? { lastError: row.lastError } : {}),
      });
    } else if (row.lastError !== undefined && retrying.length < LIST_LIMIT) {
      retrying.push({ chunkId: row.chunkId, attempts: row.attempts, lastError: row.lastError });
    }
  }
  running.sort((a, b) => a.leaseExpiresInSeconds - b.leaseExpiresInSeconds);
  finished.sort((a, b) => a.t - b.t);

  const total = job.chunkCount;
  const finishedCount = counts.DONE + counts.SKIPPED;
  const state: JobStatus['state'] =
    counts.FAILED > 0
      ? 'FAILED'
      : finishedCount === total
        ? 'SUCCEEDED'
        : runningOwners.size > 0
          ? 'RUNNING'
          : 'WAITING';
  const last = finished.at(-1)?.t;
  const rate = rateOf(
    finished,
    state === 'RUNNING' ? now : (last ?? now),
    windowMs,
    i.voxelsOf !== undefined,
  );
  const remainingChunks = total - finishedCount - counts.FAILED;
  let etaSeconds: number | undefined;
  if (state === 'RUNNING' && rate) {
    etaSeconds =
      rate.voxelsPerSecond && i.totalVoxels !== undefined
        ? (i.totalVoxels - doneVoxels) / rate.voxelsPerSecond
        : remainingChunks / rate.chunksPerSecond;
  }
  const workerHours = workerSeconds(byOwner, runningOwners, now) / 3600;
  const spend: JobStatus['spend'] = i.price
    ? {
        workerHours: round(workerHours, 6),
        pricePerHour: i.price.perHour,
        dollars: round(workerHours * i.price.perHour, 4),
        basis: `estimate: worker-hours from chunk completion times × $${i.price.perHour}/h (${i.price.basis})`,
      }
    : {
        workerHours: round(workerHours, 6),
        basis: 'estimate: worker-hours from chunk completion times',
      };
  const name = job.attributes?.name;
  return {
    jobId: job.jobId,
    ...(typeof name === 'string' ? { name } : {}),
    ledger: i.ledger,
    state,
    createdAt: new Date(job.createdAt).toISOString(),
    chunks: { ...counts, total },
    ...(i.totalVoxels !== undefined ? { voxels: { done: doneVoxels, total: i.totalVoxels } } : {}),
    ...(rate ? { rate } : {}),
    ...(etaSeconds !== undefined ? { etaSeconds: Math.round(etaSeconds) } : {}),
    ...(last !== undefined ? { lastCompletionAt: new Date(last).toISOString() } : {}),
    attempts: {
      total: attempts,
      retriedChunks: retried,
      maxPerChunk: maxPer,
      maxAttempts: job.maxAttempts,
    },
    workers: {
      active: runningOwners.size,
      seen: new Set([...byOwner.keys(), ...runningOwners]).size,
    },
    running: running.slice(0, LIST_LIMIT),
    retrying,
    poison,
    spend,
  };
}

const isFinished = (s: ChunkStatus): boolean => s === 'DONE' || s === 'SKIPPED';

function push(m: Map<string, number[]>, k: string, v: number): void {
  const list = m.get(k);
  if (list) list.push(v);
  else m.set(k, [v]);
}

/**
 * Completions within `windowMs` before `end`, over the time they span. The first
 * completion in the window only marks its start (counting it too would overstate the
 * rate by one chunk).
 */
function rateOf(
  finished: readonly { t: number; voxels: number }[],
  end: number,
  windowMs: number,
  withVoxels: boolean,
): JobStatus['rate'] | undefined {
  const recent = finished.filter((f) => f.t > end - windowMs && f.t <= end);
  if (recent.length < 2) return undefined;
  const span = (end - recent[0]!.t) / 1000;
  if (span <= 0) return undefined;
  const voxels = recent.slice(1).reduce((s, f) => s + f.voxels, 0);
  return {
    chunksPerSecond: (recent.length - 1) / span,
    ...(withVoxels ? { voxelsPerSecond: Math.round(voxels / span) } : {}),
    windowSeconds: Math.round(span),
  };
}

function workerSeconds(
  byOwner: Map<string, number[]>,
  runningOwners: Set<string>,
  now: number,
): number {
  const gaps: number[] = [];
  for (const times of byOwner.values()) {
    times.sort((a, b) => a - b);
    for (let k = 1; k < times.length; k++) gaps.push(times[k]! - times[k - 1]!);
  }
  gaps.sort((a, b) => a - b);
  // One typical chunk time: the median time between one worker's completions.
  const typical = gaps.length > 0 ? gaps[Math.floor(gaps.length / 2)]! : 0;
  let ms = 0;
  for (const [owner, times] of byOwner) {
    ms += times.at(-1)! - times[0]! + typical;
    if (runningOwners.has(owner)) ms += Math.max(0, now - times.at(-1)!);
  }
  for (const owner of runningOwners) if (!byOwner.has(owner)) ms += typical;
  return ms / 1000;
}

const round = (v: number, digits: number): number => Math.round(v * 10 ** digits) / 10 ** digits;
