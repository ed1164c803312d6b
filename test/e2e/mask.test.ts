// input.mask end to end: a masked job under several chunkings (and sharded) equals the
// whole-volume reference with the same mask (core/reference, written apart from the
// pipeline), and differs from the unmasked result, so the mask is really applied.

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { ModelRunner } from '../../core/model/index.ts';
import { slidingWindowReference } from '../../core/reference/sliding-window.ts';
import { LocalStore } from '../../core/store/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import {
  FIXTURE_MODELS,
  lcgVolume,
  maxAbsDiff,
  readOutput,
  referenceFor,
  tempDir,
  writeJobDir,
} from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

const SHAPE: Vec3 = [21, 30, 34];
const FACTOR: Vec3 = [4, 4, 4]; // divides no axis of SHAPE: the last mask voxel is partial
const MASK_SHAPE: Vec3 = [6, 8, 9]; // ceil(SHAPE / FACTOR)
const PATCH: Vec3 = [6, 10, 10];
const OVERLAP: Vec3 = [2, 4, 4];
const MODEL = join(FIXTURE_MODELS, 'tiny.onnx');

/** Tissue (value 200) in one corner block of the mask and one isolated voxel; 0 elsewhere. */
function maskData(): Uint8Array {
  const m = new Uint8Array(MASK_SHAPE[0] * MASK_SHAPE[1] * MASK_SHAPE[2]);
  const at = (z: number, y: number, x: number) => (z * MASK_SHAPE[1] + y) * MASK_SHAPE[2] + x;
  for (let z = 0; z < 2; z++)
    for (let y = 0; y < 3; y++) for (let x = 0; x < 3; x++) m[at(z, y, x)] = 200;
  m[at(5, 7, 8)] = 200; // the partial last mask voxel on every axis
  m[at(3, 4, 4)] = 1; // at or below threshold 1: not tissue
  return m;
}

async function job(o: { chunk: Vec3; shard?: Vec3; mask: boolean }): Promise<Float32Array> {
  const t = tempDir();
  cleanups.push(t.cleanup);
  await writeZarrArray(new LocalStore(join(t.dir, 'mask.zarr'), { fsync: false }), {
    data: maskData(),
    shape: [...MASK_SHAPE],
    chunkShape: [4, 4, 4],
  });
  const path = await writeJobDir(t.dir, {
    shape: SHAPE,
    data: lcgVolume(SHAPE, 7),
    manifest: {
      input: {
        url: 'input.zarr',
        ...(o.mask ? { mask: { url: 'mask.zarr', factor: FACTOR, threshold: 1 } } : {}),
      },
      output: {
        url: 'output.zarr',
        dtype: 'float32',
        blockShape: [4, 5, 6],
        ...(o.shard ? { shardShape: o.shard } : {}),
      },
      model: { url: MODEL, patchShape: PATCH, outputChannels: 2 },
      overlap: OVERLAP,
      chunkShape: o.chunk,
      blend: 'bump',
    },
  });
  const result = await runLocal(await loadManifest(path), { workers: 1 });
  expect(result.status).toBe('SUCCEEDED');
  return readOutput(t.dir, Box.ofShape(SHAPE));
}

async function maskedReference(): Promise<Float32Array> {
  const model = await ModelRunner.open({ path: MODEL }, { intraOpThreads: 1 });
  try {
    return await slidingWindowReference({
      volume: Float32Array.from(lcgVolume(SHAPE, 7), (v) => v / 255),
      volumeShape: SHAPE,
      inputChannels: 1,
      patchShape: PATCH,
      overlap: OVERLAP,
      blend: 'bump',
      outputChannels: 2,
      model,
      mask: { data: maskData(), shape: MASK_SHAPE, factor: FACTOR, threshold: 1 },
    });
  } finally {
    await model.close();
  }
}

describe('input.mask', () => {
  it('equals the masked reference under several chunkings and sharded, and differs from unmasked', async () => {
    const expected = await maskedReference();
    const unmasked = await referenceFor({
      data: lcgVolume(SHAPE, 7),
      shape: SHAPE,
      model: MODEL,
      patchShape: PATCH,
      overlap: OVERLAP,
      blend: 'bump',
      outputChannels: 2,
    });
    // The mask changes the result (some patches masked) but not everywhere (some inferred).
    expect(maxAbsDiff(expected, unmasked)).toBeGreaterThan(1e-2);
    expect(expected.some((v) => v !== 0)).toBe(true);
    expect(expected.some((v) => v === 0)).toBe(true);
    for (const c of [
      { chunk: [8, 14, 14] as Vec3 },
      { chunk: [12, 20, 26] as Vec3 },
      { chunk: [4, 6, 6] as Vec3 },
      { chunk: [8, 14, 14] as Vec3, shard: [8, 10, 12] as Vec3 },
    ]) {
      const got = await job({ ...c, mask: true });
      expect(maxAbsDiff(got, expected), JSON.stringify(c)).toBeLessThanOrEqual(1e-5);
    }
  }, 240_000);
});
