// The contract every Ledger adapter must pass (memory, local journal, IPC, DynamoDB).
// Time is passed explicitly as `now` wherever the port allows it, so lease expiry and
// clock skew are tested without sleeping.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  ChunkNotFoundError,
  InvalidJobError,
  JobNotFoundError,
  LeaseLostError,
  OutputClaimedError,
  UnknownChunkIdsError,
} from '../../core/ledger/errors.ts';
import {
  CHUNK_STATUSES,
  type ChunkRow,
  type ChunkStatus,
  type Claim,
  type JobSpec,
  type Ledger,
  type RearmSelection,
  SKEW_MS,
  type StatusCounts,
} from '../../core/ledger/port.ts';

export type MakeLedger = () => Promise<{ ledger: Ledger; close?: () => Promise<void> }>;

const T0 = 1_700_000_000_000;

const spec = (jobId: string, chunkCount: number, over: Partial<JobSpec> = {}): JobSpec => ({
  jobId,
  chunkCount,
  maxAttempts: 3,
  leaseMs: 10_000,
  createdAt: T0,
  ...over,
});

function* chunksOf(n: number): Generator<{ chunkId: string; index: number }> {
  for (let i = 0; i < n; i++) yield { chunkId: `c${i}`, index: i };
}

async function rows(ledger: Ledger, jobId: string, status?: ChunkStatus): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const r of ledger.list(jobId, status)) out.push(r);
  return out;
}

async function rowAt(ledger: Ledger, jobId: string, index: number): Promise<ChunkRow> {
  const all = await rows(ledger, jobId);
  const r = all.find((x) => x.index === index);
  if (!r) throw new Error(`test bug: no row ${index} in ${jobId}`);
  return r;
}

async function leaseLost(p: Promise<unknown>): Promise<LeaseLostError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(LeaseLostError);
  return err as LeaseLostError;
}

/** The adapter's rearm; every adapter under contract must have one. */
function rearmOf(
  l: Ledger,
): (jobId: string, which: RearmSelection) => Promise<{ rearmed: number }> {
  const rearm = l.rearm;
  if (!rearm) throw new Error('this adapter has no rearm: every Ledger adapter must implement it');
  return rearm.bind(l);
}

const counts = (c: Partial<StatusCounts>): StatusCounts => ({
  PENDING: 0,
  RUNNING: 0,
  DONE: 0,
  FAILED: 0,
  SKIPPED: 0,
  ...c,
});

export function ledgerContract(name: string, makeLedger: MakeLedger): void {
  const withLedger = async (f: (ledger: Ledger) => Promise<void>): Promise<void> => {
    const { ledger, close } = await makeLedger();
    try {
      await f(ledger);
    } finally {
      await close?.();
    }
  };

  describe(`Ledger contract: ${name}`, () => {
    it('createJob is idempotent by job id and keeps the first spec', () =>
      withLedger(async (l) => {
        const first = await l.createJob(
          spec('j', 4, { attributes: { model: 'unet', z: 3 } }),
          chunksOf(4),
        );
        expect(first.created).toBe(true);
        expect(first.job).toEqual(spec('j', 4, { attributes: { model: 'unet', z: 3 } }));
        const again = await l.createJob(spec('j', 9, { maxAttempts: 7 }), chunksOf(9));
        expect(again).toEqual({ created: false, job: first.job });
        expect(await l.getJob('j')).toEqual(first.job);
        expect(await l.getJob('nope')).toBeUndefined();
        expect(await l.counts('j')).toEqual(counts({ PENDING: 4 }));
        const all = await rows(l, 'j');
        expect(all.map((r) => [r.index, r.chunkId, r.status, r.attempts, r.token])).toEqual([
          [0, 'c0', 'PENDING', 0, 0],
          [1, 'c1', 'PENDING', 0, 0],
          [2, 'c2', 'PENDING', 0, 0],
          [3, 'c3', 'PENDING', 0, 0],
        ]);
      }));

    it('createJob rejects chunk lists that do not cover 0..chunkCount-1 once, creating nothing', () =>
      withLedger(async (l) => {
        const bad: [string, JobSpec, { chunkId: string; index: number }[]][] = [
          ['too few', spec('a', 3), [...chunksOf(2)]],
          [
            'repeated index',
            spec('b', 2),
            [
              { chunkId: 'x', index: 0 },
              { chunkId: 'y', index: 0 },
            ],
          ],
          [
            'repeated id',
            spec('c', 2),
            [
              { chunkId: 'x', index: 0 },
              { chunkId: 'x', index: 1 },
            ],
          ],
          ['out of range', spec('d', 1), [{ chunkId: 'x', index: 1 }]],
          ['empty id', spec('e', 1), [{ chunkId: '', index: 0 }]],
          ['bad spec', spec('f', 1, { maxAttempts: 0 }), [...chunksOf(1)]],
        ];
        for (const [why, job, chunks] of bad) {
          await expect(l.createJob(job, chunks), why).rejects.toBeInstanceOf(InvalidJobError);
          expect(await l.getJob(job.jobId), why).toBeUndefined();
        }
        // A failed creation leaves the id free.
        expect((await l.createJob(spec('a', 2), chunksOf(2))).created).toBe(true);
      }));

    it('claims from startIndex upward, then wraps around to steal', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 5), chunksOf(5));
        const c = await l.claim('j', 'w1', { startIndex: 3, now: T0 });
        expect(c).toEqual({
          jobId: 'j',
          chunkId: 'c3',
          index: 3,
          owner: 'w1',
          token: 1,
          attempt: 1,
          leaseExpiresAt: T0 + 10_000,
        });
        const order: number[] = [];
        for (;;) {
          const next = await l.claim('j', 'w1', { startIndex: 3, now: T0 });
          if (!next) break;
          order.push(next.index);
        }
        expect(order).toEqual([4, 0, 1, 2]);
        expect(await l.counts('j')).toEqual(counts({ RUNNING: 5 }));
      }));

    it('a start index beyond the job wraps modulo the chunk count', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 5), chunksOf(5));
        expect((await l.claim('j', 'w', { startIndex: 7, now: T0 }))?.index).toBe(2);
        expect((await l.claim('j', 'w', { startIndex: 0, now: T0 }))?.index).toBe(0);
        expect((await l.claim('j', 'w', { startIndex: 2, now: T0 }))?.index).toBe(3);
      }));

    it('never hands one chunk to two of 8 concurrent claimers', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 50), chunksOf(50));
        const claimer = async (k: number): Promise<Claim[]> => {
          const got: Claim[] = [];
          for (;;) {
            const c = await l.claim('j', `w${k}`, { startIndex: k * 6, now: T0 });
            if (!c) return got;
            got.push(c);
          }
        };
        const all = (await Promise.all([0, 1, 2, 3, 4, 5, 6, 7].map(claimer))).flat();
        expect(all).toHaveLength(50);
        expect(new Set(all.map((c) => c.chunkId)).size).toBe(50);
        expect(all.every((c) => c.token === 1 && c.attempt === 1)).toBe(true);
        expect(await l.counts('j')).toEqual(counts({ RUNNING: 50 }));
        const owners = new Map((await rows(l, 'j')).map((r) => [r.chunkId, r.owner]));
        for (const c of all) expect(owners.get(c.chunkId)).toBe(c.owner);
      }));

    it('an expired lease is re-claimed with a higher token and the stale owner is fenced off', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 1, { leaseMs: 1000 }), chunksOf(1));
        const a = await l.claim('j', 'A', { now: T0 });
        expect(a?.leaseExpiresAt).toBe(T0 + 1000);
        // Lease alive: nobody else gets it.
        expect(await l.claim('j', 'B', { now: T0 + 500 })).toBeUndefined();
        const b = await l.claim('j', 'B', { now: T0 + 1000 + SKEW_MS + 1 });
        expect(b).toMatchObject({ owner: 'B', index: 0, token: 2, attempt: 2 });
        const before = await rowAt(l, 'j', 0);
        expect(before).toMatchObject({ status: 'RUNNING', owner: 'B', token: 2, attempts: 2 });

        const stale = a!;
        const errs = [
          await leaseLost(l.heartbeat(stale, { now: T0 + 7000 })),
          await leaseLost(l.complete(stale)),
          await leaseLost(l.fail(stale, 'boom')),
          await leaseLost(l.release(stale)),
        ];
        for (const e of errs) {
          expect(e.name).toBe('LeaseLostError');
          expect(e.claim).toMatchObject({ owner: 'A', token: 1 });
          expect(e.row).toMatchObject({
            jobId: 'j',
            chunkId: 'c0',
            status: 'RUNNING',
            owner: 'B',
            token: 2,
          });
          expect(e.message).toContain('c0');
          expect(e.message).toContain('"j"');
        }
        expect(await rowAt(l, 'j', 0)).toEqual(before);

        // The same owner name coming back after expiry is a new tenure: the token fences.
        const b2 = await l.claim('j', 'B', { now: T0 + 2 * (1000 + SKEW_MS) + 10 });
        expect(b2).toMatchObject({ owner: 'B', token: 3 });
        await leaseLost(l.complete(b!));
        await l.complete(b2!);
        expect(await l.counts('j')).toEqual(counts({ DONE: 1 }));
      }));

    it('tolerates clock skew: a lease expired less than SKEW_MS ago is not claimable', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 1, { leaseMs: 1000 }), chunksOf(1));
        const a = (await l.claim('j', 'A', { now: T0 }))!;
        expect(await l.claim('j', 'B', { now: T0 + 1001 })).toBeUndefined();
        expect(await l.claim('j', 'B', { now: T0 + 1000 + SKEW_MS })).toBeUndefined();
        expect(await l.sweep('j', { now: T0 + 1000 + SKEW_MS })).toEqual({ expired: 0, failed: 0 });
        // Past its lease but not taken: the owner may still extend it.
        const a2 = await l.heartbeat(a, { now: T0 + 1000 + SKEW_MS });
        expect(a2).toEqual({ ...a, leaseExpiresAt: T0 + 2000 + SKEW_MS });
        expect(await l.claim('j', 'B', { now: T0 + 2000 + 2 * SKEW_MS })).toBeUndefined();
        expect(await l.claim('j', 'B', { now: T0 + 2001 + 2 * SKEW_MS })).toMatchObject({
          owner: 'B',
          token: 2,
        });
      }));

    it("heartbeat extends the lease by leaseMs from the caller's now", () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 2, { leaseMs: 1000 }), chunksOf(2));
        let c = (await l.claim('j', 'A', { now: T0 }))!;
        for (let t = 800; t <= 8000; t += 800) {
          c = await l.heartbeat(c, { now: T0 + t });
          expect(c.leaseExpiresAt).toBe(T0 + t + 1000);
        }
        // Still held at a time far past the first lease.
        expect((await l.claim('j', 'B', { now: T0 + 9000 }))?.index).toBe(1);
        expect(await l.claim('j', 'B', { now: T0 + 9000 })).toBeUndefined();
        expect(await rowAt(l, 'j', 0)).toMatchObject({
          owner: 'A',
          leaseExpiresAt: T0 + 9000,
          token: 1,
        });
      }));

    it('release returns the chunk without counting the attempt', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 1, { maxAttempts: 2 }), chunksOf(1));
        for (let i = 1; i <= 5; i++) {
          const c = (await l.claim('j', `w${i}`, { now: T0 + i }))!;
          expect(c).toMatchObject({ attempt: 1, token: i });
          await l.release(c);
          const r = await rowAt(l, 'j', 0);
          expect(r).toMatchObject({ status: 'PENDING', attempts: 0, token: i });
          expect(r.owner).toBeUndefined();
          expect(r.leaseExpiresAt).toBeUndefined();
          await leaseLost(l.release(c));
        }
        expect(await l.counts('j')).toEqual(counts({ PENDING: 1 }));
      }));

    it('fail retries until maxAttempts, then the chunk is FAILED (poison) with its last error', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 2, { maxAttempts: 3 }), chunksOf(2));
        for (let attempt = 1; attempt <= 2; attempt++) {
          const c = (await l.claim('j', 'w', { now: T0 }))!;
          expect(c).toMatchObject({ index: 0, attempt });
          const r = await l.fail(c, `boom ${attempt}`);
          expect(r).toMatchObject({
            chunkId: 'c0',
            status: 'PENDING',
            attempts: attempt,
            lastError: `boom ${attempt}`,
          });
          expect(r.owner).toBeUndefined();
        }
        const last = (await l.claim('j', 'w', { now: T0 }))!;
        expect(last).toMatchObject({ index: 0, attempt: 3, token: 3 });
        const r = await l.fail(last, 'NaN in output');
        expect(r).toMatchObject({ status: 'FAILED', attempts: 3, lastError: 'NaN in output' });
        expect(await rowAt(l, 'j', 0)).toEqual(r);
        // Never retried again.
        const other = (await l.claim('j', 'w', { now: T0 }))!;
        expect(other.index).toBe(1);
        await l.complete(other);
        expect(await l.claim('j', 'w', { now: T0 + 10 ** 9 })).toBeUndefined();
        expect(await l.counts('j')).toEqual(counts({ FAILED: 1, DONE: 1 }));
        await leaseLost(l.fail(last, 'again'));
      }));

    it('a lease expiring at maxAttempts makes the chunk FAILED on the claim path', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 1, { maxAttempts: 2, leaseMs: 1000 }), chunksOf(1));
        const step = 1000 + SKEW_MS + 1;
        expect(await l.claim('j', 'A', { now: T0 })).toMatchObject({ attempt: 1 });
        expect(await l.claim('j', 'B', { now: T0 + step })).toMatchObject({ attempt: 2 });
        expect(await l.claim('j', 'C', { now: T0 + step + step - 1 })).toBeUndefined();
        expect(await rowAt(l, 'j', 0)).toMatchObject({ status: 'RUNNING', owner: 'B' });
        expect(await l.claim('j', 'C', { now: T0 + 2 * step })).toBeUndefined();
        const r = await rowAt(l, 'j', 0);
        expect(r).toMatchObject({ status: 'FAILED', attempts: 2 });
        expect(r.lastError).toMatch(/died or hung 2 times/);
        expect(await l.counts('j')).toEqual(counts({ FAILED: 1 }));
      }));

    it('sweep re-drives expired leases and fails those at maxAttempts', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 4, { maxAttempts: 2, leaseMs: 1000 }), chunksOf(4));
        const step = 1000 + SKEW_MS + 1;
        // Timed so that each claim has exactly one candidate, whatever an adapter prefers.
        // chunk 0: two expired tries (poison); 1: one expired try; 2: alive; 3: done.
        const c0 = (await l.claim('j', 'A', { startIndex: 0, now: T0 }))!;
        const c3 = (await l.claim('j', 'A', { startIndex: 3, now: T0 }))!;
        await l.complete(c3);
        const c2 = (await l.claim('j', 'C', { startIndex: 2, now: T0 + step - 100 }))!;
        const c1 = (await l.claim('j', 'A', { startIndex: 1, now: T0 + step - 50 }))!;
        const c0b = (await l.claim('j', 'B', { startIndex: 0, now: T0 + step }))!;
        expect([c0.index, c3.index, c2.index, c1.index, c0b.index, c0b.attempt]).toEqual([
          0, 3, 2, 1, 0, 2,
        ]);
        await l.heartbeat(c2, { now: T0 + 2 * step - 5 });
        expect(await l.sweep('j', { now: T0 + 2 * step })).toEqual({ expired: 1, failed: 1 });
        const [r0, r1, r2, r3] = await rows(l, 'j');
        expect(r0).toMatchObject({ status: 'FAILED', attempts: 2 });
        expect(r0?.lastError).toMatch(/died or hung/);
        expect(r1).toMatchObject({ status: 'PENDING', attempts: 1, token: 1 });
        expect(r1?.owner).toBeUndefined();
        expect(r2).toMatchObject({ status: 'RUNNING', owner: 'C' });
        expect(r3).toMatchObject({ status: 'DONE', owner: 'A' });
        expect(await l.sweep('j', { now: T0 + 2 * step })).toEqual({ expired: 0, failed: 0 });
        expect(await l.claim('j', 'D', { now: T0 + 2 * step })).toMatchObject({
          index: 1,
          attempt: 2,
          token: 2,
        });
        await leaseLost(l.heartbeat(c1, { now: T0 + 2 * step }));
      }));

    it('complete is idempotent for the same owner and token, and final', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 3, { leaseMs: 1000 }), chunksOf(3));
        const c = (await l.claim('j', 'A', { now: T0 }))!;
        await l.complete(c);
        const done = await rowAt(l, 'j', 0);
        expect(done).toMatchObject({ status: 'DONE', owner: 'A', token: 1, attempts: 1 });
        expect(done.leaseExpiresAt).toBeUndefined();
        await l.complete(c); // the retry after a lost response
        expect(await rowAt(l, 'j', 0)).toEqual(done);
        await leaseLost(l.complete(c, { skipped: true }));
        await leaseLost(l.complete({ ...c, token: 2 }));
        await leaseLost(l.complete({ ...c, owner: 'B' }));
        await leaseLost(l.heartbeat(c, { now: T0 }));
        await leaseLost(l.release(c));
        await leaseLost(l.fail(c, 'late'));
        expect(await rowAt(l, 'j', 0)).toEqual(done);

        const s = (await l.claim('j', 'A', { now: T0 }))!;
        await l.complete(s, { skipped: true });
        await l.complete(s, { skipped: true });
        expect(await rowAt(l, 'j', 1)).toMatchObject({ status: 'SKIPPED', owner: 'A' });
        // Final: never claimable again, whatever the clock.
        expect((await l.claim('j', 'B', { now: T0 + 10 ** 9 }))?.index).toBe(2);
        expect(await l.claim('j', 'B', { now: T0 + 10 ** 9 })).toBeUndefined();
        expect(await l.counts('j')).toEqual(counts({ DONE: 1, SKIPPED: 1, RUNNING: 1 }));
      }));

    it('statuses reads each asked row, in the order asked, as of the last transition', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 5, { maxAttempts: 1 }), chunksOf(5));
        const ref = (i: number) => ({ chunkId: `c${i}`, index: i });
        const asked = [ref(3), ref(0), ref(1), ref(3)];
        expect(await l.statuses('j', asked)).toEqual(['PENDING', 'PENDING', 'PENDING', 'PENDING']);
        const c0 = await l.claim('j', 'w0', { startIndex: 0, now: T0 });
        const c1 = await l.claim('j', 'w1', { startIndex: 1, now: T0 });
        const c3 = await l.claim('j', 'w3', { startIndex: 3, now: T0 });
        expect(await l.statuses('j', asked)).toEqual(['RUNNING', 'RUNNING', 'RUNNING', 'RUNNING']);
        // Read right after complete() returns: the last-contributor decision relies on it.
        await l.complete(c3!);
        expect(await l.statuses('j', [ref(3)])).toEqual(['DONE']);
        await l.complete(c0!, { skipped: true });
        await l.fail(c1!, 'bad');
        expect(await l.statuses('j', asked)).toEqual(['DONE', 'SKIPPED', 'FAILED', 'DONE']);
        expect(await l.statuses('j', [])).toEqual([]);
        // 150 refs: more than one DynamoDB BatchGetItem request holds.
        await l.createJob(spec('big', 150), chunksOf(150));
        const many = [...chunksOf(150)].reverse();
        expect(await l.statuses('big', many)).toEqual(many.map(() => 'PENDING'));
        await expect(l.statuses('j', [{ chunkId: 'c9', index: 9 }])).rejects.toBeInstanceOf(
          ChunkNotFoundError,
        );
        await expect(l.statuses('j', [{ chunkId: 'c2', index: 4 }])).rejects.toBeInstanceOf(
          ChunkNotFoundError,
        );
        await expect(l.statuses('nope', [ref(0)])).rejects.toBeInstanceOf(JobNotFoundError);
      }));

    it('lists rows by status in index order', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 6, { maxAttempts: 1 }), chunksOf(6));
        const [c0, c1, c2, c3] = [
          await l.claim('j', 'w0', { startIndex: 0, now: T0 }),
          await l.claim('j', 'w1', { startIndex: 1, now: T0 }),
          await l.claim('j', 'w2', { startIndex: 2, now: T0 }),
          await l.claim('j', 'w3', { startIndex: 3, now: T0 }),
        ];
        await l.complete(c2!);
        await l.fail(c1!, 'bad');
        await l.complete(c0!, { skipped: true });
        void c3;
        const ids = async (s?: ChunkStatus): Promise<string[]> =>
          (await rows(l, 'j', s)).map((r) => r.chunkId);
        expect(await ids('DONE')).toEqual(['c2']);
        expect(await ids('FAILED')).toEqual(['c1']);
        expect(await ids('SKIPPED')).toEqual(['c0']);
        expect(await ids('RUNNING')).toEqual(['c3']);
        expect(await ids('PENDING')).toEqual(['c4', 'c5']);
        expect(await ids()).toEqual(['c0', 'c1', 'c2', 'c3', 'c4', 'c5']);
        const all = await rows(l, 'j');
        expect(all.every((r) => r.jobId === 'j')).toBe(true);
        expect(all.map((r) => r.status)).toEqual([
          'SKIPPED',
          'FAILED',
          'DONE',
          'RUNNING',
          'PENDING',
          'PENDING',
        ]);
      }));

    it('names the job (and chunk) when the job or chunk is unknown', () =>
      withLedger(async (l) => {
        await l.createJob(spec('j', 2), chunksOf(2));
        const ghost: Claim = {
          jobId: 'ghost',
          chunkId: 'c0',
          index: 0,
          owner: 'w',
          token: 1,
          attempt: 1,
          leaseExpiresAt: T0,
        };
        const calls: [string, () => Promise<unknown>][] = [
          ['claim', () => l.claim('ghost', 'w', { now: T0 })],
          ['heartbeat', () => l.heartbeat(ghost, { now: T0 })],
          ['complete', () => l.complete(ghost)],
          ['release', () => l.release(ghost)],
          ['fail', () => l.fail(ghost, 'x')],
          ['counts', () => l.counts('ghost')],
          ['sweep', () => l.sweep('ghost', { now: T0 })],
          ['list', () => rows(l, 'ghost')],
        ];
        for (const [what, call] of calls) {
          const err = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(err, what).toBeInstanceOf(JobNotFoundError);
          expect((err as JobNotFoundError).jobId, what).toBe('ghost');
          expect((err as Error).message, what).toContain('"ghost"');
        }
        const wrongChunk = { ...ghost, jobId: 'j', chunkId: 'c1' };
        await expect(l.complete(wrongChunk)).rejects.toBeInstanceOf(ChunkNotFoundError);
        await expect(l.heartbeat({ ...ghost, jobId: 'j', index: 5 })).rejects.toBeInstanceOf(
          ChunkNotFoundError,
        );
      }));

    it('claimOutput: one job per output URL; the same job may claim again, another is refused', () =>
      withLedger(async (l) => {
        const url = 's3://lab/outputs/cells.zarr';
        // Independent of job rows: planning claims the output before it creates the job.
        await l.claimOutput(url, 'job-a');
        await l.claimOutput(url, 'job-a');
        await l.createJob(spec('job-a', 2), chunksOf(2));
        await l.claimOutput(url, 'job-a');
        const err = await l.claimOutput(url, 'job-b').then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(OutputClaimedError);
        expect(err).toMatchObject({ url, holder: 'job-a', jobId: 'job-b' });
        expect((err as Error).message).toContain(url);
        expect((err as Error).message).toContain('"job-a"');
        expect((err as Error).message).toMatch(/another output\.url/);
        // Another URL, even a near one, is another claim.
        await l.claimOutput(`${url}-2`, 'job-b');
        await l.claimOutput('s3://lab/outputs/cells.zar', 'job-b');
        // The refusal changed nothing: job-a still holds it.
        await l.claimOutput(url, 'job-a');
        await expect(l.claimOutput(url, '')).rejects.toBeInstanceOf(RangeError);
      }));

    it('claimOutput with `replacing` takes over from that job only', () =>
      withLedger(async (l) => {
        const url = '/data/out.zarr';
        await l.claimOutput(url, 'old');
        await expect(l.claimOutput(url, 'new', { replacing: 'other' })).rejects.toMatchObject({
          name: 'OutputClaimedError',
          holder: 'old',
        });
        await l.claimOutput(url, 'new', { replacing: 'old' });
        await expect(l.claimOutput(url, 'old')).rejects.toMatchObject({ holder: 'new' });
        // Replacing a job that no longer holds it is a plain claim by the holder.
        await l.claimOutput(url, 'new', { replacing: 'old' });
        // Absent: replacing claims it outright.
        await l.claimOutput('/data/fresh.zarr', 'new', { replacing: 'old' });
        await expect(l.claimOutput('/data/fresh.zarr', 'old')).rejects.toBeInstanceOf(
          OutputClaimedError,
        );
      }));

    it('claimOutput: of 8 jobs racing for one output, exactly one wins', () =>
      withLedger(async (l) => {
        const url = 's3://lab/outputs/race.zarr';
        const results = await Promise.allSettled(
          Array.from({ length: 8 }, (_, i) => l.claimOutput(url, `job-${i}`)),
        );
        const won = results.flatMap((r, i) => (r.status === 'fulfilled' ? [`job-${i}`] : []));
        expect(won).toHaveLength(1);
        for (const r of results)
          if (r.status === 'rejected') {
            expect(r.reason).toBeInstanceOf(OutputClaimedError);
            expect((r.reason as OutputClaimedError).holder).toBe(won[0]);
          }
      }));

    it('rearm { status: FAILED }: every FAILED row is PENDING again with 0 attempts, the rest untouched', () =>
      withLedger(async (l) => {
        const rearm = rearmOf(l);
        await l.createJob(spec('j', 5, { maxAttempts: 2 }), chunksOf(5));
        // c0, c1: FAILED (c0 by fail, c1 by a lease that expired at maxAttempts); c2: DONE;
        // c3: RUNNING; c4: PENDING with one attempt spent.
        for (let attempt = 1; attempt <= 2; attempt++) {
          const c = (await l.claim('j', 'w', { startIndex: 0, now: T0 }))!;
          expect(c).toMatchObject({ index: 0, attempt });
          await l.fail(c, `NaN in output (${attempt})`);
        }
        const step = 10_000 + SKEW_MS + 1;
        expect(await l.claim('j', 'A', { startIndex: 1, now: T0 })).toMatchObject({ index: 1 });
        expect(await l.claim('j', 'B', { startIndex: 1, now: T0 + step })).toMatchObject({
          index: 1,
          attempt: 2,
        });
        await l.sweep('j', { now: T0 + 2 * step });
        const c2 = (await l.claim('j', 'w', { startIndex: 2, now: T0 + 2 * step }))!;
        expect(c2.index).toBe(2);
        await l.complete(c2);
        const c3 = (await l.claim('j', 'w', { startIndex: 3, now: T0 + 2 * step }))!;
        const c4 = (await l.claim('j', 'w', { startIndex: 4, now: T0 + 2 * step }))!;
        expect([c3.index, c4.index]).toEqual([3, 4]);
        await l.fail(c4, 'model error');
        expect(await l.counts('j')).toEqual(counts({ FAILED: 2, DONE: 1, RUNNING: 1, PENDING: 1 }));
        const before = await rows(l, 'j');

        expect(await rearm('j', { status: 'FAILED' })).toEqual({ rearmed: 2 });
        expect(await l.counts('j')).toEqual(counts({ PENDING: 3, DONE: 1, RUNNING: 1 }));
        const [r0, r1, r2, r3, r4] = await rows(l, 'j');
        expect(r0).toMatchObject({ status: 'PENDING', attempts: 0, token: 2 });
        expect(r1).toMatchObject({ status: 'PENDING', attempts: 0, token: 2 });
        for (const r of [r0, r1]) {
          expect(r?.owner).toBeUndefined();
          expect(r?.leaseExpiresAt).toBeUndefined();
        }
        // The old error is kept inside the new one, so a report can still show it.
        expect(r0?.lastError).toMatch(
          /^re-armed from FAILED after 2 attempt\(s\).*NaN in output \(2\)/,
        );
        expect(r1?.lastError).toMatch(
          /^re-armed from FAILED after 2 attempt\(s\).*died or hung 2 times/,
        );
        expect([r2, r3, r4]).toEqual(before.slice(2));
        // Claimable again from the first attempt, with the next token.
        expect(await l.claim('j', 'x', { startIndex: 0, now: T0 + 2 * step })).toMatchObject({
          index: 0,
          attempt: 1,
          token: 3,
        });
        expect(await l.claim('j', 'x', { startIndex: 1, now: T0 + 2 * step })).toMatchObject({
          index: 1,
          attempt: 1,
          token: 3,
        });
        // The RUNNING tenure was not touched.
        await expect(l.heartbeat(c3, { now: T0 + 2 * step })).resolves.toMatchObject({ token: 1 });
        expect(await rearm('j', { status: 'FAILED' })).toEqual({ rearmed: 0 });
      }));

    it('rearm { chunkIds }: named DONE, SKIPPED and FAILED rows run again; RUNNING and PENDING ones are skipped', () =>
      withLedger(async (l) => {
        const rearm = rearmOf(l);
        await l.createJob(spec('j', 6, { maxAttempts: 1 }), chunksOf(6));
        const claimed: Claim[] = [];
        for (let i = 0; i < 5; i++) {
          const c = (await l.claim('j', `w${i}`, { startIndex: i, now: T0 }))!;
          expect(c.index).toBe(i);
          claimed.push(c);
        }
        await l.complete(claimed[0]!);
        await l.complete(claimed[1]!, { skipped: true });
        await l.fail(claimed[2]!, 'bad bytes');
        await l.complete(claimed[3]!);
        // c4 stays RUNNING, c5 PENDING.
        const before = await rows(l, 'j');

        expect(await rearm('j', { chunkIds: ['c0', 'c1', 'c2', 'c4', 'c5', 'c0'] })).toEqual({
          rearmed: 3,
        });
        expect(await l.counts('j')).toEqual(counts({ PENDING: 4, DONE: 1, RUNNING: 1 }));
        const after = await rows(l, 'j');
        expect(after.slice(0, 3).map((r) => [r.status, r.attempts, r.token, r.owner])).toEqual([
          ['PENDING', 0, 1, undefined],
          ['PENDING', 0, 1, undefined],
          ['PENDING', 0, 1, undefined],
        ]);
        expect(after[0]?.lastError).toBe('re-armed from DONE after 1 attempt(s)');
        expect(after[1]?.lastError).toBe('re-armed from SKIPPED after 1 attempt(s)');
        expect(after[2]?.lastError).toBe(
          're-armed from FAILED after 1 attempt(s); its last error then: bad bytes',
        );
        // c3 was not named; c4 (RUNNING) and c5 (PENDING) were, and are as they were.
        expect(after.slice(3)).toEqual(before.slice(3));
        await l.complete(claimed[4]!);
        // Every re-armed row is claimable again, at its first attempt (maxAttempts is 1).
        const again: number[] = [];
        for (;;) {
          const c = await l.claim('j', 'z', { now: T0 + 1 });
          if (!c) break;
          expect(c.attempt).toBe(1);
          again.push(c.index);
        }
        expect(again.sort((a, b) => a - b)).toEqual([0, 1, 2, 5]);
        expect(await rearm('j', { chunkIds: [] })).toEqual({ rearmed: 0 });
      }));

    it('rearm refuses chunk ids the job does not have, moving nothing; an unknown job is named', () =>
      withLedger(async (l) => {
        const rearm = rearmOf(l);
        await l.createJob(spec('j', 3), chunksOf(3));
        await l.complete((await l.claim('j', 'w', { startIndex: 0, now: T0 }))!);
        const before = await rows(l, 'j');
        const err = await rearm('j', { chunkIds: ['c0', 'nope', 'c9'] }).then(
          () => undefined,
          (e: unknown) => e,
        );
        expect(err).toBeInstanceOf(UnknownChunkIdsError);
        const e = err as UnknownChunkIdsError;
        expect(e.name).toBe('UnknownChunkIdsError');
        expect([...e.chunkIds].sort()).toEqual(['c9', 'nope']);
        expect(e.message).toMatch(/job "j" has no chunk .*"nope"/);
        expect(e.message).toMatch(/nothing was re-armed/);
        expect(await rows(l, 'j')).toEqual(before);
        expect(await l.counts('j')).toEqual(counts({ DONE: 1, PENDING: 2 }));
        for (const which of [{ status: 'FAILED' }, { chunkIds: ['c0'] }] as RearmSelection[]) {
          const gone = await rearm('ghost', which).then(
            () => undefined,
            (x: unknown) => x,
          );
          expect(gone).toBeInstanceOf(JobNotFoundError);
          expect((gone as JobNotFoundError).jobId).toBe('ghost');
        }
      }));

    it('matches a tiny model over random operation sequences (counts and rows exact)', async () => {
      const { ledger, close } = await makeLedger();
      let run = 0;
      try {
        await fc.assert(
          fc.asyncProperty(
            fc.record({
              n: fc.integer({ min: 1, max: 5 }),
              maxAttempts: fc.integer({ min: 1, max: 3 }),
              ops: fc.array(opArb, { minLength: 1, maxLength: 40 }),
            }),
            async ({ n, maxAttempts, ops }) => {
              await checkAgainstModel(ledger, `model-${run++}`, n, maxAttempts, ops);
            },
          ),
          { numRuns: 60 },
        );
      } finally {
        await close?.();
      }
    });
  });
}

// ---- model-based test -----------------------------------------------------------------

type Op =
  | { k: 'claim'; owner: number; start: number; adv: number; skew: number }
  | {
      k: 'heartbeat' | 'complete' | 'skip' | 'release' | 'fail';
      pick: number;
      adv: number;
      skew: number;
    }
  | { k: 'sweep'; adv: number; skew: number }
  /** all: every FAILED row; else the chunks whose bit is set in `pick`. */
  | { k: 'rearm'; all: boolean; pick: number; adv: number; skew: number };

const LEASE = 4000;
const timing = {
  adv: fc.constantFrom(0, 300, 2500, 4500, 9000),
  skew: fc.integer({ min: -2000, max: 2000 }),
};
const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant('claim' as const),
      owner: fc.nat(2),
      start: fc.nat(6),
      ...timing,
    }),
  },
  ...(['heartbeat', 'complete', 'skip', 'release', 'fail'] as const).map((k) => ({
    weight: 2,
    arbitrary: fc.record({ k: fc.constant(k), pick: fc.nat(50), ...timing }),
  })),
  { weight: 1, arbitrary: fc.record({ k: fc.constant('sweep' as const), ...timing }) },
  {
    weight: 1,
    arbitrary: fc.record({
      k: fc.constant('rearm' as const),
      all: fc.boolean(),
      pick: fc.nat(31),
      ...timing,
    }),
  },
);

/** The obvious model: an array of rows and the rules written out longhand. */
interface ModelRow {
  status: ChunkStatus;
  owner: string | undefined;
  token: number;
  attempts: number;
  lease: number | undefined;
}

async function checkAgainstModel(
  l: Ledger,
  jobId: string,
  n: number,
  maxAttempts: number,
  ops: Op[],
): Promise<void> {
  await l.createJob(spec(jobId, n, { maxAttempts, leaseMs: LEASE }), chunksOf(n));
  const m: ModelRow[] = Array.from({ length: n }, () => ({
    status: 'PENDING',
    owner: undefined,
    token: 0,
    attempts: 0,
    lease: undefined,
  }));
  const expired = (r: ModelRow, now: number): boolean =>
    r.status === 'RUNNING' && r.lease !== undefined && now - r.lease > SKEW_MS;
  const claimable = (r: ModelRow, now: number): boolean =>
    r.attempts < maxAttempts && (r.status === 'PENDING' || expired(r, now));
  const holds = (r: ModelRow, c: Claim): boolean =>
    r.status === 'RUNNING' && r.owner === c.owner && r.token === c.token;
  const claims: Claim[] = [];
  let clock = T0;

  for (const op of ops) {
    clock += op.adv;
    const now = clock + op.skew;
    const ctx = `${jobId} ${JSON.stringify(op)}`;
    if (op.k === 'claim') {
      const c = await l.claim(jobId, `w${op.owner}`, { startIndex: op.start, now });
      // Adapters may poison any expired-at-max lease they meet while claiming; adopt that.
      const actual = await rows(l, jobId);
      m.forEach((r, i) => {
        if (expired(r, now) && r.attempts >= maxAttempts && actual[i]?.status === 'FAILED') {
          r.status = 'FAILED';
        }
      });
      if (c) {
        const r = m[c.index]!;
        expect(claimable(r, now), ctx).toBe(true);
        expect(c, ctx).toMatchObject({
          owner: `w${op.owner}`,
          token: r.token + 1,
          attempt: r.attempts + 1,
          leaseExpiresAt: now + LEASE,
        });
        Object.assign(r, {
          status: 'RUNNING',
          owner: c.owner,
          token: c.token,
          attempts: c.attempt,
          lease: now + LEASE,
        });
        claims.push(c);
      } else {
        expect(
          m.some((r) => claimable(r, now)),
          ctx,
        ).toBe(false);
      }
    } else if (op.k === 'rearm') {
      const chosen = op.all
        ? m.flatMap((r, i) => (r.status === 'FAILED' ? [i] : []))
        : m.flatMap((_, i) => ((op.pick >> i) & 1 ? [i] : []));
      let want = 0;
      for (const i of chosen) {
        const r = m[i]!;
        if (r.status !== 'DONE' && r.status !== 'SKIPPED' && r.status !== 'FAILED') continue;
        Object.assign(r, { status: 'PENDING', owner: undefined, lease: undefined, attempts: 0 });
        want++;
      }
      const which: RearmSelection = op.all
        ? { status: 'FAILED' }
        : { chunkIds: chosen.map((i) => `c${i}`) };
      expect(await rearmOf(l)(jobId, which), ctx).toEqual({ rearmed: want });
    } else if (op.k === 'sweep') {
      const want = { expired: 0, failed: 0 };
      for (const r of m) {
        if (!expired(r, now)) continue;
        if (r.attempts >= maxAttempts) {
          r.status = 'FAILED';
          want.failed++;
        } else {
          Object.assign(r, { status: 'PENDING', owner: undefined, lease: undefined });
          want.expired++;
        }
      }
      expect(await l.sweep(jobId, { now }), ctx).toEqual(want);
    } else {
      const c = claims[op.pick % Math.max(claims.length, 1)];
      if (!c) continue;
      const r = m[c.index]!;
      const terminal = op.k === 'skip' ? 'SKIPPED' : 'DONE';
      const ok =
        holds(r, c) ||
        ((op.k === 'complete' || op.k === 'skip') &&
          r.status === terminal &&
          r.owner === c.owner &&
          r.token === c.token);
      const call =
        op.k === 'heartbeat'
          ? l.heartbeat(c, { now })
          : op.k === 'complete' || op.k === 'skip'
            ? l.complete(c, { skipped: op.k === 'skip' })
            : op.k === 'release'
              ? l.release(c)
              : l.fail(c, `err ${now}`);
      if (!ok) {
        const err = await leaseLost(call);
        expect(err.row, ctx).toMatchObject({
          status: r.status,
          token: r.token,
          attempts: r.attempts,
        });
        continue;
      }
      const result = await call;
      if (op.k === 'heartbeat') {
        r.lease = now + LEASE;
        expect(result, ctx).toEqual({ ...c, leaseExpiresAt: now + LEASE });
      } else if (op.k === 'complete' || op.k === 'skip') {
        Object.assign(r, { status: terminal, lease: undefined });
      } else if (op.k === 'release') {
        Object.assign(r, {
          status: 'PENDING',
          owner: undefined,
          lease: undefined,
          attempts: r.attempts - 1,
        });
      } else {
        if (r.attempts >= maxAttempts) Object.assign(r, { status: 'FAILED', lease: undefined });
        else Object.assign(r, { status: 'PENDING', owner: undefined, lease: undefined });
        expect(result, ctx).toMatchObject({
          status: r.status,
          attempts: r.attempts,
          lastError: `err ${now}`,
        });
      }
    }

    const actual = await rows(l, jobId);
    expect(
      actual.map((a) => [
        a.status,
        a.token,
        a.attempts,
        a.status === 'FAILED' ? '-' : a.owner,
        a.status === 'RUNNING' ? a.leaseExpiresAt : undefined,
      ]),
      ctx,
    ).toEqual(
      m.map((r) => [
        r.status,
        r.token,
        r.attempts,
        r.status === 'FAILED' ? '-' : r.owner,
        r.status === 'RUNNING' ? r.lease : undefined,
      ]),
    );
    const want = Object.fromEntries(
      CHUNK_STATUSES.map((s) => [s, m.filter((r) => r.status === s).length]),
    );
    expect(await l.counts(jobId), ctx).toEqual(want);
  }
}
