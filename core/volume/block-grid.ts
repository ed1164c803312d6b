// What every output volume (Zarr, sharded Zarr, precomputed) checks of a block coordinate,
// and how it asks a store whether an object is there without downloading it.

import type { Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, Store } from '../store/index.ts';
import { InvalidBlockError } from './errors.ts';

/** Integer coordinates inside `grid` on every axis. */
export const inGrid = (coord: Vec3, grid: Vec3): boolean =>
  coord.length === 3 && coord.every((v, a) => Number.isInteger(v) && v >= 0 && v < grid[a]!);

/** Refuses a block coordinate outside the block grid, naming the output. */
export function checkBlockCoord(location: string, coord: Vec3, blockGrid: Vec3): void {
  if (!inGrid(coord, blockGrid))
    throw new InvalidBlockError(location, coord, `the block grid is [${blockGrid.join(', ')}]`);
}

/** Whether `key` holds an object: one byte is enough to know (a whole block is not fetched). */
export async function storeHas(store: Store, key: AbsolutePath): Promise<boolean> {
  const probe = store.getRange
    ? await store.getRange(key, { offset: 0, length: 1 })
    : await store.get(key);
  return probe !== undefined;
}
