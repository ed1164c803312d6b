// The cost of model.tta as `tessera plan` (estimateCost) and report.json (ttaSection)
// state it: the model runs once per transform per patch, so the inference work, the
// worker-hours and a chunk's time grow by the number of transforms; hand-computed here.

import { describe, expect, it } from 'vitest';
import { estimateCost } from '../../cli/plan-cost.ts';
import { Plan } from '../../core/geometry/index.ts';
import { ttaFactor } from '../../core/infer/index.ts';
import { ttaSection } from '../../core/pipeline/report.ts';

const plan = new Plan({
  volumeShape: [64, 128, 128],
  patchShape: [32, 64, 64],
  overlap: [0, 0, 0],
  chunkShape: [64, 128, 128],
  blockShape: [32, 64, 64],
});
const given = {
  throughput: { voxelsPerSecond: 100_000, source: 'given' },
  device: 'gpu' as const,
  price: { perHour: 0.5, basis: 'test' },
};

describe('model.tta cost', () => {
  it('the factor is the number of distinct transforms for the patch', () => {
    const model = { patchShape: [32, 64, 64] as const, outputPatchShape: undefined };
    expect(ttaFactor({ ...model, tta: undefined })).toBe(1);
    expect(ttaFactor({ ...model, tta: true })).toBe(8);
    expect(ttaFactor({ ...model, tta: ['flips', 'rot90'] })).toBe(16);
    expect(ttaFactor({ patchShape: [1, 64, 64], tta: true })).toBe(4);
  });

  it('plan: 8 transforms = 8× the patch voxels through the model, the hours and a chunk’s time', () => {
    // 8 patches of 32·64·64 = 1 048 576 patch voxels (plan-cost.test.ts works it by hand).
    const k = estimateCost(plan, { ...given, ttaTransforms: 8 });
    expect(k.patchVoxels).toBe(1_048_576);
    expect(k.tta).toEqual({ transforms: 8, modelPatchVoxels: 8 * 1_048_576 });
    expect(k.workerHours).toBeCloseTo((8 * 1_048_576) / 100_000 / 3600, 12);
    expect(k.dollars).toBeCloseTo(((8 * 1_048_576) / 100_000 / 3600) * 0.5, 12);
    expect(k.secondsPerFullChunk).toBeCloseTo(8 * 10.48576, 9);
    // Requests do not change: TTA is inside each patch.
    expect(k.requests).toEqual(estimateCost(plan, given).requests);
    expect(estimateCost(plan, given).tta).toEqual({ transforms: 1, modelPatchVoxels: 1_048_576 });
  });

  it('report.json: a tta section only when the model runs more than once per patch', () => {
    expect(ttaSection({ patchShape: [8, 8, 8], tta: ['flips', 'rot90'] }, 1000)).toEqual({
      tta: { transforms: 16, modelPatchVoxels: 16_000 },
    });
    expect(ttaSection({ patchShape: [8, 8, 8], tta: false }, 1000)).toEqual({});
  });
});
