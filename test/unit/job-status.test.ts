// `tessera status` figures from ledger rows with known completion times: the rate
// over the recent window, the ETA, worker-hours and spend, and how RUNNING rows of
// dead workers, retried and poison chunks are reported.

import { describe, expect, it } from 'vitest';
import { jobStatus } from '../../cli/job-status.ts';
import type { ChunkRow, ChunkStatus, JobSpec, StatusCounts } from '../../core/ledger/index.ts';

const T0 = 1_700_000_000_000;
const S = 1000;
const job: JobSpec = {
  jobId: 'j-1',
  chunkCount: 10,
  maxAttempts: 3,
  leaseMs: 60 * S,
  createdAt: T0,
  attributes: { name: 'j' },
};

function row(index: number, status: ChunkStatus, extra: Partial<ChunkRow> = {}): ChunkRow {
  return {
    jobId: job.jobId,
    chunkId: `c${index}`,
    index,
    status,
    attempts: status === 'PENDING' ? 0 : 1,
    token: status === 'PENDING' ? 0 : 1,
    updatedAt: T0,
    ...extra,
  };
}

function countsOf(rows: ChunkRow[]): StatusCounts {
  const c: StatusCounts = { PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0, SKIPPED: 0 };
  for (const r of rows) c[r.status]++;
  return c;
}

const NOW = T0 + 40 * S;
/** Owner a finishes at 10, 20, 30 s and holds a live lease; b at 15, 25 s; c's lease expired. */
function runningJob(): ChunkRow[] {
  return [
    row(0, 'DONE', { owner: 'a', updatedAt: T0 + 10 * S }),
    row(1, 'DONE', { owner: 'b', updatedAt: T0 + 15 * S }),
    row(2, 'DONE', { owner: 'a', updatedAt: T0 + 20 * S }),
    row(3, 'SKIPPED', { owner: 'b', updatedAt: T0 + 25 * S }),
    row(4, 'DONE', { owner: 'a', updatedAt: T0 + 30 * S }),
    row(5, 'RUNNING', { owner: 'a', leaseExpiresAt: NOW + 30 * S }),
    row(6, 'RUNNING', { owner: 'c', leaseExpiresAt: NOW - 60 * S, attempts: 2 }),
    row(7, 'PENDING', { attempts: 1, token: 1, lastError: 'model returned NaN' }),
    row(8, 'PENDING'),
    row(9, 'PENDING'),
  ];
}

describe('job status figures', () => {
  it('rate, ETA, worker-hours and spend from completion times', async () => {
    const rows = runningJob();
    const s = await jobStatus({
      job,
      ledger: 'local',
      counts: countsOf(rows),
      rows,
      now: NOW,
      voxelsOf: () => 1000,
      totalVoxels: 10_000,
      price: { perHour: 0.5, basis: 'test price' },
    });
    expect(s.state).toBe('RUNNING');
    expect(s.name).toBe('j');
    expect(s.chunks).toEqual({ PENDING: 3, RUNNING: 2, DONE: 4, SKIPPED: 1, FAILED: 0, total: 10 });
    expect(s.voxels).toEqual({ done: 5000, total: 10_000 });
    // Five completions from 10 s to now (40 s): the first marks the window's start.
    expect(s.rate).toEqual({ chunksPerSecond: 4 / 30, voxelsPerSecond: 133, windowSeconds: 30 });
    expect(s.etaSeconds).toBe(Math.round(5000 / 133));
    // Typical chunk: median gap 10 s. a: 30-10+10, plus 10 s since its last completion
    // (it holds a chunk); b: 25-15+10. c is dead and finished nothing: not counted.
    expect(s.spend.workerHours).toBe(Math.round((60 / 3600) * 1e6) / 1e6);
    expect(s.spend.dollars).toBe(Math.round((60 / 3600) * 0.5 * 1e4) / 1e4);
    expect(s.spend.basis).toMatch(/^estimate: .*test price/);
    expect(s.workers).toEqual({ active: 1, seen: 2 });
    expect(s.running.map((r) => [r.chunkId, r.stale])).toEqual([
      ['c6', true],
      ['c5', false],
    ]);
    expect(s.retrying).toEqual([{ chunkId: 'c7', attempts: 1, lastError: 'model returned NaN' }]);
    expect(s.attempts).toEqual({ total: 9, retriedChunks: 2, maxPerChunk: 2, maxAttempts: 3 });
    expect(s.poison).toEqual([]);
    expect(s.lastCompletionAt).toBe(new Date(T0 + 30 * S).toISOString());
  });

  it('a poison chunk fails the job and is listed with its owner and last error', async () => {
    const rows = runningJob();
    rows[7] = row(7, 'FAILED', {
      attempts: 3,
      token: 3,
      owner: 'b',
      lastError: 'CUDA out of memory',
    });
    const s = await jobStatus({ job, ledger: 'dynamodb', counts: countsOf(rows), rows, now: NOW });
    expect(s.state).toBe('FAILED');
    expect(s.poison).toEqual([
      { chunkId: 'c7', attempts: 3, owner: 'b', lastError: 'CUDA out of memory' },
    ]);
    expect(s.etaSeconds).toBeUndefined();
    // No plan: chunk rates only; no price: hours only.
    expect(s.rate?.voxelsPerSecond).toBeUndefined();
    expect(s.spend.dollars).toBeUndefined();
  });

  it('with no run holding a local state directory, RUNNING rows are stale and nothing is active', async () => {
    const rows = runningJob();
    const s = await jobStatus({
      job,
      ledger: 'local',
      counts: countsOf(rows),
      rows,
      now: NOW,
      workersAlive: false,
    });
    expect(s.state).toBe('WAITING');
    expect(s.running.every((r) => r.stale)).toBe(true);
    expect(s.workers.active).toBe(0);
    expect(s.etaSeconds).toBeUndefined();
    // The rate of a stopped job is measured up to its last completion, not to now.
    expect(s.rate).toEqual({ chunksPerSecond: 4 / 20, windowSeconds: 20 });
  });

  it('a finished job is SUCCEEDED (the word `tessera run` uses) with no ETA', async () => {
    const rows = Array.from({ length: 10 }, (_, i) =>
      row(i, 'DONE', { owner: 'a', updatedAt: T0 + (i + 1) * S }),
    );
    const s = await jobStatus({ job, ledger: 'local', counts: countsOf(rows), rows, now: NOW });
    expect(s.state).toBe('SUCCEEDED');
    expect(s.etaSeconds).toBeUndefined();
    expect(s.running).toEqual([]);
  });
});
