// The rules of planning a job in index ranges (the port's RangePlanner), shared by every
// adapter so they accept and refuse the same ranges: a range's bounds, the chunk list of
// one range, and which indices the planned ranges leave uncovered.

import { InvalidJobError } from './errors.ts';
import type { ChunkRef, IndexRange, JobSpec } from './port.ts';
import { validateChunkId } from './protocol.ts';

/** Refuses a range outside 0..chunkCount or not made of integers. */
export function validateRange(job: JobSpec, range: IndexRange): void {
  const { from, to } = range;
  if (
    !Number.isSafeInteger(from) ||
    !Number.isSafeInteger(to) ||
    from < 0 ||
    to < from ||
    to > job.chunkCount
  ) {
    throw new InvalidJobError(
      job.jobId,
      'range',
      `must be integers with 0 ≤ from ≤ to ≤ chunkCount (${job.chunkCount}), got ${from}..${to}`,
    );
  }
}

/**
 * The chunk ids of one range, by index − from, checking `chunks` holds each index of the
 * range exactly once. Ids are checked unique within the range: across ranges the plan's
 * chunk-id function (one id per chunk coordinate) is what keeps them apart.
 */
export function collectRangeIds(
  job: JobSpec,
  range: IndexRange,
  chunks: Iterable<ChunkRef>,
): string[] {
  const { from, to } = range;
  const ids = new Array<string>(to - from);
  const seenId = new Set<string>();
  let n = 0;
  for (const { chunkId, index } of chunks) {
    if (!Number.isSafeInteger(index) || index < from || index >= to) {
      throw new InvalidJobError(
        job.jobId,
        `chunks[${n}].index`,
        `must be an integer in ${from}..${to - 1}, got ${index}`,
      );
    }
    validateChunkId(job.jobId, chunkId, index);
    if (ids[index - from] !== undefined) {
      throw new InvalidJobError(job.jobId, `chunks[${n}].index`, `repeats index ${index}`);
    }
    if (seenId.has(chunkId)) {
      throw new InvalidJobError(job.jobId, `chunks[${n}].chunkId`, `repeats "${chunkId}"`);
    }
    seenId.add(chunkId);
    ids[index - from] = chunkId;
    n++;
  }
  if (n !== to - from) {
    throw new InvalidJobError(
      job.jobId,
      'chunks',
      `has ${n} entries but the range ${from}..${to - 1} has ${to - from}`,
    );
  }
  return ids;
}

/** The parts of 0..chunkCount-1 that no range covers, in order; [] when covered. */
export function uncovered(chunkCount: number, ranges: readonly IndexRange[]): IndexRange[] {
  const sorted = [...ranges].sort((a, b) => a.from - b.from);
  const gaps: IndexRange[] = [];
  let reached = 0;
  for (const r of sorted) {
    if (r.from > reached) gaps.push({ from: reached, to: Math.min(r.from, chunkCount) });
    reached = Math.max(reached, r.to);
    if (reached >= chunkCount) break;
  }
  if (reached < chunkCount) gaps.push({ from: reached, to: chunkCount });
  return gaps;
}
