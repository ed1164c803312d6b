// Seams blended by the workers that make them (DESIGN.md, "Seams at scale"). A seam block
// is touched by several chunks' footprints; the worker that finishes the last of them
// blends it at once, so in the normal path no separate blend waits for the job's end.
// "Last" is decided through the ledger, whose statuses read is consistent:
//
//   before completing:  every other contributor DONE?  yes → blend now, with this chunk's
//                       sum still in memory; write no partial of its own
//                       no  → write its partial (compressed), then complete
//   after completing:   every other contributor DONE now?  yes → blend (all partials)
//
// Two workers may both blend a block (both checked after both completed): the blend adds
// the contributors in the plan's order, so both write the same bytes. None blends only if
// each checked before the other completed, which the check after completing rules out
// (the later completer sees the earlier one DONE). A worker that dies between completing
// and blending leaves the block unblended: Verify lists such blocks (unblendedSeamBlocks)
// and the Blend step finishes them. With sharded output the unit is the shard
// (shard-handoff.ts); leftoverUnits and finishLeftovers serve both.

import type { BlockDescriptor, ChunkDescriptor } from '../geometry/index.ts';
import type { ChunkRef, Ledger } from '../ledger/index.ts';
import { isShardedOutput, type OutputVolume } from '../volume/index.ts';
import { BLEND_LANES, type BlendScratch, blendSeams } from './blend-seams.ts';
import { type JobContext, openJobOutput } from './context.ts';
import { checkOutput } from './output-check.ts';
import { assembleShard, shardUnitOf, unassembledShards } from './shard-handoff.ts';

/**
 * For each unit (a seam block's or a shard's contributors), whether every contributor
 * other than `chunk` is finished (DONE or SKIPPED): one consistent ledger read for all.
 */
export async function othersFinished(
  ledger: Pick<Ledger, 'statuses'>,
  ctx: Pick<JobContext, 'jobId'>,
  chunk: ChunkDescriptor,
  units: readonly { readonly contributors: Iterable<ChunkDescriptor> }[],
): Promise<boolean[]> {
  const others = units.map((u) => [...u.contributors].filter((c) => c.id !== chunk.id));
  const unique = new Map<string, ChunkRef>();
  for (const cs of others) for (const c of cs) unique.set(c.id, { chunkId: c.id, index: c.index });
  const refs = [...unique.values()];
  const statuses = refs.length === 0 ? [] : await ledger.statuses(ctx.jobId, refs);
  const finished = new Set(
    refs
      .filter((_, i) => statuses[i] === 'DONE' || statuses[i] === 'SKIPPED')
      .map((r) => r.chunkId),
  );
  return others.map((cs) => cs.every((c) => finished.has(c.id)));
}

/** The seam blocks of `blocks` whose every other contributor is finished. */
export async function blocksOthersFinished(
  ledger: Pick<Ledger, 'statuses'>,
  ctx: Pick<JobContext, 'jobId' | 'plan'>,
  chunk: ChunkDescriptor,
  blocks: readonly BlockDescriptor[],
): Promise<BlockDescriptor[]> {
  const units = blocks.map((b) => ({ contributors: ctx.plan.contributors(b) }));
  const ready = await othersFinished(ledger, ctx, chunk, units);
  return blocks.filter((_, i) => ready[i]);
}

/**
 * Seam blocks missing from the output (level 0, one listing per z-slab): what no last
 * contributor blended (it died between completing and blending), for the Blend step.
 */
export async function unblendedSeamBlocks(ctx: JobContext): Promise<BlockDescriptor[]> {
  const { damaged } = await checkOutput(ctx, { scope: 'seams', depth: 'listing' });
  const out: BlockDescriptor[] = [];
  for (const d of damaged) if (d.kind === 'block') out.push(ctx.plan.describeBlock(d.coord));
  return out;
}

/**
 * The units no worker finished, by key: seam blocks missing from an unsharded output, or
 * shards missing from a sharded one. What the Blend step (finishLeftovers) is for.
 */
export async function leftoverUnits(ctx: JobContext, output: OutputVolume): Promise<string[]> {
  if (isShardedOutput(output)) return (await unassembledShards(ctx, output)).map((u) => u.key);
  return (await unblendedSeamBlocks(ctx)).map((b) => b.key);
}

/** A job's leftover units, its output opened (what the cloud's Verify hands to Blend). */
export async function jobLeftovers(ctx: JobContext): Promise<string[]> {
  return leftoverUnits(ctx, await openJobOutput(ctx));
}

/** Blends (unsharded) or assembles (sharded) the units `keys` name; returns how many. */
export async function finishLeftovers(
  ctx: JobContext,
  output: OutputVolume,
  keys: readonly string[],
  o: { concurrency?: number } = {},
): Promise<number> {
  if (!isShardedOutput(output)) return blendSeams(ctx, output, { keys, ...o });
  const queue = keys[Symbol.iterator]();
  let done = 0;
  const lane = async (): Promise<void> => {
    const scratch: BlendScratch = {};
    for (let r = queue.next(); !r.done; r = queue.next()) {
      await assembleShard(ctx, output, shardUnitOf(ctx, output, r.value), scratch);
      done++;
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? BLEND_LANES) }, lane));
  return done;
}
