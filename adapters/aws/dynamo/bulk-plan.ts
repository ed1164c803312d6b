// createJob: the job row, then every chunk row in bulk, resumable after a stop half-way.
//
// Rows are written with BatchWriteItem (no conditions) while the job row says
// planComplete = false, and a job is invisible to every reader (getJob, claim, counts…)
// until then, so no row can have left its initial state while rows are being written:
// rewriting one rewrites identical bytes (the initial row is a function of the spec). A
// createJob that finds an incomplete job reads which rows exist, writes only the missing
// ones, then sets planComplete (conditionally, so exactly one caller reports
// created:true). Two createJob calls for one job must not overlap in time (the state
// machine's execution name is derived from the job id): the slower one's last batch could
// land after the faster one completed the plan and a worker claimed a row.

import { BatchWriteCommand } from '@aws-sdk/lib-dynamodb';
import { InvalidJobError } from '../../../core/ledger/errors.ts';
import { collectChunkIds } from '../../../core/ledger/memory.ts';
import type { ChunkRef, JobSpec } from '../../../core/ledger/port.ts';
import { initialRow, validateJobSpec } from '../../../core/ledger/protocol.ts';
import { BatchWriteIncompleteError } from '../dynamo-errors.ts';
import type { Item } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { markComplete, putJob, readJob } from './job-rows.ts';
import { chunkItems } from './row-listing.ts';
import {
  CHUNK_PREFIX,
  chunkPk,
  chunkSk,
  OPEN_PK,
  OPEN_SK,
  openPk,
  PK,
  partitionsFor,
  pendingKey,
  SK,
  shardsFor,
} from './schema.ts';
import type { LedgerTable } from './table.ts';

const BATCH_WRITE_MAX = 25;

/** How a DynamoLedger lays out the jobs it creates, and how hard it writes them. */
export interface PlanLayout {
  maxShards: number;
  rowsPerPartition: number;
  /** BatchWriteItem calls in flight. */
  writesInFlight: number;
}

/** The port's createJob on one table. */
export async function createJob(
  t: LedgerTable,
  layout: PlanLayout,
  job: JobSpec,
  chunks: Iterable<ChunkRef>,
): Promise<{ created: boolean; job: JobSpec }> {
  validateJobSpec(job);
  let existing = await readJob(t, job.jobId);
  // A duplicate event for a planned job costs one read: the chunk list is not even read.
  if (existing?.complete) return { created: false, job: existing.meta.spec };
  const ids = collectChunkIds(existing?.meta.spec ?? job, chunks);
  if (!existing) {
    const meta = newJobMeta(layout, job);
    const old = await putJob(t, meta);
    if (old === undefined) {
      await writeRows(t, layout, meta, 0, ids.length, (i) => ids[i]);
      return { created: await markComplete(t, meta), job: structuredClone(meta.spec) };
    }
    existing = old;
    if (existing.complete) return { created: false, job: existing.meta.spec };
    checkSameCount(existing.meta, job);
  }
  // Resume a creation that stopped half-way: write only the rows that are missing.
  const meta = existing.meta;
  const present = await presentRows(t, meta, ids);
  await writeRows(t, layout, meta, 0, ids.length, (i) => (present[i] === 0 ? ids[i] : undefined));
  return { created: await markComplete(t, meta), job: structuredClone(meta.spec) };
}

/** The job row of a job about to be planned: its shard and partition counts. */
export function newJobMeta(layout: PlanLayout, job: JobSpec): JobMeta {
  return {
    spec: structuredClone(job),
    shards: shardsFor(job.chunkCount, layout.maxShards),
    partitions: partitionsFor(job.chunkCount, layout.rowsPerPartition),
  };
}

/** A half-written job is resumed only by the plan that started it. */
export function checkSameCount(existing: JobMeta, job: JobSpec): void {
  if (existing.spec.chunkCount !== job.chunkCount) {
    throw new InvalidJobError(
      job.jobId,
      'chunkCount',
      `is ${job.chunkCount} but the half-written job has ${existing.spec.chunkCount}; ` +
        'resume it with the plan that started it',
    );
  }
}

/** Which chunk rows exist (1) — checking each against the plan that is resuming. */
async function presentRows(
  t: LedgerTable,
  meta: JobMeta,
  ids: readonly string[],
): Promise<Uint8Array> {
  const { jobId } = meta.spec;
  const present = new Uint8Array(meta.spec.chunkCount);
  for await (const item of chunkItems(t, meta, (pk) => ({
    KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
    ProjectionExpression: '#sk, #chunkId, #index',
    ExpressionAttributeNames: { '#pk': PK, '#sk': SK, '#chunkId': 'chunkId', '#index': 'index' },
    ExpressionAttributeValues: { ':pk': pk, ':prefix': CHUNK_PREFIX },
    ConsistentRead: true,
  }))) {
    const index = t.items.num(item, 'index');
    const chunkId = t.items.str(item, 'chunkId');
    if (ids[index] !== chunkId) {
      throw new InvalidJobError(
        jobId,
        `chunks[${index}].chunkId`,
        `is "${ids[index]}" but the half-written job has "${chunkId}" there; resume it with the plan that started it`,
      );
    }
    present[index] = 1;
  }
  return present;
}

/**
 * BatchWriteItem of the rows of [from, to) that `idAt` names (undefined: skip), 25 per
 * call, `writesInFlight` calls at once. Batches are taken in index order and row i lives
 * under key i mod P, so the calls in flight (25 × writesInFlight consecutive rows) land
 * evenly on the P keys: each key sees 1/P of the write rate. Returns the rows written.
 */
export async function writeRows(
  t: LedgerTable,
  layout: PlanLayout,
  meta: JobMeta,
  from: number,
  to: number,
  idAt: (index: number) => string | undefined,
): Promise<number> {
  const { spec, shards, partitions } = meta;
  const initial = initialRow(spec);
  let next = from;
  let written = 0;
  const takeBatch = (): Item[] => {
    const batch: Item[] = [];
    for (; next < to && batch.length < BATCH_WRITE_MAX; next++) {
      const chunkId = idAt(next);
      if (chunkId === undefined) continue;
      batch.push({
        [PK]: chunkPk(spec.jobId, next, partitions),
        [SK]: chunkSk(next),
        [OPEN_PK]: openPk(spec.jobId, next % shards),
        [OPEN_SK]: pendingKey(next),
        chunkId,
        index: next,
        ...initial,
      });
    }
    return batch;
  };
  let failed = false;
  const lane = async (): Promise<void> => {
    for (let batch = takeBatch(); batch.length > 0 && !failed; batch = takeBatch()) {
      try {
        await batchWrite(t, spec.jobId, batch);
        written += batch.length;
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  // allSettled: when createJob rejects, none of its lanes is still writing behind it.
  const lanes = await Promise.allSettled(Array.from({ length: layout.writesInFlight }, lane));
  for (const l of lanes) if (l.status === 'rejected') throw l.reason;
  return written;
}

/** One batch of puts, its UnprocessedItems sent again with backoff. */
async function batchWrite(t: LedgerTable, jobId: string, items: Item[]): Promise<void> {
  let requests = items.map((Item) => ({ PutRequest: { Item } }));
  for (let attempt = 1; ; attempt++) {
    const out = await t.doc.send(new BatchWriteCommand({ RequestItems: { [t.name]: requests } }));
    const left = out.UnprocessedItems?.[t.name] ?? [];
    if (left.length === 0) return;
    if (attempt >= t.retry.attempts) {
      throw new BatchWriteIncompleteError(t.name, jobId, left.length, attempt);
    }
    t.stats.batchRetries++;
    await t.pause(attempt);
    requests = left.flatMap((r) =>
      r.PutRequest?.Item ? [{ PutRequest: { Item: r.PutRequest.Item } }] : [],
    );
  }
}
