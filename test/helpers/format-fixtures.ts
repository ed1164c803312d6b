// The format fixtures of test/fixtures/formats (written by generate.py there with
// zarr-python, h5py and tifffile) and what that script computed of them: shape, dtype,
// SHA-256 of the C-order little-endian values, a few voxels.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { NumericArray } from '../../core/array/dense.ts';

export const FORMATS_DIR = fileURLToPath(new URL('../fixtures/formats/', import.meta.url));

export interface ExpectedArray {
  readonly shape: number[];
  readonly dtype: string;
  readonly sha256: string;
  readonly samples: [number[], number][];
}

export const EXPECTED: Record<string, ExpectedArray> = JSON.parse(
  readFileSync(`${FORMATS_DIR}expected.json`, 'utf8'),
);

export function expected(name: string): ExpectedArray {
  const e = EXPECTED[name];
  if (e === undefined) throw new Error(`no expected values for ${name} in expected.json`);
  return e;
}

/** SHA-256 of a typed array's values as little-endian bytes (this machine's order, checked). */
export function sha256(data: NumericArray): string {
  if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1)
    throw new Error('sha256 here assumes a little-endian machine');
  return createHash('sha256')
    .update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength))
    .digest('hex');
}

/** The C-order index of `at` in an array of `shape`. */
export function flatIndex(shape: readonly number[], at: readonly number[]): number {
  return at.reduce((acc, v, i) => acc * shape[i]! + v, 0);
}
