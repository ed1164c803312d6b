// statuses: the current status of a few chunk rows (a seam block's contributors), read
// with strongly consistent BatchGetItem, so a chunk whose complete() has returned reads
// DONE: the last-contributor decision (core/pipeline/seam-handoff.ts) relies on it.

import { BatchGetCommand } from '@aws-sdk/lib-dynamodb';
import { ChunkNotFoundError } from '../../../core/ledger/errors.ts';
import type { ChunkRef, ChunkStatus } from '../../../core/ledger/port.ts';
import { BatchGetIncompleteError } from '../dynamo-errors.ts';
import type { Item } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { chunkPk, chunkSk, PK, SK } from './schema.ts';
import type { LedgerTable } from './table.ts';

/** BatchGetItem's most keys per request. */
const BATCH_GET_MAX = 100;

export async function statuses(
  t: LedgerTable,
  job: JobMeta,
  refs: readonly ChunkRef[],
): Promise<ChunkStatus[]> {
  const { jobId, chunkCount } = job.spec;
  for (const r of refs)
    if (!Number.isSafeInteger(r.index) || r.index < 0 || r.index >= chunkCount)
      throw new ChunkNotFoundError(jobId, r.chunkId, r.index);
  const wanted = [...new Set(refs.map((r) => r.index))];
  const found = new Map<number, Item>();
  for (let i = 0; i < wanted.length; i += BATCH_GET_MAX) {
    let keys = wanted.slice(i, i + BATCH_GET_MAX).map((index) => ({
      [PK]: chunkPk(jobId, index, job.partitions),
      [SK]: chunkSk(index),
    }));
    for (let attempt = 1; keys.length > 0; attempt++) {
      if (attempt > t.retry.attempts)
        throw new BatchGetIncompleteError(t.name, jobId, keys.length, t.retry.attempts);
      if (attempt > 1) await t.pause(attempt - 1);
      const out = await t.doc.send(
        new BatchGetCommand({ RequestItems: { [t.name]: { Keys: keys, ConsistentRead: true } } }),
      );
      for (const item of out.Responses?.[t.name] ?? []) found.set(t.items.num(item, 'index'), item);
      keys = (out.UnprocessedKeys?.[t.name]?.Keys ?? []) as typeof keys;
    }
  }
  return refs.map((r) => {
    const item = found.get(r.index);
    const row = item === undefined ? undefined : t.items.row(jobId, item);
    if (row === undefined || row.chunkId !== r.chunkId)
      throw new ChunkNotFoundError(jobId, r.chunkId, r.index);
    return row.status;
  });
}
