// Dense multi-channel volumes in memory: a box in volume coordinates plus a typed array
// laid out [c][z][y][x] (x fastest). Copies between them work on box intersections and
// move whole x-rows with `set`/`subarray`, never voxel by voxel.

import { Box, type Vec3 } from '../geometry/index.ts';

export type NumericArray =
  | Float32Array
  | Float64Array
  | Uint8Array
  | Uint16Array
  | Int16Array
  | Uint32Array
  | Int32Array
  | Int8Array;

export interface Dense<T extends NumericArray = Float32Array> {
  readonly box: Box;
  readonly channels: number;
  readonly data: T;
}

export function dense(box: Box, channels: number): Dense<Float32Array> {
  return { box, channels, data: new Float32Array(channels * box.size) };
}

/** Index of voxel `p` (volume coordinates) of channel c in `d`. */
export function indexOf(d: { box: Box }, p: Vec3, c = 0): number {
  return offsetOf(d.box, c, p[0], p[1], p[2]);
}

/** Like indexOf with scalar arguments: hot loops call this once per row, allocating nothing. */
export function offsetOf(box: Box, c: number, z: number, y: number, x: number): number {
  const st = box.start;
  const sp = box.stop;
  const sy = sp[1] - st[1];
  const sx = sp[2] - st[2];
  return ((c * (sp[0] - st[0]) + (z - st[0])) * sy + (y - st[1])) * sx + (x - st[2]);
}

/**
 * Copies the voxels of `box` (clipped to both boxes) from src to dst for every channel.
 * Returns the box actually copied. Typed-array `set` converts element types, so a
 * Uint8Array source fills a Float32Array destination directly.
 */
export function copyBox(
  src: Dense<NumericArray>,
  dst: Dense<NumericArray>,
  box: Box = src.box,
): Box {
  const b = box.intersect(src.box).intersect(dst.box);
  if (b.isEmpty()) return b;
  const channels = Math.min(src.channels, dst.channels);
  const w = b.shape[2];
  for (let c = 0; c < channels; c++)
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++) {
        const si = offsetOf(src.box, c, z, y, b.start[2]);
        const di = offsetOf(dst.box, c, z, y, b.start[2]);
        dst.data.set(src.data.subarray(si, si + w), di);
      }
  return b;
}

/** Fills every voxel of `box` (clipped to d.box) with `value`, all channels. */
export function fillBox(d: Dense<NumericArray>, box: Box, value: number): void {
  const b = box.intersect(d.box);
  if (b.isEmpty()) return;
  const w = b.shape[2];
  for (let c = 0; c < d.channels; c++)
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++) {
        const i = offsetOf(d.box, c, z, y, b.start[2]);
        d.data.fill(value, i, i + w);
      }
}

/** A copy of `box` (which must lie inside src.box) as its own dense volume. */
export function crop(src: Dense<Float32Array>, box: Box): Dense<Float32Array> {
  const out = dense(box, src.channels);
  copyBox(src, out, box);
  return out;
}

export { Box };
