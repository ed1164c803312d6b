// What every output volume (Zarr, sharded Zarr, precomputed) checks of a block coordinate,
// and how it asks a store whether an object is there without downloading it.

import type { Dense } from '../array/dense.ts';
import type { Box, Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, Store } from '../store/index.ts';
import { InvalidBlockError } from './errors.ts';
import type { OutputData, OutputDtype } from './output-layout.ts';

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

/**
 * Refuses data that is not block `coord` whole: its box, all `channels`, one value per
 * voxel, in the output's dtype (float32 output: a Float32Array; uint8: already converted).
 */
export function checkBlockData(
  location: string,
  coord: Vec3,
  box: Box,
  data: Dense<OutputData>,
  output: { channels: number; dtype: OutputDtype },
): void {
  const fail = (detail: string) => new InvalidBlockError(location, coord, detail);
  if (!data.box.equals(box)) throw fail(`its box is ${data.box}, the block is ${box}`);
  if (data.channels !== output.channels)
    throw fail(`it has ${data.channels} channels, the output has ${output.channels}`);
  if (data.data.length !== output.channels * box.size)
    throw fail(`it holds ${data.data.length} values, ${output.channels} × ${box.size} expected`);
  if ((output.dtype === 'float32') !== data.data instanceof Float32Array)
    throw fail(
      `its values are a ${data.data.constructor.name}, the output is ${output.dtype}; convert before writing`,
    );
}
