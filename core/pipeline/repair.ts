// What re-makes a damaged output: from the objects checkOutput found damaged to the work
// that rewrites exactly them, by the geometry alone.
//
//   owned block (level 0)   → its one owner chunk re-runs and writes it final
//   seam block  (level 0)   → every contributor re-runs (their partials were deleted once
//                             the job succeeded), then the block is blended again
//   pyramid block (level ≥1)→ the pyramid is derived again from level 0, after the
//                             level-0 repair
//   a zarr.json             → deleted and written again: level 0's by ensureOutput, a
//                             pyramid level's by the rebuild, the root group's by finalize
//
// Every write of the pipeline is deterministic, so the rewritten objects are byte-equal
// to the lost ones; objects that were not damaged are rewritten with the same bytes or
// not at all.

import type { Plan } from '../geometry/index.ts';
import type { AbsolutePath } from '../store/index.ts';
import type { DamagedObject } from './output-check.ts';

export interface RepairPlan {
  /** Chunks to run again, in chunk-index order. */
  readonly chunkIds: string[];
  /** Seam blocks (level-0 block keys, as Plan.blockKey) to blend again once their contributors ran. */
  readonly seamBlocks: string[];
  /** Rebuild pyramid levels 1..L from level 0. */
  readonly pyramid: boolean;
  /** Metadata documents to delete before the repair writes them again. */
  readonly metadata: AbsolutePath[];
}

export function repairPlan(plan: Plan, damaged: readonly DamagedObject[]): RepairPlan {
  const chunks = new Map<string, number>();
  const seams = new Map<string, number>();
  let pyramid = false;
  const metadata = new Set<AbsolutePath>();
  for (const d of damaged) {
    if (d.kind === 'metadata') {
      metadata.add(d.key);
      if (typeof d.level === 'number' && d.level > 0) pyramid = true;
      continue;
    }
    if (d.level > 0) {
      pyramid = true;
      continue;
    }
    const block = plan.describeBlock(d.coord);
    if (block.regionBox.isEmpty()) continue; // never written: nothing to re-make
    if (block.seam) seams.set(block.key, linear(block.coord, plan.blockGrid));
    for (const chunk of plan.contributors(block)) chunks.set(chunk.id, chunk.index);
  }
  const ordered = (m: Map<string, number>): string[] =>
    [...m].sort((a, b) => a[1] - b[1]).map(([k]) => k);
  return {
    chunkIds: ordered(chunks),
    seamBlocks: ordered(seams),
    pyramid,
    metadata: [...metadata].sort(),
  };
}

const linear = (c: readonly number[], grid: readonly number[]): number =>
  (c[0]! * grid[1]! + c[1]!) * grid[2]! + c[2]!;
