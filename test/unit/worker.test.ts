// The worker loop's end of job: a worker whose only RUNNING chunks are its own does not
// sit out the idle poll period (which is long in production: a missed wake-up would hold
// back the end of every job), and does not walk away from a chunk its own failure put
// back. Real Zarr input and output on disk, the in-memory ledger, a JS model.

import { afterAll, describe, expect, it } from 'vitest';
import type { PatchModel } from '../../core/infer/index.ts';
import { runWorker } from '../../core/pipeline/index.ts';
import { jsModel } from '../helpers/js-model.ts';
import { workerJob } from '../helpers/worker-job.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** An hour: if the worker waited for its idle poll, the test would time out. */
const NEVER = 3_600_000;

const job = (maxAttempts: number) => workerJob({ cleanups, maxAttempts });

describe('runWorker at the end of a job', () => {
  it('returns once its own last chunks are done, without waiting out the idle poll', async () => {
    const { ctx, ledger, output } = await job(3);
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
    });
    expect(ctx.plan.counts.chunks).toBeGreaterThan(1);
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    expect((await ledger.counts(ctx.jobId)).DONE).toBe(ctx.plan.counts.chunks);
  });

  it('claims again a chunk its own failure put back, instead of leaving it PENDING', async () => {
    const { ctx, ledger, output } = await job(2);
    const inner = jsModel(1, 2);
    let calls = 0;
    // The last chunk's first attempt fails: by then this worker holds the only RUNNING chunk.
    const lastBatch = ctx.plan.counts.patches;
    const model: PatchModel = {
      run: async (batch, n, patch, outPatch) => {
        calls += n;
        if (calls === lastBatch) throw new Error('injected failure on the last batch');
        return inner.run(batch, n, patch, outPatch);
      },
    };
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model,
      batchSize: 1,
      idlePollMs: NEVER,
    });
    expect(stats.failed).toBe(1);
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    const counts = await ledger.counts(ctx.jobId);
    expect(counts.DONE).toBe(ctx.plan.counts.chunks);
    expect(counts.PENDING).toBe(0);
  });
});

describe('runWorker with a model still loading', () => {
  it('claims and reads its first chunk while the model loads, then infers as usual', async () => {
    const { ctx, ledger, output } = await job(3);
    const events: string[] = [];
    let loaded!: (m: PatchModel) => void;
    const model = new Promise<PatchModel>((resolve) => {
      loaded = resolve;
    });
    const running = runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model,
      idlePollMs: NEVER,
      onEvent: (e) => {
        events.push(e.type);
        if (e.type === 'claimed' && events.length === 1) {
          events.push('model loaded');
          loaded(jsModel(1, 2));
        }
      },
    });
    const stats = await running;
    expect(events[0]).toBe('claimed');
    expect(events).toContain('model loaded');
    expect(stats.done).toBe(ctx.plan.counts.chunks);
  });

  it('a model that fails to load hands its claimed chunk back unspent and rejects', async () => {
    const { ctx, ledger, output } = await job(3);
    const events: string[] = [];
    await expect(
      runWorker({
        ctx,
        ledger,
        output,
        owner: 'w1',
        model: Promise.reject(new Error('model.url: cannot read the file')),
        idlePollMs: NEVER,
        onEvent: (e) => events.push(e.type),
      }),
    ).rejects.toThrow(/cannot read the file/);
    expect(events).toEqual(['claimed', 'released']);
    const counts = await ledger.counts(ctx.jobId);
    expect(counts.RUNNING).toBe(0);
    expect(counts.PENDING).toBe(ctx.plan.counts.chunks);
    for await (const row of ledger.list(ctx.jobId)) expect(row.attempts, row.chunkId).toBe(0);
  });
});
