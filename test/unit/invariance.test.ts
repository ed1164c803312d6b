// The central promise at the core level: the real worker and blend code (runWorker over a
// MemoryLedger and in-memory stores, seam partials through the partial codec, seam blocks
// blended by their last contributor and what is left by the final blend pass), for any
// chunking, block shape, worker count and chunk order, equals whole-volume sliding-window
// inference for every blend. The oracle
// (core/reference) shares no code with the pipeline: it computes its weights and its
// patch grid from the README's definitions, which the first block pins to hand values.

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
import {
  patchStarts,
  REFERENCE_FLOOR,
  referenceProfile,
  slidingWindowReference,
} from '../../core/reference/index.ts';
import { type PipelineJob, pipelineInference } from '../helpers/chunked.ts';
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

describe("the pipeline's blend weights (core/blend)", () => {
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

describe('the reference (oracle), pinned to the README by hand-computed values', () => {
  it("bump is chunkflow's exp(−1/(1 − u²)), u = 2(i + 1)/(p + 1) − 1, relative to its peak", () => {
    // p = 3: u = −½, 0, ½ → exp(−4/3), exp(−1), exp(−4/3).
    const p3 = referenceProfile('bump', 3);
    expect([...p3].map((v) => v.toFixed(12))).toEqual(
      [Math.exp(-1 / 3), 1, Math.exp(-1 / 3)].map((v) => v.toFixed(12)),
    );
    // p = 8: u₀ = −7/9 (1 − u² = 32/81), the peak at u = ±1/9 (1 − u² = 80/81).
    const p8 = referenceProfile('bump', 8);
    expect(p8[0]).toBeCloseTo(Math.exp(-81 / 32 + 81 / 80), 12);
    expect(p8[0]).toBeCloseTo(0.219, 3);
    expect(p8[3]).toBe(1);
    expect(p8[4]).toBe(1);
  });

  it('gaussian has σ = p/8 and is centred between the middle voxels', () => {
    // p = 8: σ = 1, c = 3.5; the edge is 3.5σ out, the peak (voxels 3, 4) 0.5σ.
    const p8 = referenceProfile('gaussian', 8);
    expect(p8[0]).toBeCloseTo(Math.exp(-6), 14);
    expect(p8[7]).toBeCloseTo(Math.exp(-6), 14);
    expect(p8[3]).toBe(1);
    // p = 4: σ = ½, c = 1.5: edge/peak = exp(−(1.5² − 0.5²)/(2·¼)) = exp(−4).
    expect(referenceProfile('gaussian', 4)[0]).toBeCloseTo(Math.exp(-4), 14);
  });

  it('each axis is floored at 1e-6 of its peak; constant is 1', () => {
    expect(REFERENCE_FLOOR).toBe(1e-6);
    // bump, p = 128: u₀ = −127/129, 1 − u² = 512/16641, so the edge is ≈ exp(−16641/512 + 1) ≈ 2e-14
    // of the peak: floored.
    const big = referenceProfile('bump', 128);
    expect(big[0]).toBe(1e-6);
    expect(big[127]).toBe(1e-6);
    expect(big[20]!).toBeGreaterThan(1e-6);
    expect([...referenceProfile('constant', 5)]).toEqual([1, 1, 1, 1, 1]);
  });

  it('patch starts: stride = patch − overlap, the last patch flush with the region end', () => {
    expect(patchStarts(0, 10, 4, 1)).toEqual([0, 3, 6]);
    expect(patchStarts(0, 11, 4, 1)).toEqual([0, 3, 6, 7]);
    expect(patchStarts(5, 16, 4, 0)).toEqual([5, 9, 12]);
    expect(patchStarts(0, 4, 4, 2)).toEqual([0]);
    // A region shorter than the patch: one patch at its start.
    expect(patchStarts(2, 5, 4, 0)).toEqual([2]);
  });

  it('blends a hand-computed example: two gaussian patches over four voxels', async () => {
    // Patches [0, 3) and [1, 4) (stride 2, the last flush with the end); patch k outputs k
    // everywhere. Profile over 3 voxels: σ = 3/8, c = 1 → [g, 1, g], g = exp(−32/9).
    let call = 0;
    const model = {
      run: async (_b: Float32Array, n: number, patch: Vec3) =>
        new Float32Array(n * patch[0] * patch[1] * patch[2]).fill(call++),
    };
    const out = await slidingWindowReference({
      volume: new Float32Array(4),
      volumeShape: [1, 1, 4],
      inputChannels: 1,
      patchShape: [1, 1, 3],
      overlap: [0, 0, 1],
      blend: 'gaussian',
      outputChannels: 1,
      model,
    });
    const g = Math.exp(-32 / 9);
    expect(call).toBe(2);
    expect(out[0]).toBe(0);
    expect(out[1]).toBeCloseTo(g / (1 + g), 7);
    expect(out[2]).toBeCloseTo(1 / (1 + g), 7);
    expect(out[3]).toBe(1);
  });
});

interface Case {
  vol: Vec3;
  /** The output patch (the grid's); the model's input patch adds 2·margin. */
  patch: Vec3;
  margin: Vec3;
  overlap: Vec3;
  chunkShape: Vec3;
  block: Vec3;
  inputChunks: Vec3;
  blend: 'bump' | 'gaussian' | 'constant';
  channels: number;
  outChannels: number;
  seed: number;
  region?: { start: Vec3; stop: Vec3 } | undefined;
  scale?: number | undefined;
  offset?: number | undefined;
  workers: number;
  handoff: boolean;
  diesAfterComplete?: number;
  allLastAtOnce?: boolean;
  /** output.shardShape (a multiple of block): shards assembled by their last contributor. */
  shard?: Vec3;
  batchSize: number;
}

/** Runs the pipeline and the reference on one case; returns what a test asserts on. */
async function compare(c: Case) {
  const inputPatch = c.patch.map((q, a) => q + 2 * c.margin[a]!) as unknown as Vec3;
  const raw = randomVolume(c.vol, c.channels, c.seed);
  // What the model sees: stored value × scale + offset, in float32 (README, input.scale).
  const normalised = raw.map((v) => v * (c.scale ?? 1) + (c.offset ?? 0));
  const model = jsModel(c.channels, c.outChannels);
  const expected = await slidingWindowReference({
    volume: normalised,
    volumeShape: c.vol,
    inputChannels: c.channels,
    region: c.region,
    patchShape: inputPatch,
    outputPatchShape: c.patch,
    overlap: c.overlap,
    blend: c.blend,
    outputChannels: c.outChannels,
    model,
  });
  const referencePatches = model.patches;
  const job: PipelineJob = {
    volume: raw,
    volumeShape: c.vol,
    inputChannels: c.channels,
    inputChunks: c.inputChunks,
    region: c.region,
    patchShape: inputPatch,
    outputPatchShape: c.patch,
    overlap: c.overlap,
    chunkShape: c.chunkShape,
    blockShape: c.block,
    blend: c.blend,
    outputChannels: c.outChannels,
    scale: c.scale,
    offset: c.offset,
    model,
    workers: c.workers,
    handoff: c.handoff,
    diesAfterComplete: c.diesAfterComplete,
    allLastAtOnce: c.allLastAtOnce,
    shardShape: c.shard,
    batchSize: c.batchSize,
  };
  const result = await pipelineInference(job);
  return {
    diff: maxAbsDiff(result.output, expected),
    referencePatches,
    pipelinePatches: model.patches - referencePatches,
    result,
  };
}

const base = {
  margin: [0, 0, 0] as Vec3,
  inputChunks: [3, 4, 5] as Vec3,
  channels: 1,
  seed: 7,
  workers: 2,
  handoff: true,
  batchSize: 3,
};

// Cases chosen so that a fault in the weights or in the seam partials changes the output
// by far more than 1e-5: voxels seen by several patches with different weights and
// different outputs (the JS model zero-pads at its patch edge), across chunk seams (so
// seam partials are encoded, stored, decoded and summed). With a margin of 1 the JS
// model's 6-neighbourhood stays inside its input patch, so every patch computes the same
// value at a voxel and the weights cancel: the valid-convolution case checks the grid,
// the margins, the channels and the partials, not the weights.
const cases: [string, Case][] = [
  [
    'gaussian, small patches overlapping across chunk seams, two workers, seams blended by their last contributors',
    {
      ...base,
      vol: [4, 9, 14],
      patch: [2, 4, 5],
      overlap: [1, 2, 2],
      chunkShape: [2, 4, 6],
      block: [2, 3, 4],
      blend: 'gaussian',
      outChannels: 2,
    },
  ],
  [
    'two last contributors, both killed between completing and blending: the final pass blends every seam',
    {
      ...base,
      vol: [4, 9, 14],
      patch: [2, 4, 5],
      overlap: [1, 2, 2],
      chunkShape: [4, 10, 8],
      block: [2, 3, 4],
      blend: 'gaussian',
      outChannels: 2,
      allLastAtOnce: true,
      diesAfterComplete: 2,
    },
  ],
  [
    'two last contributors, one killed between completing and blending: the other blends every seam',
    {
      ...base,
      vol: [4, 9, 14],
      patch: [2, 4, 5],
      overlap: [1, 2, 2],
      chunkShape: [4, 10, 8],
      block: [2, 3, 4],
      blend: 'bump',
      outChannels: 1,
      allLastAtOnce: true,
      diesAfterComplete: 1,
    },
  ],
  [
    'bump with 8-voxel patches (edge weight 0.22 of the peak), one worker, final blend pass only (no hand-off)',
    {
      ...base,
      vol: [3, 7, 22],
      patch: [1, 4, 8],
      overlap: [0, 2, 4],
      chunkShape: [1, 4, 8],
      block: [1, 3, 5],
      blend: 'bump',
      outChannels: 1,
      workers: 1,
      handoff: false,
    },
  ],
  [
    'gaussian, valid-convolution model in a region, two input and three output channels, scale and offset',
    {
      ...base,
      vol: [7, 13, 15],
      patch: [3, 4, 4],
      margin: [1, 1, 1],
      overlap: [1, 2, 1],
      chunkShape: [3, 6, 6],
      block: [2, 4, 3],
      blend: 'gaussian',
      channels: 2,
      outChannels: 3,
      region: { start: [1, 2, 2], stop: [6, 12, 13] },
      scale: 2,
      offset: -0.5,
      workers: 3,
      batchSize: 2,
    },
  ],
  [
    'two last contributors at once: both blend every seam block they share, to the same bytes',
    {
      ...base,
      vol: [4, 9, 14],
      patch: [2, 4, 5],
      overlap: [1, 2, 2],
      chunkShape: [4, 10, 8],
      block: [2, 3, 4],
      blend: 'gaussian',
      outChannels: 2,
      allLastAtOnce: true,
    },
  ],
];

/**
 * Shards (of `shard` voxels) that chunks touch, and those touched by two chunks or more,
 * counted from the plan's block geometry alone (not from the hand-off's own code).
 */
function shardCounts(plan: Plan, shard: Vec3): { all: number; shared: number } {
  const per = shard.map((s, a) => s / plan.blockShape[a]!);
  const chunksOf = new Map<string, Set<string>>();
  for (const b of plan.blocks()) {
    const key = b.coord.map((c, a) => Math.floor(c / per[a]!)).join('_');
    const set = chunksOf.get(key) ?? new Set<string>();
    const r = b.chunkRange;
    for (let z = r.start[0]; z < r.stop[0]; z++)
      for (let y = r.start[1]; y < r.stop[1]; y++)
        for (let x = r.start[2]; x < r.stop[2]; x++) set.add(`${z}_${y}_${x}`);
    chunksOf.set(key, set);
  }
  const sizes = [...chunksOf.values()].map((s) => s.size).filter((n) => n > 0);
  return { all: sizes.length, shared: sizes.filter((n) => n > 1).length };
}

// The same cases with a sharded output: the unit handed off is the shard.
const shardedCases: [string, Case][] = cases
  .filter(([, c]) => c.handoff || c.allLastAtOnce)
  .map(([name, c]) => [
    `sharded (shards of 1×2×2 blocks): ${name}`,
    { ...c, shard: c.block.map((b, a) => (a === 0 ? b : 2 * b)) as unknown as Vec3 },
  ]);

describe('chunking invariance: the real worker and blend code against the reference', () => {
  it.each([...cases, ...shardedCases])('%s', async (_name, c) => {
    const r = await compare(c);
    // The case exercises what it is meant to: several chunks, seam partials, overlap.
    expect(r.result.ctx.plan.counts.chunks).toBeGreaterThan(1);
    expect(r.result.ctx.plan.counts.seamPartials).toBeGreaterThan(0);
    expect(r.diff).toBeLessThanOrEqual(1e-5);
    // No patch inferred twice: the pipeline did exactly the reference's work.
    expect(r.pipelinePatches).toBe(r.referencePatches);
    const blended = r.result.stats.map((s) => s.blended);
    const byWorkers = blended.reduce((a, b) => a + b, 0);
    if (c.shard) {
      // The unit is the shard: one touched by one chunk only is assembled by it at once;
      // a shared one (two chunks here) by each "last" survivor.
      const { all, shared } = shardCounts(r.result.ctx.plan, c.shard);
      expect(shared).toBeGreaterThan(0);
      const dies = c.diesAfterComplete ?? 0;
      if (!c.allLastAtOnce) {
        expect(r.result.finalPassBlocks).toBe(0);
        expect(byWorkers).toBeGreaterThanOrEqual(all);
      } else {
        expect(byWorkers).toBe(all - shared + shared * (2 - dies));
        expect(r.result.finalPassBlocks).toBe(dies === 2 ? shared : 0);
        if (dies === 0) expect(r.result.rewrites).toEqual({ blocks: shared, differing: 0 });
      }
      return;
    }
    const seamBlocks = r.result.ctx.plan.counts.seamBlocks;
    if (!c.handoff) {
      expect(byWorkers).toBe(0);
      expect(r.result.finalPassBlocks).toBe(seamBlocks);
    } else if (c.allLastAtOnce) {
      // Two chunks sharing every seam block, both "last": each survivor blended every one
      // of them; a "killed" one blended none; the final pass blends only what none did.
      expect(r.result.ctx.plan.counts.chunks).toBe(2);
      const dies = c.diesAfterComplete ?? 0;
      expect([...blended].sort()).toEqual(
        dies === 0 ? [seamBlocks, seamBlocks] : dies === 1 ? [0, seamBlocks] : [0, 0],
      );
      expect(r.result.finalPassBlocks).toBe(dies === 2 ? seamBlocks : 0);
      // Blended twice, written twice, the same bytes both times.
      if (dies === 0) expect(r.result.rewrites).toEqual({ blocks: seamBlocks, differing: 0 });
    } else {
      // The normal path: every seam block blended by a worker, nothing waits for a Blend step.
      expect(r.result.finalPassBlocks).toBe(0);
      expect(byWorkers).toBeGreaterThanOrEqual(seamBlocks);
    }
  });

  it('holds for random volumes, chunk and block shapes, overlaps, blends, workers and orders', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          vol: vec(3, 19),
          patch: vec(2, 7),
          ovFrac: vec(0, 90),
          chunkExtra: vec(0, 9),
          block: vec(2, 8),
          inputChunks: vec(2, 9),
          blend: fc.constantFrom('bump' as const, 'gaussian' as const, 'constant' as const),
          channels: fc.integer({ min: 1, max: 2 }),
          // 1 and 2 output channels take specialised accumulation loops, 3+ the general one.
          outChannels: fc.integer({ min: 1, max: 4 }),
          seed: fc.integer(),
          withRegion: fc.boolean(),
          // Valid-convolution models: the input patch is the output patch + 2·margin.
          margin: vec(0, 2),
          // 2D models on anisotropic stacks run with patch z = 1.
          flat: fc.boolean(),
          workers: fc.integer({ min: 1, max: 3 }),
          handoff: fc.boolean(),
          dies: fc.integer({ min: 0, max: 2 }),
          // A sharded output half the time: shards of 1–3 blocks per axis.
          shardBlocks: fc.option(vec(1, 3), { nil: undefined }),
          batchSize: fc.integer({ min: 1, max: 4 }),
          affine: fc.boolean(),
        }),
        async (r) => {
          const patch: Vec3 = r.flat ? [1, r.patch[1], r.patch[2]] : r.patch;
          const overlap = patch.map((p, a) =>
            Math.floor(((p - 1) * r.ovFrac[a]!) / 100),
          ) as unknown as Vec3;
          const c: Case = {
            vol: r.vol,
            patch,
            margin: r.margin,
            overlap,
            chunkShape: patch.map((p, a) => p - overlap[a]! + r.chunkExtra[a]!) as unknown as Vec3,
            block: r.block,
            inputChunks: r.inputChunks,
            blend: r.blend,
            channels: r.channels,
            outChannels: r.outChannels,
            seed: r.seed,
            region: r.withRegion
              ? {
                  start: r.vol.map((v) => Math.floor(v / 4)) as unknown as Vec3,
                  stop: r.vol.map((v) => v - Math.floor(v / 5)) as unknown as Vec3,
                }
              : undefined,
            scale: r.affine ? 3 : undefined,
            offset: r.affine ? -1 : undefined,
            workers: r.workers,
            handoff: r.handoff,
            diesAfterComplete: r.dies,
            ...(r.shardBlocks
              ? {
                  shard: r.block.map((b, a) => b * r.shardBlocks![a]!) as unknown as Vec3,
                }
              : {}),
            batchSize: r.batchSize,
          };
          const got = await compare(c);
          expect(got.diff).toBeLessThanOrEqual(1e-5);
          expect(got.pipelinePatches).toBe(got.referencePatches);
          const done = got.result.stats.reduce((n, s) => n + s.done, 0);
          expect(done).toBe(got.result.ctx.plan.counts.chunks);
          // Every seam block (shard) finished once at least, by a worker or by the final pass.
          const blended = got.result.stats.reduce((n, s) => n + s.blended, 0);
          const units = c.shard
            ? shardCounts(got.result.ctx.plan, c.shard).all
            : got.result.ctx.plan.counts.seamBlocks;
          expect(blended + got.result.finalPassBlocks).toBeGreaterThanOrEqual(units);
        },
      ),
      { numRuns: 100 },
    );
  });
});
