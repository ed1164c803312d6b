// Spent work: once every seam block of a job is blended (BLENDED_KEY records it), its
// partials are read no more.
// Deleted through the Store port (list + delete), so the same code clears a state
// directory and a bucket prefix. The job description (JOB_DESCRIPTION_KEY) is kept: it
// is what a later open of the finished job is checked against.

import type { Store } from '../store/index.ts';
import { TILE_PREFIX } from './preview-tiles.ts';

/** Seam partials, and shard pieces (shard-piece.ts) under partials/shards/. */
const PARTIALS_PREFIX = '/partials/';

/**
 * Set in the work store once every seam block is blended (and the partials may go):
 * running the job again then reports the finished output, or only finalizes again,
 * instead of blending from partials that are gone.
 */
export const BLENDED_KEY = '/blended';

export async function markBlended(work: Store, at: Date): Promise<void> {
  await work.set(BLENDED_KEY, new TextEncoder().encode(`${at.toISOString()}\n`));
}

export async function isBlended(work: Store): Promise<boolean> {
  return (await work.get(BLENDED_KEY)) !== undefined;
}

/**
 * Deletes the seam partials in `work`, and the preview tiles too unless `keepTiles`
 * (finalize reads them). One object at a time: this runs beside finalize, whose reads
 * share the I/O threads. A store that cannot list or delete keeps them (never read again).
 */
export async function deleteSpentPartials(work: Store, o: { keepTiles: boolean }): Promise<number> {
  if (!work.list || !work.delete) return 0;
  const keys: string[] = [];
  for await (const key of work.list(PARTIALS_PREFIX)) {
    if (o.keepTiles && key.startsWith(`${TILE_PREFIX}/`)) continue;
    keys.push(key);
  }
  for (const key of keys) await work.delete(key as `/${string}`);
  return keys.length;
}
