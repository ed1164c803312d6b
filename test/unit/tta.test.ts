// Test-time augmentation (model.tta). The transforms are checked against numpy's own
// np.flip / np.rot90 (test/fixtures/tta/transforms.json, written by generate.py beside
// it); the reference's TTA (core/reference, its own index arithmetic) against the same
// fixture; and the pipeline end to end against the reference, for two chunkings, with a
// model that is NOT flip-equivariant (so TTA changes the output and a skipped or wrong
// transform shows).

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { Vec3 } from '../../core/geometry/index.ts';
import {
  inverseTransform,
  type PatchModel,
  TtaShapeError,
  type TtaTransform,
  transformVolumes,
  ttaTransforms,
  withTta,
} from '../../core/infer/index.ts';
import { parseManifest } from '../../core/manifest/parse.ts';
import { slidingWindowReference } from '../../core/reference/index.ts';
import { pipelineInference } from '../helpers/chunked.ts';

interface NumpyCase {
  shape: Vec3;
  flip: ('z' | 'y' | 'x')[];
  rot90: 0 | 1 | 2 | 3;
  result: number[];
}
const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/tta/transforms.json', import.meta.url), 'utf8'),
) as { cases: NumpyCase[] };

const asTransform = (c: NumpyCase): TtaTransform => ({
  flip: [c.flip.includes('z'), c.flip.includes('y'), c.flip.includes('x')],
  rot90: c.rot90,
});
const iota = (n: number): Float32Array => Float32Array.from({ length: n }, (_, i) => i);
const volumeOf = (s: Vec3): number => s[0] * s[1] * s[2];

/**
 * Not equivariant under flips or turns: each output channel weighs the voxel's neighbours
 * differently per direction and adds a term in the voxel's position in the patch. Valid
 * convolution when outPatch < patch (the centred output part).
 */
function lopsided(cin: number, cout: number): PatchModel & { calls: number } {
  const m = {
    calls: 0,
    async run(batch: Float32Array, n: number, patch: Vec3, outPatch: Vec3 = patch) {
      m.calls++;
      const [pz, py, px] = patch;
      const [oz, oy, ox] = outPatch;
      const [mz, my, mx] = [(pz - oz) / 2, (py - oy) / 2, (px - ox) / 2];
      const pv = pz * py * px;
      const ov = oz * oy * ox;
      const out = new Float32Array(n * cout * ov);
      const at = (b: number, c: number, z: number, y: number, x: number): number =>
        z < 0 || y < 0 || x < 0 || z >= pz || y >= py || x >= px
          ? 0
          : batch[(b * cin + c) * pv + (z * py + y) * px + x]!;
      for (let b = 0; b < n; b++)
        for (let k = 0; k < cout; k++)
          for (let z = 0; z < oz; z++)
            for (let y = 0; y < oy; y++)
              for (let x = 0; x < ox; x++) {
                const [iz, iy, ix] = [z + mz, y + my, x + mx];
                let v = 0;
                for (let c = 0; c < cin; c++)
                  v +=
                    0.9 * at(b, c, iz, iy, ix) -
                    (0.6 + 0.1 * k) * at(b, c, iz, iy, ix + 1) +
                    0.4 * at(b, c, iz + 1, iy, ix) -
                    0.3 * at(b, c, iz, iy + 1, ix) +
                    0.2 * at(b, c, iz, iy - 1, ix - 1);
                out[(b * cout + k) * ov + (z * oy + y) * ox + x] = Math.tanh(
                  v + 0.03 * (x - 2 * y + 0.5 * z) + 0.1 * k,
                );
              }
      return out;
    },
  };
  return m;
}

function randomVolume(n: number, seed: number): Float32Array {
  let s = seed >>> 0;
  return Float32Array.from({ length: n }, () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  });
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

describe('TTA transforms (core/infer/tta.ts) against numpy', () => {
  it('flip the listed axes, then turn yx as numpy.rot90(axes=(y, x)), for every case', () => {
    expect(fixture.cases.length).toBeGreaterThanOrEqual(64);
    for (const c of fixture.cases) {
      const v = volumeOf(c.shape);
      // Two volumes in a row (a batch's patches × channels): each transformed on its own.
      const src = Float32Array.from({ length: 2 * v }, (_, i) => i);
      const got = transformVolumes(src, 2, c.shape, asTransform(c));
      expect([...got.subarray(0, v)], JSON.stringify([c.shape, c.flip, c.rot90])).toEqual(c.result);
      expect([...got.subarray(v)]).toEqual(c.result.map((r) => r + v));
    }
  });

  it('are undone by inverseTransform', () => {
    for (const c of fixture.cases) {
      const t = asTransform(c);
      const x = iota(volumeOf(c.shape));
      const back = transformVolumes(
        transformVolumes(x, 1, c.shape, t),
        1,
        c.shape,
        inverseTransform(t),
      );
      expect([...back]).toEqual([...x]);
    }
  });
});

describe('model.tta: which transforms (ttaTransforms)', () => {
  const cube: Vec3 = [4, 6, 6];
  it('counts the distinct ones, identity first', () => {
    expect(ttaTransforms(undefined, cube)).toHaveLength(1);
    expect(ttaTransforms(false, cube)).toHaveLength(1);
    expect(ttaTransforms(true, cube)).toHaveLength(8);
    expect(ttaTransforms(['flips'], cube)).toHaveLength(8);
    expect(ttaTransforms(['rot90'], cube)).toHaveLength(4);
    expect(ttaTransforms(['flips', 'rot90'], cube)).toHaveLength(16);
    expect(ttaTransforms(['rot90', 'flips'], cube)).toHaveLength(16);
    // Flipping y and x is the half turn: one transform, not two.
    expect(ttaTransforms([{ flip: ['y', 'x'] }, { rot90: 2 }], cube)).toHaveLength(2);
    expect(ttaTransforms([{ flip: ['z'] }], cube)).toHaveLength(2);
    for (const spec of [true, ['flips', 'rot90'] as const])
      expect(ttaTransforms(spec as never, cube)[0]).toEqual({
        flip: [false, false, false],
        rot90: 0,
      });
  });

  it('drops flips of an axis one voxel thick (a 2D model: 4 flips, not 8)', () => {
    expect(ttaTransforms(true, [1, 8, 8])).toHaveLength(4);
    expect(ttaTransforms(['flips', 'rot90'], [1, 8, 8])).toHaveLength(8);
  });

  it('refuses a quarter turn of a patch not square in yx, at the manifest and at the call', () => {
    expect(() => ttaTransforms(['rot90'], [4, 6, 8])).toThrow(TtaShapeError);
    expect(() => ttaTransforms([{ rot90: 1 }], [4, 6, 6], [2, 4, 6])).toThrow(TtaShapeError);
    expect(ttaTransforms([{ rot90: 2 }], [4, 6, 8])).toHaveLength(2);
    const manifest = (tta: unknown, patchShape = [4, 6, 8]) => ({
      version: 1,
      name: 'tta',
      input: { url: 's3://bucket/in.zarr' },
      output: { url: 's3://bucket/out.zarr', dtype: 'float32' },
      model: { url: 's3://bucket/m.onnx', patchShape, outputChannels: 1, tta },
      overlap: [1, 1, 1],
      chunkShape: [8, 8, 8],
    });
    expect(() => parseManifest(manifest(['flips', 'rot90']))).toThrow(/model\.tta/);
    expect(() => parseManifest(manifest([{ rot90: 3 }]))).toThrow(/square in y and x/);
    expect(parseManifest(manifest([{ rot90: 2 }, 'flips'])).model.tta).toEqual([
      { rot90: 2 },
      'flips',
    ]);
    expect(parseManifest(manifest(true, [4, 6, 6])).model.tta).toBe(true);
    expect(() => parseManifest(manifest([]))).toThrow(/model\.tta/);
    expect(() => parseManifest(manifest(['mirror']))).toThrow(/model\.tta/);
  });
});

describe('withTta: the averaging PatchModel', () => {
  it('makes one model call per transform per batch, and averages T⁻¹ f(T x) (numpy permutations)', async () => {
    const shape: Vec3 = [3, 4, 4];
    const cases = fixture.cases.filter((c) => c.shape.join() === shape.join());
    expect(cases).toHaveLength(32); // 8 flips × 4 turns, 16 of them distinct
    const model = lopsided(1, 2);
    const tta = withTta(model, ttaTransforms(['flips', 'rot90'], shape));
    const n = 3;
    const v = volumeOf(shape);
    const batch = randomVolume(n * v, 7);
    const out = await tta.run(batch, n, shape);
    expect(model.calls).toBe(16);
    // Expected: over numpy's distinct transforms (src[i]: T(x)[i] = x[src[i]]), the model
    // on each gathered patch, its output scattered back through the same src.
    const distinct = new Map<string, number[]>();
    for (const c of cases) distinct.set(c.result.join(), c.result);
    expect(distinct.size).toBe(16);
    const bare = lopsided(1, 2);
    const expected = new Float64Array(n * 2 * v);
    for (const src of distinct.values()) {
      const moved = new Float32Array(n * v);
      for (let b = 0; b < n; b++)
        for (let i = 0; i < v; i++) moved[b * v + i] = batch[b * v + src[i]!]!;
      const f = await bare.run(moved, n, shape);
      for (let b = 0; b < n * 2; b++)
        for (let i = 0; i < v; i++) expected[b * v + src[i]!]! += f[b * v + i]! / 16;
    }
    expect(maxAbsDiff(out, Float32Array.from(expected))).toBeLessThan(1e-6);
    // And it is not the bare model's output (the model is not equivariant).
    expect(maxAbsDiff(out, await bare.run(batch, n, shape))).toBeGreaterThan(1e-2);
  });

  it('is the model itself without transforms', () => {
    const model = lopsided(1, 1);
    expect(withTta(model, ttaTransforms(undefined, [2, 2, 2]))).toBe(model);
  });
});

describe('the reference with TTA (core/reference) against numpy', () => {
  it('one patch covering the volume: the mean over numpy-transformed patches', async () => {
    const shape: Vec3 = [3, 4, 4];
    const v = volumeOf(shape);
    const volume = randomVolume(v, 11);
    const flipsX = fixture.cases.filter(
      (c) =>
        c.shape.join() === shape.join() &&
        ((c.flip.join() === 'x' && c.rot90 === 1) || (c.flip.length === 0 && c.rot90 === 0)),
    );
    expect(flipsX).toHaveLength(2);
    const got = await slidingWindowReference({
      volume,
      volumeShape: shape,
      inputChannels: 1,
      patchShape: shape,
      overlap: [0, 0, 0],
      blend: 'constant',
      outputChannels: 2,
      model: lopsided(1, 2),
      tta: [{ flip: ['x'], rot90: 1 }],
    });
    const expected = new Float64Array(2 * v);
    for (const { result: src } of flipsX) {
      const moved = Float32Array.from({ length: v }, (_, i) => volume[src[i]!]!);
      const f = await lopsided(1, 2).run(moved, 1, shape);
      for (let c = 0; c < 2; c++)
        for (let i = 0; i < v; i++) expected[c * v + src[i]!]! += f[c * v + i]! / 2;
    }
    expect(maxAbsDiff(got, Float32Array.from(expected))).toBeLessThan(1e-6);
  });
});

describe('model.tta end to end: chunked pipeline = reference with TTA', () => {
  const volumeShape: Vec3 = [9, 12, 12];
  const volume = randomVolume(volumeShape[0] * volumeShape[1] * volumeShape[2], 3);
  const cases = [
    {
      name: 'the 16 flips and turns, same-size output',
      tta: ['flips', 'rot90'] as ('flips' | 'rot90')[],
      patchShape: [4, 6, 6] as Vec3,
      outputPatchShape: undefined,
      overlap: [2, 2, 2] as Vec3,
      blend: 'bump' as const,
    },
    {
      name: 'the 8 flips, a valid-convolution model',
      tta: true,
      patchShape: [5, 7, 7] as Vec3,
      outputPatchShape: [3, 5, 5] as Vec3,
      overlap: [1, 2, 2] as Vec3,
      blend: 'gaussian' as const,
    },
  ];
  for (const c of cases)
    it(`${c.name}: two chunkings ≤ 1e-5 from the reference, 16× (8×) the model calls`, async () => {
      const reference = await slidingWindowReference({
        volume,
        volumeShape,
        inputChannels: 1,
        patchShape: c.patchShape,
        outputPatchShape: c.outputPatchShape,
        overlap: c.overlap,
        blend: c.blend,
        outputChannels: 2,
        model: lopsided(1, 2),
        tta: c.tta,
      });
      const plain = await slidingWindowReference({
        volume,
        volumeShape,
        inputChannels: 1,
        patchShape: c.patchShape,
        outputPatchShape: c.outputPatchShape,
        overlap: c.overlap,
        blend: c.blend,
        outputChannels: 2,
        model: lopsided(1, 2),
      });
      // TTA matters for this model: a pipeline ignoring model.tta fails below.
      expect(maxAbsDiff(reference, plain)).toBeGreaterThan(1e-3);
      for (const chunkShape of [
        [4, 8, 8],
        [9, 4, 12],
      ] as Vec3[]) {
        const model = lopsided(1, 2);
        const run = await pipelineInference({
          volume,
          volumeShape,
          inputChannels: 1,
          patchShape: c.patchShape,
          outputPatchShape: c.outputPatchShape,
          overlap: c.overlap,
          chunkShape,
          blockShape: [4, 4, 4],
          blend: c.blend,
          outputChannels: 2,
          model,
          tta: c.tta,
          workers: 2,
          batchSize: 3,
        });
        expect(maxAbsDiff(run.output, reference)).toBeLessThanOrEqual(1e-5);
        const patches = run.ctx.plan.counts.patches;
        const factor = c.tta === true ? 8 : 16;
        // One call per transform per batch of ≤ 3 patches.
        expect(model.calls).toBeGreaterThanOrEqual(factor * Math.ceil(patches / 3));
        expect(model.calls).toBeLessThanOrEqual(factor * patches);
      }
    });
});
