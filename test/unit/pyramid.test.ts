// The output pyramid: level shapes and factors (z kept on anisotropic data), each level
// the mean of the one below (checked voxel by voxel against a brute-force mean, edge
// windows included), built block by block into a real Zarr group, and the OME-Zarr
// multiscales listing every level.

import { describe, expect, it } from 'vitest';
import * as zarr from 'zarrita';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { MemoryStore } from '../../core/store/index.ts';
import { createOutputVolume, openOutputVolume, writeOmeMetadata } from '../../core/volume/index.ts';
import { buildPyramid, LevelStore, pyramidLevels } from '../../core/volume/pyramid.ts';

describe('pyramid levels', () => {
  it('halves every axis of isotropic data, rounding shapes up', () => {
    expect(pyramidLevels([96, 250, 257], 3)).toEqual([
      { path: '0', shape: [96, 250, 257], factor: [1, 1, 1] },
      { path: '1', shape: [48, 125, 129], factor: [2, 2, 2] },
      { path: '2', shape: [24, 63, 65], factor: [4, 4, 4] },
      { path: '3', shape: [12, 32, 33], factor: [8, 8, 8] },
    ]);
  });

  it('keeps z on anisotropic data until y and x catch up', () => {
    const levels = pyramidLevels([100, 1000, 1000], 5, [40, 4, 4]);
    expect(levels.map((l) => l.factor)).toEqual([
      [1, 1, 1],
      [1, 2, 2], // 40 × 8 nm
      [1, 4, 4], // 40 × 16
      [1, 8, 8], // 40 × 32
      [2, 16, 16], // 80 × 64: nearer isotropic than 40 × 64
      [4, 32, 32],
    ]);
    expect(levels[4]!.shape).toEqual([50, 63, 63]);
  });

  it('stops once y and x are one voxel', () => {
    expect(pyramidLevels([4, 3, 3], 6).map((l) => l.shape)).toEqual([
      [4, 3, 3],
      [2, 2, 2],
      [1, 1, 1],
    ]);
  });
});

const SHAPE: Vec3 = [5, 7, 9];
const value = (c: number, z: number, y: number, x: number): number =>
  c * 1000 + z * 100 + y * 10 + x + ((x * 7 + y * 3) % 5) / 8;

/** The mean of level-0 voxels [z0, z0+f) × ... clipped to the volume, brute force. */
function bruteMean(c: number, start: Vec3, f: Vec3, round: boolean): number {
  let sum = 0;
  let n = 0;
  for (let z = start[0]; z < Math.min(start[0] + f[0], SHAPE[0]); z++)
    for (let y = start[1]; y < Math.min(start[1] + f[1], SHAPE[1]); y++)
      for (let x = start[2]; x < Math.min(start[2] + f[2], SHAPE[2]); x++) {
        sum += round ? Math.round(value(c, z, y, x) / 40) : value(c, z, y, x);
        n++;
      }
  return sum / n;
}

async function outputWith(dtype: 'float32' | 'uint8'): Promise<MemoryStore> {
  const store = new MemoryStore();
  const out = await createOutputVolume(store, {
    shape: SHAPE,
    channels: 2,
    dtype,
    blockShape: [2, 3, 4],
  });
  for (let bz = 0; bz < out.blockGrid[0]; bz++)
    for (let by = 0; by < out.blockGrid[1]; by++)
      for (let bx = 0; bx < out.blockGrid[2]; bx++) {
        const box = out.blockBox([bz, by, bx]);
        const data =
          dtype === 'uint8' ? new Uint8Array(2 * box.size) : new Float32Array(2 * box.size);
        let i = 0;
        for (let c = 0; c < 2; c++)
          for (let z = box.start[0]; z < box.stop[0]; z++)
            for (let y = box.start[1]; y < box.stop[1]; y++)
              for (let x = box.start[2]; x < box.stop[2]; x++)
                data[i++] =
                  dtype === 'uint8' ? Math.round(value(c, z, y, x) / 40) : value(c, z, y, x);
        await out.writeBlock([bz, by, bx], { box, channels: 2, data });
      }
  return store;
}

describe('buildPyramid', () => {
  it('level 1 is the 2×2×2 mean of level 0, edge windows averaging what exists', async () => {
    const store = await outputWith('float32');
    const levels = await buildPyramid(store, { levels: 1 });
    expect(levels.map((l) => l.shape)).toEqual([SHAPE, [3, 4, 5]]);
    const l1 = await openOutputVolume(new LevelStore(store, 1));
    expect(l1.shape).toEqual([3, 4, 5]);
    expect(l1.blockShape).toEqual([2, 3, 4]);
    const d = await l1.readBox(Box.ofShape(l1.shape));
    let i = 0;
    let worst = 0;
    for (let c = 0; c < 2; c++)
      for (let z = 0; z < 3; z++)
        for (let y = 0; y < 4; y++)
          for (let x = 0; x < 5; x++)
            worst = Math.max(
              worst,
              Math.abs(d.data[i++]! - bruteMean(c, [2 * z, 2 * y, 2 * x], [2, 2, 2], false)),
            );
    expect(worst).toBeLessThan(1e-3); // float32 storage of values up to ~1500
  });

  it('level 2 is the mean of level 1 (not of level 0: edge windows differ), uint8 rounded', async () => {
    const store = await outputWith('uint8');
    await buildPyramid(store, { levels: 2 });
    const l1 = await (await openOutputVolume(new LevelStore(store, 1))).readBox(
      Box.ofShape([3, 4, 5]),
    );
    const l2 = await openOutputVolume(new LevelStore(store, 2));
    expect(l2.shape).toEqual([2, 2, 3]);
    const d = await l2.readBox(Box.ofShape(l2.shape));
    const at = (c: number, z: number, y: number, x: number) =>
      l1.data[((c * 3 + z) * 4 + y) * 5 + x]!;
    let i = 0;
    for (let c = 0; c < 2; c++)
      for (let z = 0; z < 2; z++)
        for (let y = 0; y < 2; y++)
          for (let x = 0; x < 3; x++) {
            let sum = 0;
            let n = 0;
            for (let dz = 0; dz < 2 && 2 * z + dz < 3; dz++)
              for (let dy = 0; dy < 2 && 2 * y + dy < 4; dy++)
                for (let dx = 0; dx < 2 && 2 * x + dx < 5; dx++) {
                  sum += at(c, 2 * z + dz, 2 * y + dy, 2 * x + dx);
                  n++;
                }
            expect(d.data[i++], `voxel ${c},${z},${y},${x}`).toBe(Math.round(sum / n));
          }
    // Level 1 of uint8 is rounded too.
    expect(l1.data[0]).toBe(Math.round(bruteMean(0, [0, 0, 0], [2, 2, 2], true)));
  });

  it('rebuilding writes identical bytes (finalize is safe to re-run)', async () => {
    const store = await outputWith('float32');
    await buildPyramid(store, { levels: 2 });
    const first = await store.get('/1/c/0/0/0/0');
    await buildPyramid(store, { levels: 2 });
    expect(await store.get('/1/c/0/0/0/0')).toEqual(first);
    expect(first).toBeDefined();
  });

  it('OME-Zarr multiscales list every level with its scale and centred translation', async () => {
    const store = await outputWith('float32');
    const levels = await buildPyramid(store, { levels: 2, voxelSize: [40, 4, 4] });
    await writeOmeMetadata(store, {
      name: 'probabilities',
      channels: 2,
      voxelSize: [40, 4, 4],
      unit: 'nanometer',
      translation: [400, 0, 8],
      datasets: levels.map((l) => ({ path: l.path, factor: l.factor })),
    });
    const group = await zarr.open(store, { kind: 'group' });
    const ome = group.attrs.ome as { multiscales: { datasets: unknown[] }[] };
    expect(ome.multiscales[0]!.datasets).toEqual([
      {
        path: '0',
        coordinateTransformations: [
          { type: 'scale', scale: [1, 40, 4, 4] },
          { type: 'translation', translation: [0, 400, 0, 8] },
        ],
      },
      {
        path: '1',
        coordinateTransformations: [
          { type: 'scale', scale: [1, 40, 8, 8] },
          { type: 'translation', translation: [0, 400, 2, 10] },
        ],
      },
      {
        path: '2',
        coordinateTransformations: [
          { type: 'scale', scale: [1, 40, 16, 16] },
          { type: 'translation', translation: [0, 400, 6, 14] },
        ],
      },
    ]);
    // Every level opens as a plain Zarr array of the stated shape.
    for (const l of levels) {
      const arr = await zarr.open(zarr.root(store).resolve(l.path), { kind: 'array' });
      expect(arr.shape).toEqual([2, ...l.shape]);
    }
  });
});
