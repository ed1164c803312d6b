// input.normalize percentiles: computed once at plan time from a fixed sample of the
// input's stored chunks, independent of the job's chunking, and matching numpy's
// percentiles of the same voxels (test/fixtures/normalise/expected.json, written by
// generate.py with zarr-python and numpy). Also what `tessera plan` warns about.

import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box } from '../../core/geometry/index.ts';
import { parseManifest } from '../../core/manifest/index.ts';
import { InputNormalisationError, openJob } from '../../core/pipeline/index.ts';
import {
  inputRange,
  inputRangeWarnings,
  percentileOf,
  readInputSample,
  sampleBoxes,
} from '../../core/pipeline/input-sample.ts';
import { LocalStore, MemoryStore } from '../../core/store/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import expected from '../fixtures/normalise/expected.json' with { type: 'json' };
import { tempDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
const FIXTURES = new URL('../fixtures/normalise/', import.meta.url).pathname;

function u16Dir(): string {
  const t = tempDir('tessera-percentiles-');
  cleanups.push(t.cleanup);
  cpSync(join(FIXTURES, 'u16.zarr'), join(t.dir, 'u16.zarr'), { recursive: true });
  return t.dir;
}

const manifest = (dir: string, chunkShape: number[], input: Record<string, unknown>) =>
  parseManifest({
    version: 1,
    name: 'u16-job',
    input: { url: join(dir, 'u16.zarr'), ...input },
    output: { url: join(dir, 'out.zarr'), dtype: 'float32' },
    model: { url: 'unused.onnx', patchShape: [8, 16, 16], outputChannels: 1 },
    overlap: [0, 4, 4],
    chunkShape,
  });

const open = (m: ReturnType<typeof manifest>) =>
  openJob(m, { jobId: 'u16-job-1', work: new MemoryStore() });

describe('percentileOf', () => {
  it("interpolates between ranks as numpy's default does", () => {
    // numpy.percentile([1, 2, 3, 4], 25) == 1.75; ([10, 20], 50) == 15
    expect(percentileOf([1, 2, 3, 4], 25)).toBe(1.75);
    expect(percentileOf([10, 20], 50)).toBe(15);
    expect(percentileOf([1, 2, 3, 4], 0)).toBe(1);
    expect(percentileOf([1, 2, 3, 4], 100)).toBe(4);
  });
});

describe('input.normalize percentiles', () => {
  it("maps numpy's percentiles of the sampled voxels to 0 and 1, frozen in the description", async () => {
    const dir = u16Dir();
    const ctx = await open(
      manifest(dir, [16, 24, 24], { normalize: { percentiles: [0.5, 99.5] } }),
    );
    const n = ctx.description.normalization;
    expect(n.rule).toBe('percentiles');
    // All 18 stored chunks fit the default budget: the sample is the whole volume.
    expect(n.percentiles?.sample).toEqual({ boxes: 18, voxels: expected.u16.voxels, nan: 0 });
    expect(n.mapping).toEqual({
      kind: 'range',
      low: expected.u16.percentiles['0.5'],
      high: expected.u16.percentiles['99.5'],
    });
  });

  it('are the same however the job is chunked (the sample follows the stored chunks)', async () => {
    const dir = u16Dir();
    const input = { normalize: { percentiles: [1, 99], clip: true } };
    const a = await open(manifest(dir, [16, 24, 24], input));
    const b = await open(manifest(dir, [16, 48, 48], input));
    expect(a.plan.counts.chunks).not.toBe(b.plan.counts.chunks);
    expect(b.description.normalization).toEqual(a.description.normalization);
    expect(a.description.normalization.mapping).toEqual({
      kind: 'range',
      low: expected.u16.percentiles['1'],
      high: expected.u16.percentiles['99'],
      clip: true,
    });
  });

  it('a constant input has no range to map: refused at plan, naming the field', async () => {
    const t = tempDir('tessera-percentiles-');
    cleanups.push(t.cleanup);
    await writeZarrArray(new LocalStore(join(t.dir, 'u16.zarr'), { fsync: false }), {
      data: new Uint16Array(16 * 48 * 48).fill(700),
      shape: [16, 48, 48],
      chunkShape: [8, 16, 16],
    });
    const opened = open(manifest(t.dir, [16, 24, 24], { normalize: { percentiles: [1, 99] } }));
    await expect(opened).rejects.toBeInstanceOf(InputNormalisationError);
    await expect(opened).rejects.toMatchObject({ field: 'input.normalize.percentiles' });
    await expect(opened).rejects.toThrow('are 700 and 700');
  });
});

describe('the sample', () => {
  it('is a fixed strided set of stored chunks, within the budget', () => {
    const region = Box.ofShape([64, 640, 640]);
    const budget = { maxBoxes: 10, maxVoxels: 100_000 };
    const boxes = sampleBoxes([16, 64, 64], region, 1, budget);
    // 65 536 voxels per chunk: the voxel budget allows one.
    expect(boxes).toHaveLength(1);
    const wide = sampleBoxes([4, 32, 32], region, 1, budget);
    expect(wide).toHaveLength(10);
    expect(wide.reduce((s, b) => s + b.size, 0)).toBeLessThanOrEqual(100_000);
    // Each is a whole stored chunk, aligned to the chunk grid, all different.
    for (const b of wide) {
      expect(b.start.map((v, a) => v % [4, 32, 32][a]!)).toEqual([0, 0, 0]);
      expect(b.shape).toEqual([4, 32, 32]);
    }
    expect(new Set(wide.map(String)).size).toBe(10);
    expect(sampleBoxes([4, 32, 32], region, 1, budget).map(String)).toEqual(wide.map(String));
    // A stored chunk larger than the whole budget is cut to its centre.
    const huge = sampleBoxes([64, 640, 640], region, 1, budget);
    expect(huge).toHaveLength(1);
    expect(huge[0]!.size).toBeLessThanOrEqual(100_000);
    expect(region.intersect(huge[0]!).equals(huge[0]!)).toBe(true);
  });
});

describe('what plan shows and warns about', () => {
  it('12-bit data under the uint16 default: mostly near 0, warned; percentiles fix it', async () => {
    const dir = u16Dir();
    const ctx = await open(manifest(dir, [16, 24, 24], {}));
    const sample = await readInputSample(ctx.input, ctx.plan.region);
    const byDtype = inputRange(sample, ctx.description.normalization.mapping)!;
    expect(byDtype.max).toBe(Math.fround(expected.u16.max / 65535));
    expect(byDtype.p99).toBeLessThan(0.06);
    const warned = inputRangeWarnings(byDtype, sample, 'zero');
    expect(warned.join('\n')).toContain('within 0.05 of 0');

    const p = await open(manifest(dir, [16, 24, 24], { normalize: { percentiles: [0.5, 99.5] } }));
    const byPercentile = inputRange(sample, p.description.normalization.mapping)!;
    expect(byPercentile.p50).toBeGreaterThan(0.3);
    expect(byPercentile.p50).toBeLessThan(0.7);
    expect(inputRangeWarnings(byPercentile, sample, 'zero')).toEqual([]);
  });

  it('raw uint16 (scale 1): saturated, warned; NaN under "fail" warned', async () => {
    const dir = u16Dir();
    const ctx = await open(manifest(dir, [16, 24, 24], { scale: 1 }));
    const sample = await readInputSample(ctx.input, ctx.plan.region);
    const range = inputRange(sample, ctx.description.normalization.mapping)!;
    expect(range.atOrAboveOne).toBe(1);
    expect(range.min).toBe(expected.u16.min);
    expect(inputRangeWarnings(range, sample, 'zero').join('\n')).toContain(
      '100 % of the sampled model inputs are at or above 1',
    );
    const withNan = { ...sample, nan: 5 };
    expect(inputRangeWarnings(range, withNan, 'fail').join('\n')).toContain(
      'set input.nan: "zero"',
    );
  });
});
