// A worker whose lease is taken over: wherever it finds out (a heartbeat during the
// inference, the completion in the write-behind, the release of a stopping worker, the
// record of a chunk's failure), the chunk is let go, counted once in `leaseLost` and
// reported once as 'lease-lost'; nothing is recorded for it under the old token (no
// 'done', 'released' or 'failed'). The takeover is real: the in-memory ledger's leases
// are expired (sweep) and every chunk is claimed by another owner, so the worker's next
// ledger call for them meets a real LeaseLostError.

import { afterAll, describe, expect, it } from 'vitest';
import type { PatchModel } from '../../core/infer/index.ts';
import type { ChunkRow, Ledger, MemoryLedger } from '../../core/ledger/index.ts';
import {
  type JobContext,
  runWorker,
  type WorkerEvent,
  type WorkerStats,
} from '../../core/pipeline/index.ts';
import { jsModel } from '../helpers/js-model.ts';
import { workerJob } from '../helpers/worker-job.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

const LEASE_MS = 60_000;
/** Nothing claimable (the thief holds every chunk): the worker returns, it does not poll. */
const EXIT_WHEN_IDLE = 0;

const job = () =>
  workerJob({
    cleanups,
    prefix: 'tessera-worker-lease-',
    output: { blockShape: [8, 4, 4] },
    leaseMs: LEASE_MS,
  });

/** Every lease expires and another owner claims every chunk: the worker holds none now. */
async function takeOver(ledger: Ledger, jobId: string): Promise<void> {
  await ledger.sweep(jobId, { now: Date.now() + 10 * LEASE_MS });
  while (await ledger.claim(jobId, 'thief')) {}
}

/**
 * The ledger, with `method` taking every lease over just before it first runs (then
 * running for real, against the new owner's tokens).
 */
function losingAt(
  inner: MemoryLedger,
  jobId: string,
  method: 'heartbeat' | 'complete' | 'release' | 'fail',
): Ledger {
  let taken = false;
  return new Proxy(inner, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== method || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        if (!taken) {
          taken = true;
          await takeOver(target, jobId);
        }
        return value.apply(target, args);
      };
    },
  });
}

async function rows(ledger: Ledger, ctx: JobContext): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const row of ledger.list(ctx.jobId)) out.push(row);
  return out;
}

/** What the worker claimed, and that each was let go as lease-lost, once, and nothing else. */
function expectAllLost(stats: WorkerStats, events: WorkerEvent[]): void {
  const claimed = events.flatMap((e) => (e.type === 'claimed' ? [e.chunkId] : []));
  const lost = events.flatMap((e) => (e.type === 'lease-lost' ? [e.chunkId] : []));
  expect(claimed.length).toBeGreaterThan(0);
  expect(lost.sort()).toEqual(claimed.sort());
  expect(stats.leaseLost).toBe(claimed.length);
  expect(events.filter((e) => ['done', 'released', 'failed'].includes(e.type))).toEqual([]);
  expect([stats.done, stats.skipped, stats.released, stats.failed]).toEqual([0, 0, 0, 0]);
}

/** Every row is the thief's: the worker recorded nothing under its lost tokens. */
async function expectThiefHoldsAll(ledger: Ledger, ctx: JobContext): Promise<void> {
  for (const r of await rows(ledger, ctx))
    expect([r.chunkId, r.status, r.owner]).toEqual([r.chunkId, 'RUNNING', 'thief']);
}

/** A model that takes `ms` per batch, so heartbeats fire while a chunk infers. */
function slow(model: PatchModel, ms: number): PatchModel {
  return {
    run: async (...args) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return model.run(...args);
    },
  };
}

describe('a lease lost while the worker holds the chunk', () => {
  it('found by a heartbeat during the inference: the chunk is let go before any write', async () => {
    const { ctx, ledger, output } = await job();
    const events: WorkerEvent[] = [];
    const written: string[] = [];
    const stats = await runWorker({
      ctx,
      ledger: losingAt(ledger, ctx.jobId, 'heartbeat'),
      output: {
        ...output,
        writeBlock: async (...args: Parameters<typeof output.writeBlock>) => {
          written.push(output.blockKey(args[0]));
          return output.writeBlock(...args);
        },
      },
      owner: 'w1',
      model: slow(jsModel(1, 2), 40),
      batchSize: 1,
      heartbeatMs: 10,
      idlePollMs: EXIT_WHEN_IDLE,
      onEvent: (e) => events.push(e),
    });
    expectAllLost(stats, events);
    expect(written).toEqual([]);
    await expectThiefHoldsAll(ledger, ctx);
  });

  it('found by the completion in the write-behind: not counted done, counted lost once', async () => {
    const { ctx, ledger, output } = await job();
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger: losingAt(ledger, ctx.jobId, 'complete'),
      output,
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: EXIT_WHEN_IDLE,
      onEvent: (e) => events.push(e),
    });
    expectAllLost(stats, events);
    await expectThiefHoldsAll(ledger, ctx);
  });

  it('found by the release of a stopping worker: counted lost, not released', async () => {
    const { ctx, ledger, output } = await job();
    const events: WorkerEvent[] = [];
    const stopping = new AbortController();
    const stats = await runWorker({
      ctx,
      ledger: losingAt(ledger, ctx.jobId, 'release'),
      output,
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: EXIT_WHEN_IDLE,
      signal: stopping.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'claimed') stopping.abort();
      },
    });
    expectAllLost(stats, events);
    await expectThiefHoldsAll(ledger, ctx);
  });

  it('a hard stop that released the chunks is no lost lease when the batch ends later', async () => {
    const { ctx, ledger, output } = await job();
    const events: WorkerEvent[] = [];
    const stopping = new AbortController();
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model: slow(jsModel(1, 2), 150),
      batchSize: 1,
      hardStopMs: 10,
      idlePollMs: EXIT_WHEN_IDLE,
      signal: stopping.signal,
      onEvent: (e) => {
        events.push(e);
        if (e.type === 'claimed') stopping.abort();
      },
    });
    // The batch in flight ends after runWorker returned; its chunk is then handed back
    // again by the work loop, which must see it was released already.
    await new Promise((resolve) => setTimeout(resolve, 400));
    const claimed = events.flatMap((e) => (e.type === 'claimed' ? [e.chunkId] : []));
    const released = events.flatMap((e) => (e.type === 'released' ? [e.chunkId] : []));
    expect(claimed.length).toBeGreaterThan(0);
    expect(released.sort()).toEqual(claimed.sort());
    expect(events.filter((e) => e.type === 'lease-lost')).toEqual([]);
    expect([stats.released, stats.leaseLost]).toEqual([claimed.length, 0]);
    for (const r of await rows(ledger, ctx))
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'PENDING', 0]);
  });

  it("found by the record of the chunk's failure: no attempt recorded under the old token", async () => {
    const { ctx, ledger, output } = await job();
    const events: WorkerEvent[] = [];
    const nan: PatchModel = {
      run: async (_batch, n, patch) =>
        new Float32Array(n * 2 * patch[0] * patch[1] * patch[2]).fill(Number.NaN),
    };
    const stats = await runWorker({
      ctx,
      ledger: losingAt(ledger, ctx.jobId, 'fail'),
      output,
      owner: 'w1',
      model: nan,
      idlePollMs: EXIT_WHEN_IDLE,
      onEvent: (e) => events.push(e),
    });
    expectAllLost(stats, events);
    const all = await rows(ledger, ctx);
    // The sweep's note of the expired lease, not the worker's NaN failure.
    for (const r of all) expect(r.lastError ?? '').not.toContain('NaN');
    await expectThiefHoldsAll(ledger, ctx);
  });
});
