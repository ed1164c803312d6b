// The step decisions both drivers share (core/pipeline/steps.ts, driver.ts): the verdict
// after a work round, the work-round loop over a Fleet port, the report's worker count
// and timings, and the cleanup of spent partials through the Store port. In-memory
// ledger, a fake fleet that claims and completes chunks, real files where a store is read.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { KEYS } from '../../contracts/cloud.ts';
import { verifyStep } from '../../core/cloud/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import {
  deleteSpentPartials,
  ensureOutput,
  type Fleet,
  finalizeFinished,
  finalizeJob,
  isBlended,
  markBlended,
  planJob,
  runWorkRounds,
  verifyJob,
  verifyRound,
} from '../../core/pipeline/index.ts';
import { LocalStore, MemoryStore } from '../../core/store/index.ts';
import { tempDir } from '../helpers/job-dir.ts';
import { openWorkerJob } from '../helpers/worker-job.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** A ledger job of `chunks` chunks, `done` finished by owner 'w', `poison` FAILED. */
async function ledgerJob(jobId: string, chunks: number, done: number, poison: number) {
  const ledger = new MemoryLedger();
  await ledger.createJob(
    { jobId, chunkCount: chunks, maxAttempts: 1, leaseMs: 60_000, createdAt: 0 },
    Array.from({ length: chunks }, (_, i) => ({ chunkId: `0_0_${i}`, index: i })),
  );
  for (let k = 0; k < done; k++) await ledger.complete((await ledger.claim(jobId, 'w'))!);
  for (let k = 0; k < poison; k++)
    await ledger.fail((await ledger.claim(jobId, 'w'))!, 'NaN in output');
  return ledger;
}

describe('the verdict after a work round', () => {
  it('a poison chunk does not stop the others: another round while chunks are PENDING', async () => {
    const ledger = await ledgerJob('j', 5, 1, 1);
    const v = await verifyRound(ledger, 'j', { roundsDone: 1, maxRounds: 3, maxWorkers: 2 });
    expect(v).toMatchObject({ status: 'INCOMPLETE', redrive: true, remaining: 3, workers: 2 });
    expect(v.reason).toBeUndefined();
  });

  it('FAILED once nothing is left to run, naming the poison chunk', async () => {
    const ledger = await ledgerJob('j', 3, 2, 1);
    const v = await verifyRound(ledger, 'j', { roundsDone: 1, maxRounds: 3, maxWorkers: 2 });
    expect(v).toMatchObject({ status: 'FAILED', redrive: false, remaining: 0 });
    expect(v.reason?.split('\n')).toEqual([
      '1 chunk(s) failed every attempt:',
      '  chunk 0_0_2: failed 1 attempt(s); last error: NaN in output',
    ]);
  });

  it('out of rounds: FAILED with the poison and the unfinished count, or INCOMPLETE without poison', async () => {
    const poisoned = await ledgerJob('j', 5, 1, 1);
    const v = await verifyRound(poisoned, 'j', { roundsDone: 3, maxRounds: 3, maxWorkers: 2 });
    expect(v.status).toBe('FAILED');
    expect(v.reason?.split('\n').at(-1)).toBe('3 chunk(s) still unfinished after 3 work rounds');
    const clean = await ledgerJob('k', 5, 1, 0);
    const w = await verifyRound(clean, 'k', { roundsDone: 3, maxRounds: 3, maxWorkers: 2 });
    expect(w).toMatchObject({ status: 'INCOMPLETE', redrive: false, remaining: 4 });
    expect(w.reason).toBe('4 chunk(s) still unfinished after 3 work rounds');
  });

  it("the cloud's Verify gives the same verdict: a FAILED chunk beside PENDING ones re-drives", async () => {
    const ledger = await ledgerJob('cells-0123456789', 5, 1, 1);
    const store = new MemoryStore('s3://bkt');
    const manifest = {
      version: 1,
      name: 'cells',
      input: { url: 's3://bkt/raw.zarr' },
      output: { url: 's3://bkt/outputs/cells.zarr', dtype: 'float32', blockShape: [8, 16, 16] },
      model: { url: 's3://bkt/models/tiny.onnx', patchShape: [8, 12, 12], outputChannels: 2 },
      overlap: [2, 4, 4],
      blend: 'bump',
      chunkShape: [8, 16, 16],
      compute: { device: 'gpu', maxWorkers: 2, spot: true },
    };
    await store.set(
      `/${KEYS.jobManifest('cells-0123456789')}`,
      new TextEncoder().encode(JSON.stringify({ manifest })),
    );
    const r = await verifyStep(
      {
        bucket: 'bkt',
        bucketStore: store,
        ledger,
        policy: { stackBucket: 'bkt', allowedBuckets: [] },
        maxRounds: 3,
        fetchManifest: async () => {
          throw new Error('Verify reads no manifest object');
        },
      },
      { jobId: 'cells-0123456789', round: 1 },
    );
    expect(r).toMatchObject({ status: 'INCOMPLETE', redrive: true, remaining: 3, arraySize: 2 });
  });
});

/** A fleet whose every round completes `perRound` chunks, one owner per worker. */
function fakeFleet(ledger: MemoryLedger, jobId: string, perRound: number) {
  const rounds: { round: number; workers: number }[] = [];
  let stop = false;
  const fleet: Fleet & { stop(): void } = {
    async runRound(round, workers) {
      rounds.push({ round, workers });
      for (let k = 0; k < perRound; k++) {
        const claim = await ledger.claim(jobId, `r${round}-w${k % workers}`);
        if (claim) await ledger.complete(claim);
      }
    },
    stopped: () => stop,
    stop: () => {
      stop = true;
    },
  };
  return { fleet, rounds };
}

describe('the work-round loop over a Fleet', () => {
  it('runs rounds of nextArraySize workers until COMPLETE, timing work and verify on the clock', async () => {
    const ledger = await ledgerJob('j', 5, 0, 0);
    const { fleet, rounds } = fakeFleet(ledger, 'j', 3);
    let t = 0;
    const timings: Record<string, number> = {};
    const v = await runWorkRounds(ledger, 'j', fleet, {
      maxRounds: 3,
      maxWorkers: 4,
      timings,
      clock: { now: () => (t += 500) },
    });
    expect(v.status).toBe('COMPLETE');
    // 5 left: 4 workers; then 2 left: 2 workers.
    expect(rounds).toEqual([
      { round: 1, workers: 4 },
      { round: 2, workers: 2 },
    ]);
    // Each timed step reads the clock twice, 500 ms apart: two rounds of each.
    expect(timings).toEqual({ work: 1, verify: 1 });
  });

  it('stops at maxRounds, and at once when the fleet has stopped', async () => {
    const ledger = await ledgerJob('j', 5, 0, 0);
    const { fleet, rounds } = fakeFleet(ledger, 'j', 1);
    const v = await runWorkRounds(ledger, 'j', fleet, { maxRounds: 2, maxWorkers: 1, timings: {} });
    expect(v).toMatchObject({ status: 'INCOMPLETE', redrive: false, remaining: 3 });
    expect(rounds).toHaveLength(2);
    const other = await ledgerJob('k', 5, 0, 0);
    const stopped = fakeFleet(other, 'k', 1);
    stopped.fleet.stop();
    const w = await runWorkRounds(other, 'k', stopped.fleet, {
      maxRounds: 3,
      maxWorkers: 1,
      timings: {},
    });
    expect(w.redrive).toBe(true);
    expect(stopped.rounds).toEqual([]);
  });
});

describe("finalize's report figures (the same code for both drivers)", () => {
  it('counts the distinct owners that finished chunks, and takes work seconds from the ledger', async () => {
    const { ctx } = await openWorkerJob({ cleanups, work: new MemoryStore() });
    await ensureOutput(ctx);
    const ledger = new MemoryLedger();
    const createdAt = Date.now() - 4_000;
    await planJob(ctx, ledger, { leaseMs: 60_000, now: createdAt });
    // Three chunks finished by two workers; the fleet was five strong.
    for (const owner of ['w1', 'w2', 'w1'])
      await ledger.complete((await ledger.claim(ctx.jobId, owner))!);
    let clock = 0;
    const report = await finalizeJob(ctx, {
      ledger,
      verify: await verifyJob(ledger, ctx.jobId),
      startedAt: new Date(createdAt),
      fleetSize: 5,
      device: 'cpu',
      preview: false,
      now: () => (clock += 1250),
    });
    expect(report.workers).toBe(2);
    expect(report.timings.finalize).toBe(1.25);
    // Job creation to the last completion: the 4 s the test back-dated, and a little more.
    expect(report.timings.work).toBeGreaterThanOrEqual(4);
    expect(report.timings.work).toBeLessThan(60);
    // The cloud's Finalize (a Lambda that ran none of it): only a COMPLETE job, same figures.
    await expect(finalizeFinished(ctx, ledger, { fleetSize: 5 })).rejects.toThrow(
      `job ${ctx.jobId} cannot be finalized: verify says INCOMPLETE`,
    );
    for (let c = await ledger.claim(ctx.jobId, 'w3'); c; c = await ledger.claim(ctx.jobId, 'w3'))
      await ledger.complete(c);
    const cloud = await finalizeFinished(ctx, ledger, { fleetSize: 5 });
    expect(cloud.status).toBe('SUCCEEDED');
    expect(cloud.workers).toBe(3);
    expect(cloud.startedAt).toBe(new Date(createdAt).toISOString());
    expect(cloud.timings.work).toBeGreaterThanOrEqual(4);
    expect(Object.keys(cloud.timings).sort()).toEqual(['finalize', 'work']);
  });
});

describe('spent partials go through the Store port', () => {
  it('deletes the seam partials, keeps the preview tiles when asked, and always the job description', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const put = (rel: string): void => {
      mkdirSync(join(t.dir, rel, '..'), { recursive: true });
      writeFileSync(join(t.dir, rel), 'x');
    };
    put('partials/0.0.1/0_0_0.bin');
    put('partials/0.0.1/0_0_1.bin');
    put('partials/_preview/z0/0.0.bin');
    put('job.json');
    const work = new LocalStore(t.dir, { fsync: false });
    expect(await deleteSpentPartials(work, { keepTiles: true })).toBe(2);
    expect(existsSync(join(t.dir, 'partials/0.0.1/0_0_0.bin'))).toBe(false);
    expect(existsSync(join(t.dir, 'partials/_preview/z0/0.0.bin'))).toBe(true);
    expect(await deleteSpentPartials(work, { keepTiles: false })).toBe(1);
    expect(existsSync(join(t.dir, 'partials/_preview/z0/0.0.bin'))).toBe(false);
    expect(existsSync(join(t.dir, 'job.json'))).toBe(true);
  });

  it('the blended marker lives in the work store and outlasts the cleanup', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const work = new LocalStore(t.dir, { fsync: false });
    expect(await isBlended(work)).toBe(false);
    await markBlended(work, new Date('2026-01-02T03:04:05Z'));
    await deleteSpentPartials(work, { keepTiles: false });
    expect(await isBlended(work)).toBe(true);
    expect(readFileSync(join(t.dir, 'blended'), 'utf8')).toBe('2026-01-02T03:04:05.000Z\n');
  });
});
