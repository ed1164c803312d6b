// plan --calibrate's run prediction (cli/plan-predict.ts): the formula on hand-computed
// inputs, the sample regions against the chunk plan, and the printed lines.

import { describe, expect, it } from 'vitest';
import { predictRun, runLines, sampleRegion } from '../../cli/plan-predict.ts';
import { Plan } from '../../core/geometry/index.ts';

describe('predictRun', () => {
  it('solves start-up and seconds per patch from two samples, one worker', () => {
    // (5 - 2) / (32 - 8) = 0.125 s per patch; 2 - 8 × 0.125 = 1 s fixed; 1 + 64 × 0.125 = 9.
    const p = predictRun(
      [
        { patches: 8, chunks: 1, seconds: 2 },
        { patches: 32, chunks: 4, seconds: 5 },
      ],
      { patches: 64, chunks: 8, workers: 1 },
    );
    expect(p.secondsPerPatch).toBeCloseTo(0.125, 12);
    expect(p.fixedSeconds).toBeCloseTo(1, 12);
    expect(p.seconds).toBeCloseTo(9, 12);
  });

  it('divides the patches among min(workers, chunks) and adds the CLI start-up', () => {
    // Samples shared by 2 workers: x = 16/2 = 8, 48/2 = 24; (5 - 3) / 16 = 0.125; 3 - 1 = 2.
    const samples = [
      { patches: 48, chunks: 6, seconds: 5 },
      { patches: 16, chunks: 2, seconds: 3 },
    ] as const;
    const p = predictRun(samples, { patches: 64, chunks: 8, workers: 2 }, 0.5);
    // 2 + 0.5 + 64 / 2 × 0.125 = 6.5
    expect(p.sharing).toBe(2);
    expect(p.fixedSeconds).toBeCloseTo(2.5, 12);
    expect(p.seconds).toBeCloseTo(6.5, 12);
    // One chunk: one worker does it all: 2 + 8 × 0.125 = 3.
    const one = predictRun(samples, { patches: 8, chunks: 1, workers: 2 });
    expect(one.sharing).toBe(1);
    expect(one.seconds).toBeCloseTo(3, 12);
  });

  it('takes a negative start-up (noise) as none, through the larger sample', () => {
    // Slope 3.5 / 24 would give 0.5 - 8 × 0.1458 < 0: refit 4 / 32 = 0.125; 64 × 0.125 = 8.
    const p = predictRun(
      [
        { patches: 8, chunks: 1, seconds: 0.5 },
        { patches: 32, chunks: 4, seconds: 4 },
      ],
      { patches: 64, chunks: 8, workers: 1 },
    );
    expect(p.fixedSeconds).toBe(0);
    expect(p.seconds).toBeCloseTo(8, 12);
  });
});

describe('sampleRegion', () => {
  const plan = new Plan({
    volumeShape: [96, 192, 192],
    patchShape: [32, 64, 64],
    overlap: [8, 16, 16],
    chunkShape: [64, 128, 128],
  });
  const within = (k: number) =>
    new Plan({
      volumeShape: [96, 192, 192],
      patchShape: [32, 64, 64],
      overlap: [8, 16, 16],
      chunkShape: [64, 128, 128],
      region: sampleRegion(plan, k),
    });

  it('is one whole chunk at the middle for 1', () => {
    const r = sampleRegion(plan, 1);
    // Pitch 2 × (64 - 16) = 96 (y, x), 2 × 24 = 48 (z), plus the overlap: 56 × 112 × 112.
    expect(r).toEqual({ start: [20, 40, 40], stop: [76, 152, 152] });
    expect(within(1).counts.chunks).toBe(1);
    expect(within(1).counts.patches).toBe(8);
  });

  it('adds chunks along x, then y, where the volume has them', () => {
    expect(within(3).counts.chunks).toBe(4);
    expect(within(3).counts.patches).toBe(32);
  });
});

describe('runLines', () => {
  it('prints the prediction and its parts', () => {
    const p = predictRun(
      [
        { patches: 8, chunks: 1, seconds: 2 },
        { patches: 32, chunks: 4, seconds: 5 },
      ],
      { patches: 64, chunks: 8, workers: 1 },
    );
    expect(runLines(p)).toEqual([
      'run        tessera run here with 1 worker(s): ≈ 9.0s wall = 1.00s start-up and finish + 64 patches ÷ 1 worker(s) × 125.0 ms per patch',
      '           from two sample runs at the middle of the input: 1 chunk(s), 8 patches in 2.00s; 4 chunk(s), 32 patches in 5.00s (this machine, as loaded now)',
    ]);
  });
});
