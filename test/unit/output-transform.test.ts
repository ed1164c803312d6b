// output.transform: the per-voxel transform against hand-computed values, the final block
// it makes (voxels outside the region stay 0), the manifest's refusals, and chunked runs
// (several chunkings, sharded and unsharded, seams blended by last contributors or by the
// final pass) equal to the whole-volume reference with the same transform applied to its
// blended result: labels and masks exactly, softmax within 1e-5. The reference (core/reference) applies
// the transform from the README's words and shares no code with core/pipeline/convert.ts.

import { describe, expect, it } from 'vitest';
import { PartialSum, weightSums } from '../../core/blend/index.ts';
import { Box, Plan, type Vec3 } from '../../core/geometry/index.ts';
import type { PatchModel } from '../../core/infer/index.ts';
import { safeParseManifest } from '../../core/manifest/parse.ts';
import { finalBlock, storedOutput, transformVoxel } from '../../core/pipeline/convert.ts';
import { slidingWindowReference } from '../../core/reference/index.ts';
import { pipelineInference } from '../helpers/chunked.ts';
import { jsModel } from '../helpers/js-model.ts';

/**
 * jsModel with channel k shifted by 0.5·sin(7(k + 1)·input): the voxel's own input then
 * decides which channel is largest, so argmax yields every label (jsModel alone favours
 * channel 0 almost everywhere).
 */
function labelModel(channels: number): PatchModel {
  const base = jsModel(1, channels);
  return {
    async run(batch: Float32Array, n: number, patch: Vec3, outPatch?: Vec3) {
      const out = await base.run(batch, n, patch, outPatch);
      const v = patch[0] * patch[1] * patch[2];
      for (let b = 0; b < n; b++)
        for (let k = 0; k < channels; k++)
          for (let i = 0; i < v; i++)
            out[(b * channels + k) * v + i]! += 0.5 * Math.sin(7 * (k + 1) * batch[b * v + i]!);
      return out;
    },
  };
}

const voxel = (t: Parameters<typeof transformVoxel>[0], v: number[]): number[] => {
  const out = new Float64Array(v.length);
  transformVoxel(t, Float64Array.from(v), out);
  return Array.from(out);
};

describe('transformVoxel', () => {
  it('argmax picks the largest channel, the lowest index among equal maxima', () => {
    expect(voxel('argmax', [0.1, 0.7, 0.2])[0]).toBe(1);
    expect(voxel('argmax', [0.3, 0.9, 0.9, 0.1])[0]).toBe(1);
    expect(voxel('argmax', [0.5, 0.5])[0]).toBe(0);
    expect(voxel('argmax', [-2, -1, -3])[0]).toBe(1);
  });
  it('threshold is 1 strictly above t, per channel', () => {
    expect(voxel({ threshold: 0.5 }, [0.5, 0.51, 0.2])).toEqual([0, 1, 0]);
  });
  it('sigmoid and softmax match hand values', () => {
    // 1/(1+e^0) = 0.5; 1/(1+e^-2) = 0.8807970779778823
    const s = voxel('sigmoid', [0, 2]);
    expect(s[0]).toBe(0.5);
    expect(s[1]).toBeCloseTo(0.8807970779778823, 12);
    // softmax([0, ln 3]) = [1/4, 3/4]; softmax([1000, 1000]) = [1/2, 1/2] (no overflow)
    const m = voxel('softmax', [0, Math.log(3)]);
    expect(m[0]).toBeCloseTo(0.25, 12);
    expect(m[1]).toBeCloseTo(0.75, 12);
    expect(voxel('softmax', [1000, 1000])).toEqual([0.5, 0.5]);
  });
});

describe('finalBlock', () => {
  // One patch [2,2,2], constant weights: Σw = 1 where it covers, so the blended value is
  // what was added. The region is the block's first z plane only.
  const plan = new Plan({
    volumeShape: [2, 2, 2],
    patchShape: [2, 2, 2],
    overlap: [0, 0, 0],
    chunkShape: [2, 2, 2],
    region: { start: [0, 0, 0], stop: [1, 2, 2] },
  });
  it('stores labels as integers (uint8 not scaled) and leaves voxels outside the region 0', () => {
    const sums = weightSums(plan, 'constant');
    const box = Box.ofShape([2, 2, 2]);
    const sum = new PartialSum(box, 2, sums);
    // channel 0: 0.2 everywhere, channel 1: 0.6 everywhere
    sum.num.data.fill(0.2, 0, 8);
    sum.num.data.fill(0.6, 8, 16);
    const stored = { channels: 1, dtype: 'uint8', modelChannels: 2, transform: 'argmax' } as const;
    const region = new Box([0, 0, 0], [1, 2, 2]);
    const out = finalBlock(stored, sum, box, region);
    expect(out.channels).toBe(1);
    expect(Array.from(out.data)).toEqual([1, 1, 1, 1, 0, 0, 0, 0]);
    const sig = finalBlock(
      { ...stored, channels: 2, dtype: 'float32', transform: 'sigmoid' },
      sum,
      box,
      region,
    );
    // outside the region: 0, not sigmoid(0) = 0.5
    expect(sig.data[4]).toBe(0);
    expect(sig.data[0]).toBeCloseTo(1 / (1 + Math.exp(-0.2)), 6);
  });
});

describe('the manifest', () => {
  const doc = (output: Record<string, unknown>, outputChannels = 3) => ({
    version: 1,
    name: 't',
    input: { url: 's3://bucket-t/in.zarr' },
    output: { url: 's3://bucket-t/outputs/o.zarr', dtype: 'uint8', ...output },
    model: { url: 's3://bucket-t/m.onnx', patchShape: [4, 4, 4], outputChannels },
    overlap: [1, 1, 1],
    chunkShape: [8, 8, 8],
  });
  const problems = (d: unknown) => {
    const r = safeParseManifest(d);
    return r.ok ? [] : r.error.issues.map((i) => `${i.path}: ${i.message}`);
  };
  it('accepts each transform form and refuses others', () => {
    for (const t of ['argmax', 'sigmoid', 'softmax', { threshold: 0.5 }])
      expect(problems(doc({ transform: t }))).toEqual([]);
    expect(problems(doc({ transform: 'relu' }))[0]).toMatch(/^output\.transform/);
    expect(problems(doc({ transform: { threshold: 'x' } }))[0]).toMatch(/^output\.transform/);
  });
  it('refuses argmax over more labels than uint8 holds; a pyramid of labels is allowed', () => {
    expect(problems(doc({ transform: 'argmax' }, 257))[0]).toMatch(/^output\.transform: .*uint8/);
    expect(problems(doc({ transform: 'argmax' }, 256))).toEqual([]);
    expect(problems(doc({ transform: 'argmax', pyramid: 1 }))).toEqual([]);
  });
  it('stores one channel under argmax, the model channels otherwise', () => {
    const m = (t: unknown) => {
      const r = safeParseManifest(doc({ transform: t }));
      if (!r.ok) throw r.error;
      return storedOutput(r.manifest).channels;
    };
    expect(m('argmax')).toBe(1);
    expect(m('softmax')).toBe(3);
    expect(m({ threshold: 0.1 })).toBe(3);
  });
});

describe('chunked runs with output.transform equal the reference', () => {
  const vol: Vec3 = [9, 10, 11];
  const patch: Vec3 = [4, 5, 6];
  const overlap: Vec3 = [1, 2, 2];
  const volume = (() => {
    let s = 11;
    return Float32Array.from({ length: vol[0] * vol[1] * vol[2] }, () => {
      s = (s * 1664525 + 1013904223) >>> 0;
      return s / 2 ** 32;
    });
  })();
  const chunkings: { chunk: Vec3; block: Vec3; shard?: Vec3; handoff?: boolean }[] = [
    { chunk: [9, 10, 11], block: [3, 4, 4] },
    { chunk: [3, 3, 4], block: [3, 3, 4] },
    // every seam block left to the final blend pass (blendSeams), none to the workers
    { chunk: [3, 5, 4], block: [3, 5, 2], handoff: false },
    { chunk: [6, 6, 8], block: [2, 3, 4] },
    { chunk: [3, 6, 4], block: [3, 3, 2], shard: [3, 6, 4] },
    { chunk: [6, 3, 8], block: [2, 3, 4], shard: [6, 6, 8] },
  ];
  const cases = [
    { transform: 'argmax', dtype: 'uint8', exact: true },
    { transform: { threshold: 0.3 }, dtype: 'uint8', exact: true },
    { transform: 'softmax', dtype: 'float32', exact: false },
  ] as const;
  for (const c of cases)
    it(`${JSON.stringify(c.transform)} (${c.dtype})`, async () => {
      const outChannels = 3;
      const expected = await slidingWindowReference({
        volume,
        volumeShape: vol,
        inputChannels: 1,
        patchShape: patch,
        overlap,
        blend: 'bump',
        outputChannels: outChannels,
        model: labelModel(outChannels),
        transform: c.transform,
      });
      expect(expected.length).toBe(
        (c.transform === 'argmax' ? 1 : outChannels) * vol[0] * vol[1] * vol[2],
      );
      // The case is not trivial: more than one label (or mask value) occurs.
      expect(new Set(expected).size).toBeGreaterThan(1);
      for (const k of chunkings) {
        const result = await pipelineInference({
          volume,
          volumeShape: vol,
          inputChannels: 1,
          patchShape: patch,
          overlap,
          chunkShape: k.chunk,
          blockShape: k.block,
          ...(k.shard ? { shardShape: k.shard } : {}),
          blend: 'bump',
          outputChannels: outChannels,
          model: labelModel(outChannels),
          workers: 2,
          handoff: k.handoff !== false,
          dtype: c.dtype,
          transform: c.transform,
        });
        expect(result.output.length, JSON.stringify(k)).toBe(expected.length);
        if (k.handoff === false) expect(result.finalPassBlocks).toBeGreaterThan(0);
        if (c.exact)
          expect(Array.from(result.output), JSON.stringify(k)).toEqual(Array.from(expected));
        else {
          let m = 0;
          for (let i = 0; i < expected.length; i++)
            m = Math.max(m, Math.abs(result.output[i]! - expected[i]!));
          expect(m, JSON.stringify(k)).toBeLessThanOrEqual(1e-5);
        }
      }
    }, 120_000);
});
