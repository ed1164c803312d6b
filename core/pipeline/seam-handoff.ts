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
// and the Blend step finishes them.

import type { BlockDescriptor, ChunkDescriptor, Plan } from '../geometry/index.ts';
import type { ChunkRef, Ledger } from '../ledger/index.ts';
import type { JobContext } from './context.ts';
import { checkOutput } from './output-check.ts';

/** The contributors of `block` other than `chunk`, as ledger refs. */
function othersOf(plan: Plan, block: BlockDescriptor, chunk: ChunkDescriptor): ChunkRef[] {
  const refs: ChunkRef[] = [];
  for (const c of plan.contributors(block))
    if (c.id !== chunk.id) refs.push({ chunkId: c.id, index: c.index });
  return refs;
}

/**
 * The blocks of `blocks` (seam blocks of `chunk`) whose every other contributor is
 * finished (DONE or SKIPPED): one consistent ledger read for all of them.
 */
export async function blocksOthersFinished(
  ledger: Pick<Ledger, 'statuses'>,
  ctx: Pick<JobContext, 'jobId' | 'plan'>,
  chunk: ChunkDescriptor,
  blocks: readonly BlockDescriptor[],
): Promise<BlockDescriptor[]> {
  if (blocks.length === 0) return [];
  const others = blocks.map((b) => othersOf(ctx.plan, b, chunk));
  const unique = new Map<string, ChunkRef>();
  for (const refs of others) for (const r of refs) unique.set(r.chunkId, r);
  const refs = [...unique.values()];
  const statuses = await ledger.statuses(ctx.jobId, refs);
  const finished = new Set(
    refs
      .filter((_, i) => statuses[i] === 'DONE' || statuses[i] === 'SKIPPED')
      .map((r) => r.chunkId),
  );
  return blocks.filter((_, i) => others[i]!.every((r) => finished.has(r.chunkId)));
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
