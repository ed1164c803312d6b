// A label output end to end (`tessera run` in-process, real Zarr files, onnxruntime):
// output.transform "argmax" over a 2-channel model stores one uint8 channel of labels
// equal to the argmax of the whole-volume reference, and the output group is marked as
// an OME-Zarr label image (`image-label`, its label values named by the channels).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { referenceTransform } from '../../core/reference/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { openOutputVolume } from '../../core/volume/index.ts';
import { LevelStore } from '../../core/volume/pyramid.ts';
import {
  FIXTURE_MODELS,
  lcgVolume,
  readOutput,
  referenceFor,
  tempDir,
  writeJobDir,
} from '../helpers/job-dir.ts';

const t = tempDir();
afterAll(() => t.cleanup());

it('argmax labels equal the reference and carry image-label metadata; the pyramid samples them', async () => {
  const shape: Vec3 = [14, 22, 20];
  const data = lcgVolume(shape, 5);
  const model = join(FIXTURE_MODELS, 'realistic.onnx');
  const common = { patchShape: [8, 12, 12] as Vec3, overlap: [2, 4, 4] as Vec3 };
  const path = await writeJobDir(t.dir, {
    shape,
    data,
    manifest: {
      model: { url: model, patchShape: common.patchShape, outputChannels: 2 },
      output: {
        url: 'output.zarr',
        dtype: 'uint8',
        blockShape: [7, 11, 10],
        transform: 'argmax',
        pyramid: 1,
      },
      overlap: common.overlap,
      chunkShape: [8, 12, 12],
      blend: 'bump',
    },
  });
  const result = await runLocal(await loadManifest(path), { workers: 1 });
  expect(result.message).toBeUndefined();
  expect(result.status).toBe('SUCCEEDED');
  const blended = await referenceFor({
    data,
    shape,
    model,
    ...common,
    blend: 'bump',
    outputChannels: 2,
  });
  const n = shape[0] * shape[1] * shape[2];
  const expected = referenceTransform('argmax', blended, 2, n);
  expect(new Set(expected).size).toBe(2);
  expect(Array.from(await readOutput(t.dir, Box.ofShape(shape)))).toEqual(Array.from(expected));

  const level0 = JSON.parse(readFileSync(join(t.dir, 'output.zarr', '0', 'zarr.json'), 'utf8'));
  expect(level0.data_type).toBe('uint8');
  expect(level0.shape).toEqual([1, ...shape]);
  const root = JSON.parse(readFileSync(join(t.dir, 'output.zarr', 'zarr.json'), 'utf8'));
  expect(root.attributes.ome['image-label']).toEqual({
    properties: [
      { 'label-value': 0, name: 'channel 0' },
      { 'label-value': 1, name: 'channel 1' },
    ],
  });
  // Level 1 (halved in z, y, x: isotropic voxels) is level 0 sampled at even coordinates.
  const level1 = await openOutputVolume(
    new LevelStore(new LocalStore(join(t.dir, 'output.zarr')), 1),
  );
  const half = level1.shape;
  const got = (await level1.readBox(Box.ofShape(half))).data;
  const sampled: number[] = [];
  for (let z = 0; z < half[0]; z++)
    for (let y = 0; y < half[1]; y++)
      for (let x = 0; x < half[2]; x++)
        sampled.push(expected[(2 * z * shape[1] + 2 * y) * shape[2] + 2 * x]!);
  expect(half).toEqual([7, 11, 10]);
  expect(Array.from(got)).toEqual(sampled);
  expect(root.attributes.ome.omero.channels.map((c: { label: string }) => c.label)).toEqual([
    'label',
  ]);
}, 120_000);
