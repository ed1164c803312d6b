// The worker's hang watchdog: a chunk whose inference finishes no batch within
// max(floor, factor × the slowest batch this worker measured) (or the start-up bound
// before any batch was measured) is abandoned: heartbeats stop, no release, a 'hung'
// event, runWorker ends, and the chunk is re-claimed once its lease runs out, spending an
// attempt. Real Zarr input and output on disk, the in-memory ledger, a JS model run one
// batch at a time (as the inference thread does) with scripted batch times.

import { afterAll, describe, expect, it } from 'vitest';
import type { Vec3 } from '../../core/geometry/index.ts';
import type { PatchModel } from '../../core/infer/index.ts';
import { type Claim, MemoryLedger, SKEW_MS } from '../../core/ledger/index.ts';
import { ensureOutput, planJob, runWorker, type WorkerEvent } from '../../core/pipeline/index.ts';
import { lcgVolume } from '../helpers/job-dir.ts';
import { jsModel } from '../helpers/js-model.ts';
import { openWorkerJob } from '../helpers/worker-job.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

const SHAPE: Vec3 = [8, 24, 24];
const LEASE_MS = 300;
const NEVER = 3_600_000;

async function job(
  o: { maxAttempts?: number; chunkShape?: Vec3; data?: Uint8Array; skipBelow?: number } = {},
) {
  const { ctx } = await openWorkerJob({
    cleanups,
    maxAttempts: o.maxAttempts ?? 3,
    chunkShape: o.chunkShape ?? [8, 12, 12],
    ...(o.data ? { data: o.data } : {}),
    input: o.skipBelow === undefined ? {} : { skipBelow: o.skipBelow },
  });
  const ledger = new MemoryLedger();
  // The ledger's clock runs `clock.skipMs` ahead of the real one: a test lets a lease run
  // out (lease + the ledger's 5 s clock-skew allowance) without waiting for it.
  const clock = { skipMs: 0 };
  const now = (): number => Date.now() + clock.skipMs;
  const claim = ledger.claim.bind(ledger);
  ledger.claim = (jobId, owner, o) => claim(jobId, owner, { ...o, now: now() });
  // Every heartbeat, by chunk and time: the watchdog's effect on the lease is what we test.
  const beats: { chunkId: string; at: number }[] = [];
  const heartbeat = ledger.heartbeat.bind(ledger);
  ledger.heartbeat = (c: Claim) => {
    beats.push({ chunkId: c.chunkId, at: performance.now() });
    return heartbeat(c, { now: now() });
  };
  const output = await ensureOutput(ctx);
  await planJob(ctx, ledger, { leaseMs: LEASE_MS });
  /** Moves the ledger's clock past the expiry of every lease now held. */
  const expireLeases = async (): Promise<void> => {
    let latest = 0;
    for await (const r of ledger.list(ctx.jobId, 'RUNNING'))
      latest = Math.max(latest, r.leaseExpiresAt ?? 0);
    clock.skipMs += Math.max(0, latest + SKEW_MS + 1 - now());
  };
  return { ctx, ledger, output, beats, expireLeases };
}

/**
 * A model that runs one batch at a time (batches queue as on the inference thread) and
 * takes `script(call)` ms for its call-th batch (1-based); 'hang' never answers, and every
 * batch queued behind it waits for ever too.
 */
function scripted(script: (call: number) => number | 'hang'): PatchModel & { calls: number } {
  const inner = jsModel(1, 2);
  let queue: Promise<unknown> = Promise.resolve();
  const m = {
    calls: 0,
    run(batch: Float32Array, n: number, patch: [number, number, number]) {
      const ms = script(++m.calls);
      const copy = batch.slice();
      const result = queue.then(
        () =>
          new Promise<Float32Array>((resolve) => {
            if (ms !== 'hang') setTimeout(() => resolve(inner.run(copy, n, patch)), ms);
          }),
      );
      queue = result;
      return result;
    },
  };
  return m;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function row(ledger: MemoryLedger, jobId: string, chunkId: string) {
  for await (const r of ledger.list(jobId)) if (r.chunkId === chunkId) return r;
  throw new Error(`no row for chunk ${chunkId}`);
}

describe('the hang watchdog', () => {
  it('abandons a chunk whose batch overruns factor × the slowest measured batch: heartbeats stop, no release, re-claimable after its lease with an attempt spent', async () => {
    const { ctx, ledger, output, beats, expireLeases } = await job();
    // Batch times 100, 50, 50, 50 ms, then the fifth batch never answers (chunks of two
    // patches, one per batch: the third chunk hangs). Slowest 100 ms, factor 3: a bound of
    // ~300 ms; the last batch (50 ms) or the mean (62 ms) would give ~150 or ~190, the
    // floor 50, the start-up bound 5000, and a bound counted from the chunk's start (its
    // two batches: 150 ms) ~450.
    const times = [100, 50, 50, 50];
    const model = scripted((call) => times[call - 1] ?? 'hang');
    const events: WorkerEvent[] = [];
    let hungAt = 0;
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model,
      batchSize: 1,
      idlePollMs: NEVER,
      hang: { startupMs: 5000, floorMs: 50, factor: 3 },
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'hung') hungAt = performance.now();
      },
    });
    const hung = events.find((e) => e.type === 'hung');
    if (hung?.type !== 'hung') throw new Error(`no hung event in ${JSON.stringify(events)}`);
    const claimed = events.flatMap((e) => (e.type === 'claimed' ? [e.chunkId] : []));
    expect(ctx.plan.describeChunk(claimed[0]!).patchCount).toBe(2);
    expect(hung.chunkId).toBe(claimed[2]);
    // Derived from the measured slowest batch (≥ 100 ms; scheduling adds a little).
    expect(hung.boundMs).toBeGreaterThanOrEqual(3 * 100);
    expect(hung.boundMs).toBeLessThan(3 * 140);
    expect(hung.stalledMs).toBeGreaterThanOrEqual(hung.boundMs);
    expect(hung.stalledMs).toBeLessThan(hung.boundMs + 200);
    expect(stats.hung).toEqual({
      chunkId: hung.chunkId,
      stalledMs: hung.stalledMs,
      boundMs: hung.boundMs,
    });
    expect(model.calls).toBe(6); // the hung chunk's two batches; then no more
    // The hung chunk is not released; the one read ahead is (unspent); the two before are done.
    const released = events.flatMap((e) => (e.type === 'released' ? [e.chunkId] : []));
    expect(released).toEqual([claimed[3]]);
    expect(stats.done).toBe(2);
    expect(await row(ledger, ctx.jobId, claimed[3]!)).toMatchObject({
      status: 'PENDING',
      attempts: 0,
    });
    // Its heartbeats ran while it computed and stop with the event.
    expect(beats.filter((b) => b.chunkId === hung.chunkId).length).toBeGreaterThan(0);
    await sleep(2 * (LEASE_MS / 3));
    expect(beats.filter((b) => b.chunkId === hung.chunkId && b.at > hungAt)).toEqual([]);
    const held = await row(ledger, ctx.jobId, hung.chunkId);
    expect(held).toMatchObject({ status: 'RUNNING', owner: 'w1', attempts: 1 });
    // Once its lease runs out, another worker re-claims it, spending a second attempt.
    await expireLeases();
    const again = await ledger.claim(ctx.jobId, 'w2');
    expect(again).toMatchObject({ chunkId: hung.chunkId, attempt: 2 });
  });

  it('before any batch is measured the start-up bound applies; with fast batches the floor', async () => {
    const a = await job();
    const startup = await runWorker({
      ...a,
      owner: 'w1',
      model: scripted(() => 'hang'),
      batchSize: 1,
      idlePollMs: NEVER,
      hang: { startupMs: 150, floorMs: 10, factor: 3 },
    });
    expect(startup.hung?.boundMs).toBe(150);
    expect(startup.hung?.stalledMs).toBeGreaterThanOrEqual(150);

    // Batches of ~0 ms: factor × slowest is far under the floor. The hang comes in the
    // second chunk: measurements carry over from one chunk to the next.
    const b = await job();
    const floor = await runWorker({
      ...b,
      owner: 'w1',
      model: scripted((call) => (call <= 10 ? 0 : 'hang')),
      batchSize: 1,
      idlePollMs: NEVER,
      hang: { startupMs: 5000, floorMs: 300, factor: 2 },
    });
    expect(floor.done).toBe(5);
    expect(floor.hung?.boundMs).toBe(300);
    expect(floor.hung?.stalledMs).toBeGreaterThanOrEqual(300);
  });

  it('does not flag a slow inference that keeps finishing batches, each within its bound', async () => {
    // One chunk of 32 patches, in 8 batches of 4.
    const { ctx, ledger, output } = await job({ chunkShape: [8, 36, 36] });
    expect(ctx.plan.counts.chunks).toBe(1);
    // Every batch (40 ms) is over the floor and the chunk (8 batches, 320 ms) is over both
    // the start-up bound and factor × batch: only a bound re-armed at each batch's end,
    // from the slowest batch, lets this through.
    const events: string[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model: scripted(() => 40),
      batchSize: 4,
      idlePollMs: NEVER,
      hang: { startupMs: 150, floorMs: 30, factor: 5 },
      onEvent: (e) => events.push(e.type),
    });
    expect(events).not.toContain('hung');
    expect(stats.hung).toBeUndefined();
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    expect((await ledger.counts(ctx.jobId)).DONE).toBe(ctx.plan.counts.chunks);
  });

  it('batches of skipped (empty) chunks are not measured: the first real batch still gets the start-up bound', async () => {
    // Zero input (below skipBelow) over most of the volume: the chunks read there first are
    // skipped, their stand-in batches take ~0 ms. Counted, they would set the bound to the
    // floor (30 ms) and the first real batch (80 ms) would pass for a hang.
    const data = lcgVolume(SHAPE, 3).map((v, i) => (i % (SHAPE[1] * SHAPE[2]) < 16 * 24 ? 0 : v));
    const { ctx, ledger, output } = await job({ data, skipBelow: 1 });
    const order: string[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model: scripted(() => 80),
      batchSize: 2,
      idlePollMs: NEVER,
      hang: { startupMs: 1000, floorMs: 30, factor: 5 },
      onEvent: (e) => {
        if (e.type === 'done') order.push(e.skipped ? 'skipped' : 'inferred');
        if (e.type === 'hung') order.push('hung');
      },
    });
    expect(order[0]).toBe('skipped');
    expect(order).toContain('inferred');
    expect(order).not.toContain('hung');
    expect(stats.skipped + stats.done).toBe(ctx.plan.counts.chunks);
  });

  it('a hang that repeats on its chunk makes it poison after maxAttempts; the rest of the job completes', async () => {
    const { ctx, ledger, output, expireLeases } = await job({ maxAttempts: 2 });
    const bounds = { startupMs: 100, floorMs: 10, factor: 3 };
    const hangs: string[] = [];
    for (const owner of ['w1', 'w2']) {
      const stats = await runWorker({
        ctx,
        ledger,
        output,
        owner,
        model: scripted(() => 'hang'),
        batchSize: 1,
        idlePollMs: NEVER,
        hang: bounds,
      });
      hangs.push(stats.hung?.chunkId ?? 'none');
      // The abandoned lease runs out (and an expired lease is claimed before PENDING ones).
      await expireLeases();
    }
    expect(hangs[1]).toBe(hangs[0]);
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w3',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
    });
    expect(stats.hung).toBeUndefined();
    const poisoned = await row(ledger, ctx.jobId, hangs[0]!);
    expect(poisoned).toMatchObject({ status: 'FAILED', attempts: 2 });
    const counts = await ledger.counts(ctx.jobId);
    expect(counts.FAILED).toBe(1);
    expect(counts.DONE).toBe(ctx.plan.counts.chunks - 1);
  });
});
