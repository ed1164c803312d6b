// The pyramid built by bounded tasks (issue 16, item 4): each level equals a plain mean of
// the level below written here (byte for byte after float32 rounding), whatever the task
// size; a task reads at most 8 parent blocks per block it writes; a task killed midway and
// run again leaves the same bytes as an undisturbed build; the task list per level is the
// closed form the state machine's Map runs.

import { describe, expect, it } from 'vitest';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { type AbsolutePath, MemoryStore, type Store } from '../../core/store/index.ts';
import { createOutputVolume, openOutputVolume } from '../../core/volume/index.ts';
import {
  buildPyramid,
  buildPyramidTask,
  LevelStore,
  PYRAMID_BLOCKS_PER_TASK,
  PYRAMID_TASKS_PER_LEVEL,
  preparePyramidLevel,
  pyramidTaskStarts,
} from '../../core/volume/pyramid.ts';

const SHAPE: Vec3 = [10, 23, 19];
const BLOCK: Vec3 = [3, 4, 5];
const CHANNELS = 2;
// Multiples of 1/8 below 4096: float32 and float64 hold them and their sums exactly, so a
// mean does not depend on the order its terms were added in.
const value = (c: number, z: number, y: number, x: number): number =>
  1 + c * 1000 + z * 97 + y * 13 + x + ((x * 7 + y * 3 + z) % 8) / 8;

async function levelZero(dtype: 'float32' | 'uint8'): Promise<MemoryStore> {
  const store = new MemoryStore();
  const out = await createOutputVolume(store, {
    shape: SHAPE,
    channels: CHANNELS,
    dtype,
    blockShape: BLOCK,
  });
  for (let bz = 0; bz < out.blockGrid[0]; bz++)
    for (let by = 0; by < out.blockGrid[1]; by++)
      for (let bx = 0; bx < out.blockGrid[2]; bx++) {
        const box = out.blockBox([bz, by, bx]);
        const data =
          dtype === 'uint8'
            ? new Uint8Array(CHANNELS * box.size)
            : new Float32Array(CHANNELS * box.size);
        let i = 0;
        for (let c = 0; c < CHANNELS; c++)
          for (let z = box.start[0]; z < box.stop[0]; z++)
            for (let y = box.start[1]; y < box.stop[1]; y++)
              for (let x = box.start[2]; x < box.stop[2]; x++)
                data[i++] =
                  dtype === 'uint8' ? Math.round(value(c, z, y, x) / 20) : value(c, z, y, x);
        await out.writeBlock([bz, by, bx], { box, channels: CHANNELS, data });
      }
  return store;
}

interface Plain {
  shape: Vec3;
  data: number[];
}

/** The 2×2×2 mean of `p` (windows cut by the edge average what they hold), plainly. */
function plainMean(p: Plain, dtype: 'float32' | 'uint8'): Plain {
  const shape: Vec3 = [
    Math.ceil(p.shape[0] / 2),
    Math.ceil(p.shape[1] / 2),
    Math.ceil(p.shape[2] / 2),
  ];
  const at = (c: number, z: number, y: number, x: number) =>
    p.data[((c * p.shape[0] + z) * p.shape[1] + y) * p.shape[2] + x]!;
  const data: number[] = [];
  for (let c = 0; c < CHANNELS; c++)
    for (let z = 0; z < shape[0]; z++)
      for (let y = 0; y < shape[1]; y++)
        for (let x = 0; x < shape[2]; x++) {
          let sum = 0;
          let n = 0;
          for (let dz = 0; dz < 2 && 2 * z + dz < p.shape[0]; dz++)
            for (let dy = 0; dy < 2 && 2 * y + dy < p.shape[1]; dy++)
              for (let dx = 0; dx < 2 && 2 * x + dx < p.shape[2]; dx++) {
                sum += at(c, 2 * z + dz, 2 * y + dy, 2 * x + dx);
                n++;
              }
          data.push(dtype === 'uint8' ? Math.round(sum / n) : Math.fround(sum / n));
        }
  return { shape, data };
}

function plainLevelZero(dtype: 'float32' | 'uint8'): Plain {
  const data: number[] = [];
  for (let c = 0; c < CHANNELS; c++)
    for (let z = 0; z < SHAPE[0]; z++)
      for (let y = 0; y < SHAPE[1]; y++)
        for (let x = 0; x < SHAPE[2]; x++)
          data.push(dtype === 'uint8' ? Math.round(value(c, z, y, x) / 20) : value(c, z, y, x));
  return { shape: SHAPE, data };
}

/** Every object of the store under `prefix`, key → bytes. */
async function objects(store: MemoryStore, prefix: string): Promise<Map<string, Uint8Array>> {
  const out = new Map<string, Uint8Array>();
  for await (const key of store.list(prefix)) out.set(key, (await store.get(key))!);
  return out;
}

/** Counts reads per top-level folder ("/1/...": level 1) and fails writes once armed. */
class WatchedStore implements Store {
  readonly location = 'watched';
  reads = new Map<string, number>();
  writesLeft = Number.POSITIVE_INFINITY;
  constructor(readonly inner: MemoryStore) {}
  async get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    const folder = key.split('/')[1]!;
    if (key.includes('/c/')) this.reads.set(folder, (this.reads.get(folder) ?? 0) + 1);
    return this.inner.get(key);
  }
  async set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    if (this.writesLeft-- <= 0) throw new Error(`killed before writing ${key}`);
    return this.inner.set(key, value);
  }
}

describe('pyramid tasks', () => {
  for (const dtype of ['float32', 'uint8'] as const)
    it(`levels built in tasks of 3 blocks equal a plain mean of the level below (${dtype})`, async () => {
      const store = await levelZero(dtype);
      const levels = await buildPyramid(store, { levels: 3, blocksPerTask: 3, concurrency: 2 });
      expect(levels.map((l) => l.shape)).toEqual([SHAPE, [5, 12, 10], [3, 6, 5], [2, 3, 3]]);
      let want = plainLevelZero(dtype);
      for (let l = 1; l <= 3; l++) {
        want = plainMean(want, dtype);
        const level = await openOutputVolume(new LevelStore(store, l));
        expect(level.shape, `level ${l}`).toEqual(want.shape);
        const got = await level.readBox(Box.ofShape(level.shape));
        expect(Array.from(got.data), `level ${l}`).toEqual(want.data);
      }
    });

  it('the stored objects are the same bytes whatever the task size', async () => {
    const small = await levelZero('float32');
    await buildPyramid(small, { levels: 3, blocksPerTask: 1 });
    const large = await levelZero('float32');
    await buildPyramid(large, { levels: 3, blocksPerTask: 10_000 });
    for (const l of ['/1/', '/2/', '/3/']) {
      const a = await objects(small, l);
      expect(a.size, l).toBeGreaterThan(1);
      expect(a).toEqual(await objects(large, l));
    }
  });

  it('a task reads at most 8 parent blocks per block it writes, only from the level below', async () => {
    const inner = await levelZero('float32');
    const plan1 = await preparePyramidLevel(inner, 1, { levels: 2, blocksPerTask: 4 });
    // Level 1 is [5, 12, 10] in blocks of [3, 4, 5]: a 2×3×2 grid.
    expect(plan1).toMatchObject({ blocks: 12, blocksPerTask: 4, starts: [0, 4, 8] });
    for (const from of plan1!.starts) {
      const store = new WatchedStore(inner);
      const r = await buildPyramidTask(store, { levels: 2, level: 1, from, blocks: 4 });
      expect(r.written).toBe(4);
      // Level-1 blocks are 6×8×10 level-0 voxels: 3 z-blocks, 2 y and 2 x of [3, 4, 5],
      // fewer where the volume ends (10 × 23 × 19).
      expect(r.parentReads).toBeLessThanOrEqual(8 * 4 * 3);
      expect(store.reads.get('0')).toBe(r.parentReads);
      expect([...store.reads.keys()]).toEqual(['0']);
    }
    const plan2 = await preparePyramidLevel(inner, 2, { levels: 2, blocksPerTask: 1 });
    // Level 2 is [3, 6, 5]: a 1×2×1 grid of [3, 4, 5] blocks.
    expect(plan2).toMatchObject({ blocks: 2, starts: [0, 1] });
    const store = new WatchedStore(inner);
    const r = await buildPyramidTask(store, { levels: 2, level: 2, from: 1, blocks: 1 });
    // Level-2 block [0, 1, 0] (z 0..2, y 4..5, x 0..4) covers level-1 voxels z 0..4,
    // y 8..11, x 0..9: level-1 blocks z 0..1, y 2, x 0..1, four of them.
    expect(r).toEqual({ written: 1, parentReads: 4 });
    expect([...store.reads]).toEqual([['1', 4]]);
  });

  it('a task killed midway and run again leaves the bytes of an undisturbed build', async () => {
    const clean = await levelZero('float32');
    await buildPyramid(clean, { levels: 2, blocksPerTask: 12 });
    const inner = await levelZero('float32');
    const plan = await preparePyramidLevel(inner, 1, { levels: 2, blocksPerTask: 12 });
    const killed = new WatchedStore(inner);
    killed.writesLeft = 5;
    await expect(
      buildPyramidTask(killed, { levels: 2, level: 1, from: 0, blocks: 12 }),
    ).rejects.toThrow(/killed/);
    const partial = await objects(inner, '/1/c/');
    expect(partial.size).toBeGreaterThan(0);
    expect(partial.size).toBeLessThan(12);
    // The rerun: the whole pyramid again (what `tessera run` or a re-driven Map does).
    await buildPyramid(inner, { levels: 2, blocksPerTask: 12 });
    expect(plan!.starts).toEqual([0]);
    for (const l of ['/1/', '/2/'])
      expect(await objects(inner, l)).toEqual(await objects(clean, l));
    // And one task run twice over a finished level rewrites what is there.
    const before = await objects(inner, '/2/');
    await buildPyramidTask(inner, { levels: 2, level: 2, from: 0, blocks: 4 });
    expect(await objects(inner, '/2/')).toEqual(before);
  });

  it('no task for a level the pyramid does not have', async () => {
    const store = await levelZero('float32');
    expect(await preparePyramidLevel(store, 3, { levels: 2 })).toBeUndefined();
    // [10, 23, 19] reaches one voxel in y and x at level 5; a sixth level is not made.
    expect(await preparePyramidLevel(store, 6, { levels: 8 })).toBeUndefined();
    await expect(
      buildPyramidTask(store, { levels: 2, level: 3, from: 0, blocks: 1 }),
    ).rejects.toThrow(/level 3 does not exist/);
  });
});

describe('pyramid task starts (the Map items, closed form)', () => {
  it('blocks per task at least the knob, tasks per level at most the cap', () => {
    expect(PYRAMID_BLOCKS_PER_TASK).toBe(256);
    expect(PYRAMID_TASKS_PER_LEVEL).toBe(500);
    expect(pyramidTaskStarts(1000)).toEqual({ blocksPerTask: 256, starts: [0, 256, 512, 768] });
    expect(pyramidTaskStarts(256)).toEqual({ blocksPerTask: 256, starts: [0] });
    expect(pyramidTaskStarts(0)).toEqual({ blocksPerTask: 256, starts: [] });
    // 10^6 blocks: 2,000 a task, 500 tasks.
    const big = pyramidTaskStarts(1_000_000);
    expect(big.blocksPerTask).toBe(2000);
    expect(big.starts).toHaveLength(500);
    expect(big.starts.at(-1)).toBe(998_000);
    expect(pyramidTaskStarts(10, 3, 2)).toEqual({ blocksPerTask: 5, starts: [0, 5] });
  });
});
