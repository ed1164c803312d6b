// Re-arming final rows (rearm): each selected DONE, SKIPPED or FAILED row goes back to
// PENDING with its attempts reset, conditional on the status it was read with, so the
// counter move comes from the right status.

import { UnknownChunkIdsError } from '../../../core/ledger/errors.ts';
import { rearmedMessage } from '../../../core/ledger/memory.ts';
import {
  type ChunkRow,
  type ChunkStatus,
  FINAL_STATUSES,
  type RearmSelection,
} from '../../../core/ledger/port.ts';
import { reopen, statusIs } from './conditions.ts';
import { writeRow } from './counted-writes.ts';
import { allOf, equals } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { OPEN_PK, openPk } from './schema.ts';
import type { LedgerTable } from './table.ts';

/**
 * One conditional UpdateItem per selected row, `status = <the final status read>`, in a
 * transaction with the counter move from that status to PENDING; the row re-enters the
 * open index at its index. Finding the rows is one paged Query over the job's chunk rows
 * (the table keeps no id → index map, and FAILED rows are not in the open index): a
 * chunk row is ~200 bytes, so 10^6 chunks read ~50 000 read units, once per re-arm.
 */
export async function rearm(
  t: LedgerTable,
  job: JobMeta,
  which: RearmSelection,
  list: (status?: ChunkStatus) => AsyncIterable<ChunkRow>,
): Promise<{ rearmed: number }> {
  const { jobId } = job.spec;
  const targets: ChunkRow[] = [];
  if ('status' in which) {
    if (which.status !== 'FAILED')
      throw new RangeError(
        `rearm: only { status: 'FAILED' } selects by status, got ${String(which.status)}`,
      );
    for await (const row of list('FAILED')) targets.push(row);
  } else {
    const wanted = new Set(which.chunkIds);
    if (wanted.size === 0) return { rearmed: 0 };
    for await (const row of list()) {
      if (!wanted.delete(row.chunkId)) continue;
      targets.push(row);
    }
    if (wanted.size > 0) {
      const unknown = [...wanted];
      throw new UnknownChunkIdsError(jobId, unknown.slice(0, 20), unknown.length);
    }
  }
  let rearmed = 0;
  for (const row of targets) if (await rearmRow(t, job, row)) rearmed++;
  return { rearmed };
}

/** Re-arms one row if it is final; re-judged once from the refusal's row (it moved). */
async function rearmRow(t: LedgerTable, job: JobMeta, seen: ChunkRow): Promise<boolean> {
  let row: ChunkRow | undefined = seen;
  for (let tries = 0; tries < 2 && row !== undefined; tries++) {
    if (!FINAL_STATUSES.includes(row.status)) return false;
    const r = await writeRow(
      t,
      job,
      row.index,
      {
        set: {
          status: 'PENDING',
          attempts: 0,
          lastError: rearmedMessage(row),
          [OPEN_PK]: openPk(job.spec.jobId, row.index % job.shards),
          ...reopen(row.index),
          updatedAt: Date.now(),
        },
        remove: ['owner', 'leaseExpiresAt'],
      },
      allOf(statusIs(row.status), equals('chunkId', row.chunkId)),
      { from: row.status, to: 'PENDING' },
    );
    if (r.ok) return true;
    row = r.old && t.items.row(job.spec.jobId, r.old);
  }
  return false;
}
