// The central promise at the core level: chunked partial sums, in any chunk order,
// equal whole-volume sliding-window inference for every blend.

import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  axisWeights,
  blendWeights,
  MIN_WEIGHT,
  profile1d,
  weightSums,
} from '../../core/blend/index.ts';
import { Plan, type Vec3 } from '../../core/geometry/index.ts';
import { patchStarts, slidingWindowReference } from '../../core/reference/index.ts';
import { chunkedInference } from '../helpers/chunked.ts';
import { jsModel } from '../helpers/js-model.ts';

const vec = (lo: number, hi: number): fc.Arbitrary<Vec3> =>
  fc.tuple(
    fc.integer({ min: lo, max: hi }),
    fc.integer({ min: lo, max: hi }),
    fc.integer({ min: lo, max: hi }),
  );

function randomVolume(shape: Vec3, channels: number, seed: number): Float32Array {
  let s = seed >>> 0;
  const out = new Float32Array(channels * shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < out.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    out[i] = s / 2 ** 32;
  }
  return out;
}

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (!(d <= m)) m = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
  }
  return m;
};

describe('blend weights', () => {
  it('are strictly positive and finite for large patches, and peak at 1', () => {
    for (const kind of ['bump', 'gaussian', 'constant'] as const) {
      const w = blendWeights(kind, [160, 8, 3]);
      // Each axis is floored at MIN_WEIGHT: a corner weight is ≥ MIN_WEIGHT³, far from
      // float32 underflow (1.2e-38), so Σw never flushes to 0.
      expect(Math.min(...w)).toBeGreaterThanOrEqual(Math.fround(MIN_WEIGHT ** 3) * (1 - 1e-6));
      expect(Math.max(...w)).toBeCloseTo(1, 6);
    }
    const corner = blendWeights('bump', [128, 128, 128])[0]!;
    expect(corner).toBeGreaterThan(1e-30);
  });

  it('are separable: the product of three 1-D profiles', () => {
    for (const kind of ['bump', 'gaussian', 'constant'] as const) {
      const shape: Vec3 = [7, 12, 33];
      const w = blendWeights(kind, shape);
      const [a, b, c] = shape.map((p) => axisWeights(kind, p));
      let i = 0;
      for (let z = 0; z < shape[0]; z++)
        for (let y = 0; y < shape[1]; y++)
          for (let x = 0; x < shape[2]; x++, i++)
            expect(w[i]).toBe(Math.fround(a![z]! * b![y]! * c![x]!));
    }
  });

  it('Σw from geometry equals Σw accumulated patch by patch over the grid', () => {
    fc.assert(
      fc.property(
        fc.record({
          vol: vec(3, 40),
          patch: vec(2, 12),
          ov: vec(0, 5),
          kind: fc.constantFrom('bump', 'gaussian', 'constant' as const),
        }),
        ({ vol, patch, ov, kind }) => {
          const p: Vec3 = [0, 1, 2].map((a) => Math.min(patch[a]!, vol[a]!)) as unknown as Vec3;
          const overlap: Vec3 = [0, 1, 2].map((a) =>
            Math.min(ov[a]!, p[a]! - 1),
          ) as unknown as Vec3;
          const plan = new Plan({ volumeShape: vol, patchShape: p, overlap, chunkShape: vol });
          const sums = weightSums(plan, kind);
          // Brute force: every patch of the reference grid adds its 3D weights.
          const w = blendWeights(kind, p);
          const acc = new Float64Array(vol[0] * vol[1] * vol[2]);
          for (const z0 of patchStarts(0, vol[0], p[0], overlap[0]))
            for (const y0 of patchStarts(0, vol[1], p[1], overlap[1]))
              for (const x0 of patchStarts(0, vol[2], p[2], overlap[2]))
                for (let z = 0; z < p[0]; z++)
                  for (let y = 0; y < p[1]; y++)
                    for (let x = 0; x < p[2]; x++)
                      acc[((z0 + z) * vol[1] + y0 + y) * vol[2] + x0 + x]! +=
                        w[(z * p[1] + y) * p[2] + x]!;
          for (let z = 0; z < vol[0]; z++)
            for (let y = 0; y < vol[1]; y++)
              for (let x = 0; x < vol[2]; x++) {
                const geometric = sums.axes[0][z]! * sums.axes[1][y]! * sums.axes[2][x]!;
                const brute = acc[(z * vol[1] + y) * vol[2] + x]!;
                expect(Math.abs(geometric - brute)).toBeLessThanOrEqual(1e-6 * brute);
              }
        },
      ),
      { numRuns: 40 },
    );
  });

  it('bump follows chunkflow shape: symmetric, increasing towards the centre', () => {
    const p = profile1d('bump', 9);
    for (let i = 0; i < 4; i++) {
      expect(p[i]).toBeCloseTo(p[8 - i]!, 12);
      expect(p[i]!).toBeLessThan(p[i + 1]!);
    }
    // Ratio of neighbours is independent of the normalisation: exp(-1/(1-u1²) + 1/(1-u0²)).
    const u = (i: number): number => (2 * (i + 1)) / 10 - 1;
    expect(p[1]! / p[0]!).toBeCloseTo(Math.exp(-1 / (1 - u(1) ** 2) + 1 / (1 - u(0) ** 2)), 9);
  });

  it('gaussian has sigma = patch/8', () => {
    const p = profile1d('gaussian', 64);
    const c = 31.5;
    const s = 8;
    expect(p[10]! / p[31]!).toBeCloseTo(
      Math.exp(-((10 - c) ** 2 - (31 - c) ** 2) / (2 * s * s)),
      9,
    );
  });
});

describe('chunking invariance (core)', () => {
  it('chunked output equals the whole-volume reference for random shapes and all blends', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          vol: vec(3, 19),
          patch: vec(2, 7),
          ovFrac: vec(0, 90),
          chunkExtra: vec(0, 9),
          block: vec(2, 8),
          blend: fc.constantFrom('bump' as const, 'gaussian' as const, 'constant' as const),
          channels: fc.integer({ min: 1, max: 2 }),
          // 1 and 2 output channels take specialised accumulation loops, 3+ the general one.
          outChannels: fc.integer({ min: 1, max: 4 }),
          seed: fc.integer(),
          withRegion: fc.boolean(),
          reverse: fc.boolean(),
          // Valid-convolution models: the input patch is the output patch + 2·margin.
          margin: vec(0, 2),
          // 2D models on anisotropic stacks run with patch z = 1.
          flat: fc.boolean(),
        }),
        async (r) => {
          if (r.flat) r = { ...r, patch: [1, r.patch[1], r.patch[2]] };
          const overlap = r.patch.map((p, a) =>
            Math.floor(((p - 1) * r.ovFrac[a]!) / 100),
          ) as unknown as Vec3;
          const chunkShape = r.patch.map(
            (p, a) => p - overlap[a]! + r.chunkExtra[a]!,
          ) as unknown as Vec3;
          const region = r.withRegion
            ? {
                start: r.vol.map((v) => Math.floor(v / 4)) as unknown as Vec3,
                stop: r.vol.map((v) => v - Math.floor(v / 5)) as unknown as Vec3,
              }
            : undefined;
          const plan = new Plan({
            volumeShape: r.vol,
            region,
            patchShape: r.patch,
            overlap,
            chunkShape,
            blockShape: r.block,
            inputMargin: r.margin,
          });
          const inputPatch = r.patch.map((q, a) => q + 2 * r.margin[a]!) as unknown as Vec3;
          const volume = randomVolume(r.vol, r.channels, r.seed);
          const model = jsModel(r.channels, r.outChannels);
          const expected = await slidingWindowReference({
            volume,
            volumeShape: r.vol,
            inputChannels: r.channels,
            region,
            patchShape: inputPatch,
            outputPatchShape: r.patch,
            overlap,
            blend: r.blend,
            outputChannels: r.outChannels,
            model,
          });
          const refPatches = model.patches;
          const order = [...Array(plan.counts.chunks).keys()];
          if (r.reverse) order.reverse();
          const got = await chunkedInference({
            plan,
            volume,
            inputChannels: r.channels,
            model,
            blend: r.blend,
            outputChannels: r.outChannels,
            chunkOrder: order,
          });
          expect(maxAbsDiff(got, expected)).toBeLessThanOrEqual(1e-5);
          // No patch inferred twice: the chunked run did exactly the reference's work.
          expect(model.patches - refPatches).toBe(refPatches);
        },
      ),
      { numRuns: 60 },
    );
  });
});
