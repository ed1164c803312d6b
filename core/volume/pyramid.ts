// A downsampled pyramid of the output, for viewers: level l is stored at array path
// "l" of the output group (OME-Zarr datasets "0", "1", ...), each level the mean of
// its parent's 2×2 (y, x) or 2×2×2 (z, y, x) windows.
//
//   level l-1  ┌──┬──┬──┬──┐      every block of level l sums the parent blocks
//              │  │  │  │  │      under it (≤ 8), one at a time: memory is one parent
//              ├──┼──┼──┼──┤  ─►  block plus one block of sums per lane whatever the
//   level l    │     │     │      volume size, and each parent block is read once
//              └─────┴─────┘      (levels keep the block shape: 1/8 the objects)
//
// z is halved only when that keeps voxels closer to isotropic: an EM stack of
// 40×4×4 nm gets y and x halved until they reach z's size, then all three.
// The mean is right for probabilities and other intensities; it would be wrong for
// label images (which need the mode), and Tessera writes none.

import { type Dense, offsetOf } from '../array/dense.ts';
import { Box, fromFn, type Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, RangeQuery, Store } from '../store/index.ts';
import { sliceRange } from '../store/keys.ts';
import {
  createOutputVolume,
  OUTPUT_ARRAY_PATH,
  type OutputVolume,
  openOutputVolume,
} from './output.ts';
import type { OutputData } from './output-layout.ts';

export interface PyramidLevel {
  /** Array path in the output group: "0" is full resolution. */
  readonly path: string;
  /** Spatial shape (z, y, x). */
  readonly shape: Vec3;
  /** Downsampling relative to level 0, per axis (z, y, x). */
  readonly factor: Vec3;
}

/**
 * Level 0 and up to `levels` downsampled levels of a volume of `shape`. Stops early
 * once y and x are both down to one voxel: further levels would repeat the last.
 */
export function pyramidLevels(
  shape: Vec3,
  levels: number,
  voxelSize: Vec3 = [1, 1, 1],
): PyramidLevel[] {
  const out: PyramidLevel[] = [{ path: '0', shape, factor: [1, 1, 1] }];
  let cur = out[0]!;
  for (let l = 1; l <= levels; l++) {
    if (cur.shape[1] === 1 && cur.shape[2] === 1) break;
    const step = levelStep(cur.factor, voxelSize, cur.shape);
    const factor = fromFn((a) => cur.factor[a] * step[a]);
    const next: PyramidLevel = {
      path: String(l),
      shape: fromFn((a) => Math.ceil(cur.shape[a] / step[a])),
      factor,
    };
    out.push(next);
    cur = next;
  }
  return out;
}

/** Downsampling from a level with `factor` to the next: 2 in y and x, 2 in z when it helps. */
function levelStep(factor: Vec3, voxel: Vec3, shape: Vec3): Vec3 {
  const z = voxel[0] * factor[0];
  const y = voxel[1] * factor[1] * 2;
  // Compare |log(z'/y')| with z kept vs z halved: pick whichever is nearer isotropic.
  const keep = Math.abs(Math.log(z / y));
  const halve = Math.abs(Math.log((2 * z) / y));
  return [halve < keep && shape[0] > 1 ? 2 : 1, 2, 2];
}

/**
 * The output group seen with level `level`'s array where OutputVolume looks for its
 * array ("0"), so the level is created, written and read by the same code (and with
 * the same layout checks) as level 0. Keys outside the array pass through unchanged.
 */
export class LevelStore implements Store {
  readonly location: string;
  private readonly from = `/${OUTPUT_ARRAY_PATH}/`;
  private readonly to: string;

  constructor(
    private readonly inner: Store,
    level: number,
  ) {
    this.to = `/${level}/`;
    this.location = `${(inner.location ?? 'the store').replace(/\/+$/, '')} (level ${level})`;
  }

  private map(key: AbsolutePath): AbsolutePath {
    return key.startsWith(this.from)
      ? (`${this.to}${key.slice(this.from.length)}` as AbsolutePath)
      : key;
  }

  get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    return this.inner.get(this.map(key));
  }

  async getRange(key: AbsolutePath, range: RangeQuery): Promise<Uint8Array | undefined> {
    const k = this.map(key);
    if (this.inner.getRange) return this.inner.getRange(k, range);
    const bytes = await this.inner.get(k);
    return bytes === undefined ? undefined : sliceRange(bytes, range);
  }

  set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    return this.inner.set(this.map(key), value);
  }
}

// Built in tasks, level by level: a task computes a range of level l's blocks (in the
// block grid's z-major order) from level l-1, which must be final. Tasks of one level are
// independent (each block is written once, by one task), so a level fans out; the next
// level waits for the whole level below, as each of its blocks may sit under any task's.
// A task is bounded: at most `blocksPerTask` blocks written, ≤ 8 parent blocks read per
// block, memory one parent block plus one block of sums per lane. Re-running a task
// rewrites the same bytes, so a task killed midway is simply run again.

/** Level blocks per pyramid task, at least (a task reads ≤ 8× as many parent blocks). */
export const PYRAMID_BLOCKS_PER_TASK = 256;
/**
 * Tasks per level, at most: a larger level gets more blocks per task. 500 tasks of 256
 * blocks of 64³ float32 is 2·10^10 voxels per level; beyond, tasks grow (the Lambda's
 * 15 minutes hold ~10^4 blocks: 8·10^4 parent reads).
 */
export const PYRAMID_TASKS_PER_LEVEL = 500;

export interface PyramidOptions {
  /** Downsampled levels asked for (output.pyramid); level 0 is the output itself. */
  levels: number;
  /** Level-0 voxel size (z, y, x); decides whether z is halved. Default isotropic. */
  voxelSize?: Vec3;
  /**
   * "mean" (default) for intensities; "nearest" for labels and masks: each voxel is the
   * parent voxel at the start of its window, so a level holds only values level 0 has.
   * (Nearest, not the mode: a window may straddle parent blocks, which are read one at a
   * time, and the first voxel of a window is known from any one of them.)
   */
  sampling?: 'mean' | 'nearest';
}

/** One level's tasks: blocks from `starts[i]` to `starts[i] + blocksPerTask` (clamped). */
export interface PyramidLevelPlan {
  level: PyramidLevel;
  /** Blocks of the level (its block grid's volume). */
  blocks: number;
  blocksPerTask: number;
  starts: number[];
}

/** Tasks covering `blocks` blocks: ≥ `perTask` blocks each, ≤ `maxTasks` tasks. */
export function pyramidTaskStarts(
  blocks: number,
  perTask = PYRAMID_BLOCKS_PER_TASK,
  maxTasks = PYRAMID_TASKS_PER_LEVEL,
): { blocksPerTask: number; starts: number[] } {
  const blocksPerTask = Math.max(perTask, Math.ceil(blocks / maxTasks), 1);
  const starts: number[] = [];
  for (let s = 0; s < blocks; s += blocksPerTask) starts.push(s);
  return { blocksPerTask, starts };
}

/**
 * Creates level `index`'s array (or checks the one there; same metadata bytes) and
 * returns its tasks; undefined when the pyramid has no such level (it stopped early or
 * fewer were asked for). Level `index` - 1 need not be final yet: only metadata is read.
 */
export async function preparePyramidLevel(
  store: Store,
  index: number,
  o: PyramidOptions & { blocksPerTask?: number; maxTasks?: number },
): Promise<PyramidLevelPlan | undefined> {
  const base = await openOutputVolume(store);
  const levels = pyramidLevels(base.shape, o.levels, o.voxelSize);
  const level = levels[index];
  if (index < 1 || level === undefined) return undefined;
  const dst = await createLevel(store, base, level, index);
  const blocks = dst.blockGrid[0] * dst.blockGrid[1] * dst.blockGrid[2];
  return { level, blocks, ...pyramidTaskStarts(blocks, o.blocksPerTask, o.maxTasks) };
}

const createLevel = (
  store: Store,
  base: OutputVolume,
  level: PyramidLevel,
  index: number,
): Promise<OutputVolume> =>
  createOutputVolume(new LevelStore(store, index), {
    shape: level.shape,
    channels: base.channels,
    dtype: base.dtype,
    blockShape: fromFn((a) => Math.min(base.blockShape[a], level.shape[a])),
    fillValue: base.fillValue,
  });

export interface PyramidTask extends PyramidOptions {
  /** The level built (≥ 1); level - 1 must be final. */
  level: number;
  /** First block (z-major index in the level's block grid) and how many. */
  from: number;
  blocks: number;
  /** Blocks written at once. */
  concurrency?: number;
}

export interface PyramidTaskResult {
  /** Blocks written. */
  written: number;
  /** Parent-level block reads (each a part of one parent block). */
  parentReads: number;
}

/** Writes blocks from..from+blocks-1 (clamped to the level) of level `t.level`. */
export async function buildPyramidTask(store: Store, t: PyramidTask): Promise<PyramidTaskResult> {
  const base = await openOutputVolume(store);
  const levels = pyramidLevels(base.shape, t.levels, t.voxelSize);
  const level = levels[t.level];
  const prev = levels[t.level - 1];
  if (t.level < 1 || level === undefined || prev === undefined)
    throw new RangeError(
      `pyramid level ${t.level} does not exist: the output's pyramid has levels 1..${levels.length - 1}`,
    );
  const parent = t.level === 1 ? base : await openOutputVolume(new LevelStore(store, t.level - 1));
  const dst = await openOutputVolume(new LevelStore(store, t.level));
  const step = fromFn((a) => level.factor[a] / prev.factor[a]);
  const [, gy, gx] = dst.blockGrid;
  const total = dst.blockGrid[0] * gy * gx;
  const stop = Math.min(total, t.from + t.blocks);
  let next = Math.max(0, t.from);
  let written = 0;
  let parentReads = 0;
  const lane = async (): Promise<void> => {
    while (next < stop) {
      const i = next++;
      const coord: Vec3 = [Math.floor(i / (gy * gx)), Math.floor(i / gx) % gy, i % gx];
      const box = dst.blockBox(coord);
      const under = new Box(
        fromFn((a) => box.start[a] * step[a]),
        fromFn((a) => Math.min(box.stop[a] * step[a], parent.shape[a])),
      );
      // One parent block at a time: memory is one parent block plus this block's sums.
      const mean =
        t.sampling === 'nearest'
          ? new NearestSampler(box, base.channels, step)
          : new MeanAccumulator(box, base.channels, step, parent.shape);
      const first = fromFn((a) => Math.floor(under.start[a] / parent.blockShape[a]));
      const last = fromFn((a) => Math.ceil(under.stop[a] / parent.blockShape[a]));
      for (const pc of gridCoords(new Box(first, last))) {
        mean.add(await parent.readBox(parent.blockBox(pc).intersect(under)));
        parentReads++;
      }
      await dst.writeBlock(coord, mean.result(base.dtype));
      written++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, t.concurrency ?? 4) }, lane));
  return { written, parentReads };
}

export interface BuildPyramidOptions extends PyramidOptions {
  /** Blocks written at once per task. */
  concurrency?: number;
  /** Level blocks per task (default PYRAMID_BLOCKS_PER_TASK). */
  blocksPerTask?: number;
  onLevel?: (level: PyramidLevel, seconds: number) => void;
}

/**
 * Builds (or rebuilds, byte-identically) levels 1..L of the output in `store`: each
 * level's tasks one after another, as the cloud's Pyramid step fans them out.
 */
export async function buildPyramid(store: Store, o: BuildPyramidOptions): Promise<PyramidLevel[]> {
  const base = await openOutputVolume(store);
  const levels = pyramidLevels(base.shape, o.levels, o.voxelSize);
  const opts = {
    levels: o.levels,
    ...(o.voxelSize ? { voxelSize: o.voxelSize } : {}),
    ...(o.sampling ? { sampling: o.sampling } : {}),
  };
  for (let l = 1; l < levels.length; l++) {
    const t0 = performance.now();
    const plan = await preparePyramidLevel(store, l, {
      ...opts,
      ...(o.blocksPerTask ? { blocksPerTask: o.blocksPerTask } : {}),
    });
    if (!plan) break;
    for (const from of plan.starts)
      await buildPyramidTask(store, {
        ...opts,
        level: l,
        from,
        blocks: plan.blocksPerTask,
        ...(o.concurrency ? { concurrency: o.concurrency } : {}),
      });
    o.onLevel?.(plan.level, (performance.now() - t0) / 1000);
  }
  return levels;
}

function* gridCoords(range: Box): Generator<Vec3> {
  const [s, e] = [range.start, range.stop];
  for (let z = s[0]; z < e[0]; z++)
    for (let y = s[1]; y < e[1]; y++) for (let x = s[2]; x < e[2]; x++) yield [z, y, x];
}

/**
 * The mean of each `step` window (step 1 or 2 per axis) of the parent level over the
 * voxels of `box` (this level's coordinates), fed piece by piece. Windows cut by the
 * volume's edge average the voxels they have, so an edge voxel is not darkened by
 * voxels that do not exist.
 */
export class MeanAccumulator {
  private readonly sum: Float64Array;
  private readonly shift: Vec3;

  constructor(
    private readonly box: Box,
    private readonly channels: number,
    private readonly step: Vec3,
    /** Shape of the parent level: where its windows are cut. */
    private readonly parentShape: Vec3,
  ) {
    if (!step.every((s) => s === 1 || s === 2))
      throw new RangeError(`pyramid steps are 1 or 2 per axis, got [${step.join(', ')}]`);
    this.sum = new Float64Array(channels * box.size);
    this.shift = fromFn((a) => (step[a] === 2 ? 1 : 0));
  }

  /** Adds parent voxels; `piece` must lie under `box`. */
  add(piece: Dense<OutputData>): void {
    const [sz, sy, sx] = this.shift;
    const bx = this.box.start[2];
    const p = piece.box;
    const x0 = p.start[2];
    const w = p.shape[2];
    for (let c = 0; c < this.channels; c++)
      for (let z = p.start[0]; z < p.stop[0]; z++)
        for (let y = p.start[1]; y < p.stop[1]; y++) {
          const from = offsetOf(p, c, z, y, x0);
          // A parent coordinate shifted right by the step's log2 is this level's.
          const to = offsetOf(this.box, c, z >> sz, y >> sy, bx) - bx;
          for (let i = 0; i < w; i++) this.sum[to + ((x0 + i) >> sx)]! += piece.data[from + i]!;
        }
  }

  result(dtype: 'float32' | 'uint8'): Dense<OutputData> {
    const { box, channels, step, parentShape } = this;
    const data =
      dtype === 'uint8' ? new Uint8Array(this.sum.length) : new Float32Array(this.sum.length);
    // Parent voxels under level voxel g along one axis: `step`, fewer at the far edge.
    const n = (a: 0 | 1 | 2, g: number): number => Math.min(step[a], parentShape[a] - g * step[a]);
    const [nz, ny, nx] = box.shape;
    let i = 0;
    for (let c = 0; c < channels; c++)
      for (let z = 0; z < nz; z++) {
        const cz = n(0, box.start[0] + z);
        for (let y = 0; y < ny; y++) {
          const czy = cz * n(1, box.start[1] + y);
          for (let x = 0; x < nx; x++, i++) {
            const mean = this.sum[i]! / (czy * n(2, box.start[2] + x));
            data[i] = dtype === 'uint8' ? Math.round(mean) : mean;
          }
        }
      }
    return { box, channels, data };
  }
}

/**
 * Each voxel of `box` (this level's coordinates) is the parent voxel at the start of its
 * `step` window, g · step per axis, which always exists; fed piece by piece like
 * MeanAccumulator, so a pyramid task reads the same parent blocks either way.
 */
export class NearestSampler {
  private readonly values: Float64Array;

  constructor(
    private readonly box: Box,
    private readonly channels: number,
    private readonly step: Vec3,
  ) {
    this.values = new Float64Array(channels * box.size);
  }

  /** Takes the window-start voxels of `piece`; `piece` must lie under `box`. */
  add(piece: Dense<OutputData>): void {
    const p = piece.box;
    const [tz, ty, tx] = this.step;
    for (let c = 0; c < this.channels; c++)
      for (let z = p.start[0]; z < p.stop[0]; z++) {
        if (z % tz !== 0) continue;
        for (let y = p.start[1]; y < p.stop[1]; y++) {
          if (y % ty !== 0) continue;
          for (let x = p.start[2]; x < p.stop[2]; x++)
            if (x % tx === 0)
              this.values[offsetOf(this.box, c, z / tz, y / ty, x / tx)] =
                piece.data[offsetOf(p, c, z, y, x)]!;
        }
      }
  }

  result(dtype: 'float32' | 'uint8'): Dense<OutputData> {
    const { box, channels } = this;
    const data = dtype === 'uint8' ? Uint8Array.from(this.values) : Float32Array.from(this.values);
    return { box, channels, data };
  }
}
