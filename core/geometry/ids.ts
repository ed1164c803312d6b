// Canonical keys for chunks and output blocks: "z_y_x" grid coordinates, decimal, no
// leading zeros. One formatter, one strict parser: a key round-trips or is rejected.

import { ChunkIdError } from './errors.ts';
import type { Vec3 } from './vec3.ts';

const KEY = /^(0|[1-9]\d{0,8})_(0|[1-9]\d{0,8})_(0|[1-9]\d{0,8})$/;

export const gridKey = (c: Vec3): string => `${c[0]}_${c[1]}_${c[2]}`;

/** Parses a grid key and checks it lies inside `grid` (the grid's shape). */
export function parseGridKey(key: string, grid: Vec3, what = 'chunk'): Vec3 {
  const m = KEY.exec(key);
  if (!m) {
    throw new ChunkIdError(
      `${what} id "${key}" is malformed: expected "z_y_x" with non-negative integers and no leading zeros, e.g. "0_3_12"`,
      key,
    );
  }
  const c: Vec3 = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (c[0] >= grid[0] || c[1] >= grid[1] || c[2] >= grid[2]) {
    throw new ChunkIdError(
      `${what} id "${key}" is outside the ${what} grid ${grid[0]}×${grid[1]}×${grid[2]}; it does not belong to this plan`,
      key,
    );
  }
  return c;
}
