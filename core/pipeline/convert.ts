// How a blended float becomes the stored output value, and the block it is stored in.

import { type Dense, fillBox } from '../array/dense.ts';
import type { Box } from '../geometry/index.ts';

export type OutputDtype = 'float32' | 'uint8';

const toUint8 = (v: number): number => Math.round(Math.min(1, Math.max(0, v)) * 255);

/**
 * The conversion for a stored dtype; undefined when values are stored as they are
 * (float32), so the normalising loop makes no call per voxel.
 */
export function outputConverter(dtype: OutputDtype): ((v: number) => number) | undefined {
  return dtype === 'uint8' ? toUint8 : undefined;
}

/**
 * A zeroed block of the output's dtype. `reuse`, when it is of that dtype and large
 * enough, provides the memory (a view of its start): the caller must be done with the
 * block it held before.
 */
export function outputBlock(
  dtype: OutputDtype,
  box: Box,
  channels: number,
  reuse?: Float32Array | Uint8Array,
): Dense<Float32Array | Uint8Array> {
  const n = channels * box.size;
  const fits =
    reuse !== undefined &&
    reuse.length >= n &&
    reuse.byteOffset === 0 &&
    (dtype === 'uint8' ? reuse instanceof Uint8Array : reuse instanceof Float32Array);
  const data = fits
    ? reuse.subarray(0, n)
    : dtype === 'uint8'
      ? new Uint8Array(n)
      : new Float32Array(n);
  const block = { box, channels, data };
  // Voxels outside the region keep the fill value (0).
  fillBox(block, box, 0);
  return block;
}
