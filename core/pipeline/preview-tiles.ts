// Preview tiles: the output slices preview.png shows, kept by whoever writes each block
// while the values are still in memory. Without them, finalize decodes every storage
// block under the three preview slices to use one plane of each (a 16-deep block: 1/16
// of what it decodes), which on a CPU run is most of finalize's time. A tile is one
// plane of one block, all channels, raw little-endian values; tiles live next to the
// seam partials in the job's work store and go with them. Tiles are written by local
// runs; a preview finds a tile missing (cloud jobs, older runs) and decodes instead.

import type { Dense } from '../array/dense.ts';
import type { Box, Vec3 } from '../geometry/index.ts';
import type { Store } from '../store/index.ts';

export const PREVIEW_DEPTHS = 3;

/** The level-0 z of each preview row: ¼, ½, ¾ of the region (fewer on thin regions). */
export function previewDepths(region: Box, count = PREVIEW_DEPTHS): number[] {
  const n = Math.max(1, Math.min(count, region.shape[0]));
  return Array.from(
    { length: n },
    (_, k) => region.start[0] + Math.floor(((k + 1) * region.shape[0]) / (n + 1)),
  );
}

export const TILE_PREFIX = '/partials/_preview';

export const tileKey = (z: number, coord: Vec3): `/${string}` =>
  `${TILE_PREFIX}/${z}/${coord.join('_')}.bin`;

/** Stores the planes of `block` (block `coord` of the output) that lie at preview depths. */
export async function writePreviewTiles(
  work: Store,
  region: Box,
  coord: Vec3,
  block: Dense<Float32Array | Uint8Array>,
): Promise<void> {
  const { box, channels, data } = block;
  const plane = box.shape[1] * box.shape[2];
  const n = box.size;
  for (const z of previewDepths(region)) {
    if (z < box.start[0] || z >= box.stop[0]) continue;
    const at = (z - box.start[0]) * plane;
    const tile =
      data instanceof Uint8Array
        ? new Uint8Array(channels * plane)
        : new Float32Array(channels * plane);
    for (let c = 0; c < channels; c++)
      tile.set(data.subarray(c * n + at, c * n + at + plane), c * plane);
    await work.set(tileKey(z, coord), new Uint8Array(tile.buffer));
  }
}

/** The tile of block `coord` at depth `z` ([C][y][x] over `box`'s y, x), or undefined. */
export async function readPreviewTile(
  work: Store,
  z: number,
  coord: Vec3,
  box: Box,
  channels: number,
  dtype: 'float32' | 'uint8',
): Promise<Float32Array | Uint8Array | undefined> {
  const bytes = await work.get(tileKey(z, coord));
  const values = channels * box.shape[1] * box.shape[2];
  if (!bytes || bytes.byteLength !== values * (dtype === 'uint8' ? 1 : 4)) return undefined;
  if (dtype === 'uint8') return bytes;
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  return new Float32Array(aligned.buffer, aligned.byteOffset, values);
}
