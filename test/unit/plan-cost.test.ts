// `tessera plan`'s cost estimate against hand computations from the plan's counts.

import { describe, expect, it } from 'vitest';
import { estimateCost } from '../../cli/plan-cost.ts';
import { DEFAULT_PRICES, S3_GET_PER_1000, S3_PUT_PER_1000, workerPrice } from '../../cli/prices.ts';
import { Plan } from '../../core/geometry/index.ts';

const price = { perHour: 0.21, basis: 'test' };

describe('plan cost estimate', () => {
  it('one chunk of 2×2×2 patches without overlap, worked by hand', () => {
    const plan = new Plan({
      volumeShape: [64, 128, 128],
      patchShape: [32, 64, 64],
      overlap: [0, 0, 0],
      chunkShape: [64, 128, 128],
      blockShape: [32, 64, 64],
    });
    // 8 patches of 32·64·64 = 131 072 voxels; 8 blocks, all owned by the one chunk.
    expect(plan.counts).toMatchObject({ chunks: 1, patches: 8, patchVoxels: 1_048_576 });
    const k = estimateCost(plan, {
      throughput: { voxelsPerSecond: 100_000, source: 'given' },
      device: 'gpu',
      price,
    });
    const hours = 1_048_576 / 100_000 / 3600;
    expect(k.patchVoxels).toBe(1_048_576);
    expect(k.workerHours).toBeCloseTo(hours, 12);
    expect(k.dollars).toBeCloseTo(hours * 0.21, 12);
    expect(k.secondsPerFullChunk).toBeCloseTo(10.48576, 9);
    expect(k.requests).toEqual({ putsPerChunk: 8, puts: 8, gets: 0, dollars: (8 / 1000) * 0.005 });
  });

  it('with seams: worker PUTs are owned blocks + partials, the blend adds one PUT per seam block', () => {
    const plan = new Plan({
      volumeShape: [40, 100, 100],
      patchShape: [16, 32, 32],
      overlap: [4, 8, 8],
      chunkShape: [24, 48, 48],
      blockShape: [20, 25, 25],
    });
    const c = plan.counts;
    expect(c.seamBlocks).toBeGreaterThan(0);
    const k = estimateCost(plan, {
      throughput: { voxelsPerSecond: 2e6, source: 'given' },
      device: 'cpu',
      price,
    });
    expect(k.requests.putsPerChunk).toBe((c.ownedBlocks + c.seamPartials) / c.chunks);
    expect(k.requests.puts).toBe(c.ownedBlocks + c.seamPartials + c.seamBlocks);
    expect(k.requests.gets).toBe(c.seamPartials);
    expect(k.requests.dollars).toBeCloseTo(
      (k.requests.puts / 1000) * S3_PUT_PER_1000 + (c.seamPartials / 1000) * S3_GET_PER_1000,
      12,
    );
    expect(k.workerHours).toBeCloseTo(c.patchVoxels / 2e6 / 3600, 12);
    // A full chunk: patchesPerChunk patches of the patch volume.
    const full = plan.patchesPerChunk[0] * plan.patchesPerChunk[1] * plan.patchesPerChunk[2];
    expect(k.secondsPerFullChunk).toBeCloseTo((full * 16 * 32 * 32) / 2e6, 12);
  });

  it('skipped chunks take their patch voxels off the compute, not off the requests', () => {
    const plan = new Plan({
      volumeShape: [64, 128, 128],
      patchShape: [32, 64, 64],
      overlap: [0, 0, 0],
      chunkShape: [32, 64, 64],
    });
    const skipped = { threshold: 1, chunks: 3, patches: 3, patchVoxels: 3 * 131_072, seconds: 0 };
    const k = estimateCost(plan, {
      throughput: { voxelsPerSecond: 131_072, source: 'given' },
      device: 'gpu',
      price,
      skipped,
    });
    expect(k.patchVoxels).toBe(5 * 131_072);
    expect(k.workerHours).toBeCloseTo(5 / 3600, 12);
    expect(k.requests.puts).toBe(
      plan.counts.ownedBlocks + plan.counts.seamPartials + plan.counts.seamBlocks,
    );
  });

  it('default prices follow the device and spot setting; --price-per-hour replaces them', () => {
    expect(workerPrice('gpu', false, undefined)).toEqual(DEFAULT_PRICES.gpu.onDemand);
    expect(workerPrice('gpu', false, undefined).perHour).toBe(0.526);
    expect(workerPrice('cpu', true, undefined)).toEqual(DEFAULT_PRICES.cpu.spot);
    expect(workerPrice('gpu', true, '1.25')).toEqual({
      perHour: 1.25,
      basis: 'given with --price-per-hour',
    });
    expect(() => workerPrice('gpu', true, 'cheap')).toThrow(/--price-per-hour/);
  });
});
