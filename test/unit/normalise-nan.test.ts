// NaN in the input: input.nan "fail" (the default) fails each chunk holding NaN when it is read, before
// inference, naming the chunk, the NaN count and the field to set (the model is never
// run on it, nor blamed); "zero" feeds NaN as 0 and the output equals the whole-volume
// reference on the zeroed input. NaN comes two ways: a NaN voxel written into the data,
// and a chunk never written, which reads as the array's NaN fill_value. The input is
// test/fixtures/normalise/nan.zarr, written by zarr-python (generate.py).

import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import type { PatchModel } from '../../core/infer/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { parseManifest } from '../../core/manifest/index.ts';
import {
  ensureOutput,
  finishLeftovers,
  leftoverUnits,
  openJob,
  planJob,
  runWorker,
} from '../../core/pipeline/index.ts';
import { slidingWindowReference } from '../../core/reference/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import expected from '../fixtures/normalise/expected.json' with { type: 'json' };
import { maxAbsDiff, readOutput, tempDir } from '../helpers/job-dir.ts';
import { jsModel } from '../helpers/js-model.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
const FIXTURES = new URL('../fixtures/normalise/', import.meta.url).pathname;
const SHAPE: Vec3 = [8, 24, 24];
const NEVER = 3_600_000;

/** The fixture's values as generate.py computes them, NaN where it left NaN. */
function fixtureValues(): Float32Array {
  const v = Float32Array.from({ length: 8 * 24 * 24 }, (_, i) => 0.5 + 0.4 * Math.sin(i / 37));
  const unwritten = new Box(
    expected.nan.unwritten.start as unknown as Vec3,
    expected.nan.unwritten.stop as unknown as Vec3,
  );
  for (let z = 0; z < 8; z++)
    for (let y = 0; y < 24; y++)
      for (let x = 0; x < 24; x++)
        if (unwritten.containsPoint([z, y, x])) v[(z * 24 + y) * 24 + x] = Number.NaN;
  for (const [z, y, x] of expected.nan.written_nan) v[(z! * 24 + y!) * 24 + x!] = Number.NaN;
  return v;
}

/** NaN voxels of the fixture inside `box` (clipped to the volume). */
function nanIn(values: Float32Array, box: Box): number {
  const b = box.intersect(Box.ofShape(SHAPE));
  let n = 0;
  for (let z = b.start[0]; z < b.stop[0]; z++)
    for (let y = b.start[1]; y < b.stop[1]; y++)
      for (let x = b.start[2]; x < b.stop[2]; x++)
        if (Number.isNaN(values[(z * 24 + y) * 24 + x]!)) n++;
  return n;
}

/** A model that records what it was given, and refuses NaN input (it would be blamed). */
function watchedModel() {
  const inner = jsModel(1, 2);
  const seen = { patches: 0, nan: 0 };
  const model: PatchModel = {
    run: async (batch, n, patch, outPatch) => {
      seen.patches += n;
      for (const v of batch) if (Number.isNaN(v)) seen.nan++;
      return inner.run(batch, n, patch, outPatch);
    },
  };
  return { model, seen };
}

async function nanJob(nan: 'zero' | 'fail' | undefined) {
  const t = tempDir('tessera-nan-');
  cleanups.push(t.cleanup);
  cpSync(join(FIXTURES, 'nan.zarr'), join(t.dir, 'input.zarr'), { recursive: true });
  const manifest = parseManifest({
    version: 1,
    name: 'nan-job',
    input: { url: join(t.dir, 'input.zarr'), ...(nan ? { nan } : {}) },
    output: { url: join(t.dir, 'output.zarr'), dtype: 'float32', blockShape: [8, 12, 12] },
    model: { url: 'unused.onnx', patchShape: [4, 8, 8], outputChannels: 2 },
    overlap: [0, 2, 2],
    chunkShape: [8, 12, 12],
    maxAttempts: 2,
  });
  const ctx = await openJob(manifest, {
    jobId: 'nan-job-1',
    work: new LocalStore(join(t.dir, 'work'), { fsync: false }),
  });
  const ledger = new MemoryLedger();
  const output = await ensureOutput(ctx);
  await planJob(ctx, ledger);
  return { ctx, ledger, output, dir: t.dir };
}

describe('input.nan "fail" (the default)', () => {
  for (const nan of ['fail', undefined] as const)
    it(`fails each chunk holding NaN before inference, naming chunk, count and field (${nan ?? 'default'})`, async () => {
      const { ctx, ledger, output } = await nanJob(nan);
      const { model, seen } = watchedModel();
      // A failed chunk goes back PENDING until its attempts are spent: run until none is left.
      for (let run = 0; run < 5 && (await ledger.counts(ctx.jobId)).PENDING > 0; run++)
        await runWorker({ ctx, ledger, output, owner: `w${run}`, model, idlePollMs: NEVER });
      const values = fixtureValues();
      let cleanPatches = 0;
      let failed = 0;
      for await (const row of ledger.list(ctx.jobId)) {
        const chunk = ctx.plan.describeChunk(row.chunkId);
        const nan = nanIn(values, chunk.readBox);
        if (nan === 0) {
          expect(row.status, row.chunkId).toBe('DONE');
          cleanPatches += chunk.patchCount;
          continue;
        }
        failed++;
        expect(row.status, row.chunkId).toBe('FAILED');
        expect(row.attempts, row.chunkId).toBe(2);
        expect(row.lastError).toContain(
          `chunk ${row.chunkId}: its input holds ${nan} NaN voxel(s)`,
        );
        expect(row.lastError).toContain('set input.nan: "zero"');
        expect(row.lastError).not.toContain('the model returned NaN');
      }
      // Both NaN sources were met: the unwritten chunk (fill_value) and the written NaN voxel.
      expect(failed).toBeGreaterThanOrEqual(2);
      // The model ran on the clean chunks only, and never saw NaN.
      expect(seen.nan).toBe(0);
      expect(seen.patches).toBe(cleanPatches);
    });
});

describe('input.nan "zero"', () => {
  it('feeds NaN as 0: every chunk done, output = the reference on the zeroed input', async () => {
    const { ctx, ledger, output, dir } = await nanJob('zero');
    const { model, seen } = watchedModel();
    const stats = await runWorker({ ctx, ledger, output, owner: 'w1', model, idlePollMs: NEVER });
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    expect(seen.nan).toBe(0);
    // What the worker did not blend as last contributor (nothing, one worker).
    await finishLeftovers(ctx, output, await leftoverUnits(ctx, output));
    const zeroed = fixtureValues().map((v) => (Number.isNaN(v) ? 0 : v));
    const reference = await slidingWindowReference({
      volume: zeroed,
      volumeShape: SHAPE,
      inputChannels: 1,
      patchShape: [4, 8, 8],
      overlap: [0, 2, 2],
      blend: 'bump',
      outputChannels: 2,
      model: jsModel(1, 2),
    });
    const out = await readOutput(dir, Box.ofShape(SHAPE));
    expect(maxAbsDiff(out, reference)).toBeLessThanOrEqual(1e-5);
  });
});
