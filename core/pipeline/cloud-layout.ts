// How an output layout writes a cloud job: objects and PUTs per chunk, seam partials and
// their bytes, and the blend Map's items. One function per layout; `tessera plan --cloud`
// reports which one it used. Closed form: per-axis sums, never a list of chunks or blocks.
//
// Unsharded (`unshardedLayout`, precomputed outputs): one object per output block. A block inside one
// chunk's footprint is written final by that chunk; a seam block gets one partial per
// contributing chunk (Σw·f over block ∩ footprint, float32 per channel, uncompressed) and
// is blended by the Blend Map, one item per BLOCKS_PER_BLEND_ITEM seam blocks:
//
//   footprint j     |=========|           partial of (q, j) = block q ∩ footprint j
//   footprint j+1          |=========|
//   blocks        | q-1 |  q  | q+1 |      q is a seam block: 2 partials, 1 blend PUT

import { PARTIAL_HEADER_BYTES } from '../blend/partial-codec.ts';
import type { AxisPlan, Plan, Vec3 } from '../geometry/index.ts';
import { defaultShardShape } from '../volume/output-layout.ts';
import { BLEND_LANES } from './blend-seams.ts';

export interface LayoutInput {
  plan: Plan;
  channels: number;
  /** Bytes of one output value (output.dtype). */
  outputBytesPerValue: number;
  /** Seam blocks per blend item (the stack's BLOCKS_PER_BLEND_ITEM). */
  blocksPerBlendItem: number;
}

export interface LayoutFigures {
  /** Which layout, in words. */
  layout: string;
  /** Objects one chunk's worker writes, mean over chunks. */
  objectsPerChunk: number;
  /** PUTs one chunk's worker makes, mean over chunks. */
  putsPerChunk: number;
  /** PUTs after the workers (the blend's final objects). */
  blendPuts: number;
  /** Partial GETs of the blend. */
  blendGets: number;
  partialObjects: number;
  partialBytes: number;
  /** Level-0 output, uncompressed (an upper bound of what is stored). */
  outputBytes: number;
  /** Blend Map items; 0 when nothing is blended after the workers. */
  blendItems: number;
  /** Bytes one blend item reads and writes, mean over items. */
  blendItemBytes: number;
  /** Memory one blend Lambda needs for the units it blends at once. */
  blendMemoryBytes: number;
  /** One item of the planner's blend-items JSON, at its widest. */
  blendItemJsonBytes: number;
}

export type CloudLayout = (o: LayoutInput) => LayoutFigures;

/**
 * The layout the cloud workers write for a job: sharded (output.shardShape, or the chunk
 * pitch's shard, as every cloud step opens a Zarr output: core/cloud/manifest-intake.ts),
 * or one object per block for a precomputed output.
 */
export function cloudLayoutFor(
  output: { shardShape?: readonly number[] | undefined; format?: string | undefined },
  plan: Plan,
): CloudLayout {
  if (output.format === 'precomputed') return unshardedLayout;
  const shard =
    (output.shardShape as Vec3 | undefined) ??
    defaultShardShape({
      stride: plan.stride,
      patchesPerChunk: plan.patchesPerChunk,
      blockShape: plan.blockShape,
      volumeShape: plan.volumeShape,
    });
  return shardedLayout(shard);
}

/**
 * Sharded output with last-contributor assembly (core/pipeline/shard-handoff.ts): per
 * shard, each contributor but the last stores one piece (its final blocks of the shard and
 * its band partials), the last assembles it: one shard PUT. So the job's PUTs are the
 * (chunk, shard) incidences, whose count factors per axis (a chunk touches a box of
 * shards), and nothing waits for a Blend Map. Partial bytes: the band partials, float32
 * uncompressed (stored zstd-compressed, and the last contributor stores none: an upper
 * bound).
 */
export function shardedLayout(shard: Vec3): CloudLayout {
  return (o) => {
    const { plan, channels } = o;
    const c = plan.counts;
    let incidences = 1;
    let shards = 1;
    plan.axes.forEach((ax, a) => {
      const per = Math.max(1, Math.round(shard[a]! / ax.block));
      const touched = new Set<number>();
      let sum = 0;
      for (let j = 0; j < ax.chunkCount; j++) {
        const r = ax.chunkBlockRange(j);
        const first = Math.floor(r.start / per);
        const last = Math.floor((r.stop - 1) / per);
        sum += last - first + 1;
        for (let s = first; s <= last; s++) touched.add(s);
      }
      incidences *= sum;
      shards *= touched.size;
    });
    const partialBytes =
      PARTIAL_HEADER_BYTES * c.seamPartials + 4 * channels * seamPartialVoxels(plan);
    return {
      layout: `sharded output (shards [${shard.join(', ')}]); shards assembled by their last contributing worker from the others' pieces (finals + band partials, zstd); no Blend Map in the normal path`,
      objectsPerChunk: incidences / c.chunks,
      putsPerChunk: incidences / c.chunks,
      blendPuts: 0,
      blendGets: incidences - shards,
      partialObjects: incidences - shards,
      partialBytes,
      outputBytes: c.regionVoxels * channels * o.outputBytesPerValue,
      blendItems: 0,
      blendItemBytes: 0,
      blendMemoryBytes: 0,
      blendItemJsonBytes: 0,
    };
  };
}

export const unshardedLayout: CloudLayout = (o) => {
  const { plan, channels } = o;
  const c = plan.counts;
  const partialVoxels = seamPartialVoxels(plan);
  const partialBytes = PARTIAL_HEADER_BYTES * c.seamPartials + 4 * channels * partialVoxels;
  const items = blendItemCount(c.seamBlocks, c.blocks, o.blocksPerBlendItem);
  const blockVoxels = plan.blockShape[0] * plan.blockShape[1] * plan.blockShape[2];
  // Seam blocks' output bytes: a seam block's region part is what the blend writes. The mean
  // seam block is taken as full: blocks clipped by the region edge only make it smaller.
  const blendWrites = c.seamBlocks * blockVoxels * channels * o.outputBytesPerValue;
  // One unit in flight: its float32 sum per channel and Σw, one decoded partial, its output.
  const perUnit =
    blockVoxels * (4 * channels + 4 + 4 * channels + channels * o.outputBytesPerValue);
  const jobId = 'x'.repeat(80);
  const widest = { jobId, from: c.blocks, to: c.blocks };
  return {
    layout: 'unsharded blocks; whole-block seam partials (float32, uncompressed); Blend Map',
    objectsPerChunk: (c.ownedBlocks + c.seamPartials) / c.chunks,
    putsPerChunk: (c.ownedBlocks + c.seamPartials) / c.chunks,
    blendPuts: c.seamBlocks,
    blendGets: c.seamPartials,
    partialObjects: c.seamPartials,
    partialBytes,
    outputBytes: c.regionVoxels * channels * o.outputBytesPerValue,
    blendItems: items,
    blendItemBytes: items === 0 ? 0 : (partialBytes + blendWrites) / items,
    blendMemoryBytes: items === 0 ? 0 : BLEND_LANES * perUnit,
    // The planner writes the list with two-space indentation (one item: 4 + 3 fields).
    blendItemJsonBytes:
      JSON.stringify([widest, widest], null, 2).length - JSON.stringify([widest], null, 2).length,
  };
};

/**
 * Σ over seam partials of |block ∩ footprint|. Box intersections are products of
 * intervals and the (block, chunk) incidences a product set, so the sum over all
 * incidences factors per axis; owned blocks (one chunk on every axis) are taken off.
 */
export function seamPartialVoxels(plan: Plan): number {
  let all = 1;
  let owned = 1;
  for (const ax of plan.axes) {
    all *= incidenceLength(ax);
    owned *= ownedLength(ax);
  }
  return all - owned;
}

/** Σ_j Σ_{q touched by chunk j} |block q ∩ footprint j| along one axis. */
function incidenceLength(ax: AxisPlan): number {
  let sum = 0;
  for (let j = 0; j < ax.chunkCount; j++) {
    const f = ax.chunkFootprint(j);
    const r = ax.chunkBlockRange(j);
    for (let q = r.start; q < r.stop; q++)
      sum += Math.min(f.stop, (q + 1) * ax.block) - Math.max(f.start, q * ax.block);
  }
  return sum;
}

/** Σ over blocks one chunk touches along this axis of |block ∩ region|. */
function ownedLength(ax: AxisPlan): number {
  let sum = 0;
  for (let q = ax.firstBlock; q < ax.firstBlock + ax.blockCount; q++) {
    const r = ax.blockChunkRange(q);
    if (r.stop - r.start !== 1) continue;
    sum += Math.min(ax.stop, (q + 1) * ax.block) - Math.max(ax.start, q * ax.block);
  }
  return sum;
}

/**
 * The planner's item count: ceil(seam / perItem) ranges asked for, of ceil(blocks / that)
 * region blocks each (core/cloud/plan-step.ts blendItems), so ceil(blocks / span).
 */
export function blendItemCount(seamBlocks: number, blocks: number, perItem: number): number {
  if (seamBlocks === 0) return 0;
  const asked = Math.max(1, Math.ceil(seamBlocks / perItem));
  const span = Math.ceil(blocks / asked);
  return Math.ceil(blocks / span);
}
