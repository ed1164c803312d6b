// Blend: each seam block sums the partials (Σw·f) of every chunk whose footprint
// touches it, divides by Σw (from geometry), and is written final. Each block has exactly one writer (the
// invocation given it), and re-running rewrites identical bytes.

import { decodePartial, PartialSum, weightSums } from '../blend/index.ts';
import type { BlockDescriptor } from '../geometry/index.ts';
import type { OutputVolume } from '../volume/index.ts';
import { type JobContext, partialKey } from './context.ts';
import { finalBlock, storedOutput } from './convert.ts';
import { MissingPartialError } from './errors.ts';
import { readPartial } from './partial-store.ts';
import { writePreviewTiles } from './preview-tiles.ts';

/**
 * Memory one blender reuses from block to block (it blends one block at a time): the
 * sums and the output block, grown to the largest block seen.
 */
export interface BlendScratch {
  sum?: Float32Array;
  out?: Float32Array | Uint8Array;
}

/**
 * Blends one seam block. `own`, when given, is one contributor's sum still in memory (the
 * last contributor's, see seam-handoff.ts): it is added in its turn instead of its partial
 * being read. Its values are the partial's, so the block's bytes are the same either way.
 */
export async function blendSeamBlock(
  ctx: JobContext,
  output: OutputVolume,
  block: BlockDescriptor,
  scratch: BlendScratch = {},
  own?: { chunkId: string; sum: PartialSum },
  /** Runs just before the block is stored (a worker's lease check: fencing). */
  beforeStore?: () => Promise<void>,
): Promise<void> {
  const channels = ctx.manifest.model.outputChannels;
  const sums = weightSums(ctx.plan, ctx.manifest.blend);
  const sum = new PartialSum(block.box, channels, sums, scratch.sum);
  if (sum.buffer.buffer !== scratch.sum?.buffer) scratch.sum = sum.buffer;
  // Contributors in the plan's order, whoever blends: float sums in one order, one result.
  for (const chunk of ctx.plan.contributors(block)) {
    if (own?.chunkId === chunk.id) {
      sum.addPartial(own.sum);
      continue;
    }
    const key = partialKey(block.key, chunk.id);
    const bytes = await readPartial(ctx.work, key);
    if (bytes === undefined) throw new MissingPartialError(block.key, chunk.id, key);
    sum.addPartial(decodePartial(bytes, key, sums));
  }
  const out = finalBlock(storedOutput(ctx.manifest), sum, block.box, block.regionBox, scratch);
  await output.writeBlock(block.coord, out, beforeStore ? { beforeStore } : {});
  if (ctx.previewTiles) await writePreviewTiles(ctx.work, ctx.plan.region, block.coord, out);
}

/** Seam blocks one blendSeams call (a blend Lambda's item) works on at once, by default. */
export const BLEND_LANES = 4;

/**
 * Blends the given seam blocks (default: all of the plan's), `concurrency` at a time.
 * `keys` names them by block key instead (a repair's set, see repair.ts): only those are
 * read, so the partials of every other seam block may be gone.
 */
export async function blendSeams(
  ctx: JobContext,
  output: OutputVolume,
  o: {
    blocks?: Iterable<BlockDescriptor>;
    keys?: Iterable<string>;
    concurrency?: number;
    onBlock?: (done: number) => void;
  } = {},
): Promise<number> {
  if (o.blocks !== undefined && o.keys !== undefined)
    throw new TypeError('blendSeams takes blocks or keys, not both');
  const blocks =
    o.blocks ?? (o.keys === undefined ? ctx.plan.seamBlockList() : seamBlocksOf(ctx, o.keys));
  const it = blocks[Symbol.iterator]();
  let done = 0;
  const lane = async (): Promise<void> => {
    const scratch: BlendScratch = {};
    for (let r = it.next(); !r.done; r = it.next()) {
      await blendSeamBlock(ctx, output, r.value, scratch);
      done++;
      o.onBlock?.(done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? BLEND_LANES) }, lane));
  return done;
}

/** The seam blocks named by `keys`; a key of a block that is not a seam block is refused. */
function* seamBlocksOf(ctx: JobContext, keys: Iterable<string>): Generator<BlockDescriptor> {
  for (const key of keys) {
    const block = ctx.plan.describeBlock(key);
    if (!block.seam)
      throw new RangeError(
        `block ${key} is written final by its one chunk, not blended; repair it by re-running that chunk`,
      );
    yield block;
  }
}
