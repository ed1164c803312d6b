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
import {
  CHUNK_PREFIX,
  chunkSk,
  jobPk,
  OPEN_PK,
  OPEN_SK,
  openPk,
  PK,
  pendingKey,
  SK,
  shardsFor,
} from './schema.ts';
import type { LedgerTable } from './table.ts';

const BATCH_WRITE_MAX = 25;
const BATCH_WRITES_IN_FLIGHT = 8;

/** The port's createJob on one table; new jobs get up to `maxShards` shards. */
export async function createJob(
  t: LedgerTable,
  maxShards: number,
  job: JobSpec,
  chunks: Iterable<ChunkRef>,
): Promise<{ created: boolean; job: JobSpec }> {
  validateJobSpec(job);
  let existing = await readJob(t, job.jobId);
  // A duplicate event for a planned job costs one read: the chunk list is not even read.
  if (existing?.complete) return { created: false, job: existing.meta.spec };
  const ids = collectChunkIds(existing?.meta.spec ?? job, chunks);
  if (!existing) {
    const meta: JobMeta = {
      spec: structuredClone(job),
      shards: shardsFor(job.chunkCount, maxShards),
    };
    const old = await putJob(t, meta);
    if (old === undefined) {
      await writeRows(t, meta, ids, () => true);
      return { created: await markComplete(t, meta), job: structuredClone(meta.spec) };
    }
    existing = old;
    if (existing.complete) return { created: false, job: existing.meta.spec };
    if (existing.meta.spec.chunkCount !== job.chunkCount) {
      throw new InvalidJobError(
        job.jobId,
        'chunkCount',
        `is ${job.chunkCount} but the half-written job has ${existing.meta.spec.chunkCount}; ` +
          'resume it with the plan that started it',
      );
    }
  }
  // Resume a creation that stopped half-way: write only the rows that are missing.
  const meta = existing.meta;
  const present = await presentRows(t, meta, ids);
  await writeRows(t, meta, ids, (i) => present[i] === 0);
  return { created: await markComplete(t, meta), job: structuredClone(meta.spec) };
}

/** Which chunk rows exist (1) — checking each against the plan that is resuming. */
async function presentRows(
  t: LedgerTable,
  meta: JobMeta,
  ids: readonly string[],
): Promise<Uint8Array> {
  const { jobId } = meta.spec;
  const present = new Uint8Array(meta.spec.chunkCount);
  for await (const item of t.query({
    KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
    ProjectionExpression: '#sk, #chunkId, #index',
    ExpressionAttributeNames: { '#pk': PK, '#sk': SK, '#chunkId': 'chunkId', '#index': 'index' },
    ExpressionAttributeValues: { ':pk': jobPk(jobId), ':prefix': CHUNK_PREFIX },
    ConsistentRead: true,
  })) {
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

/** BatchWriteItem of the rows `want` selects, 25 per call, a few calls in flight. */
async function writeRows(
  t: LedgerTable,
  meta: JobMeta,
  ids: readonly string[],
  want: (index: number) => boolean,
): Promise<void> {
  const { spec, shards } = meta;
  const initial = initialRow(spec);
  let next = 0;
  const takeBatch = (): Item[] => {
    const batch: Item[] = [];
    for (; next < ids.length && batch.length < BATCH_WRITE_MAX; next++) {
      if (!want(next)) continue;
      batch.push({
        [PK]: jobPk(spec.jobId),
        [SK]: chunkSk(next),
        [OPEN_PK]: openPk(spec.jobId, next % shards),
        [OPEN_SK]: pendingKey(next),
        chunkId: ids[next]!,
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
      } catch (e) {
        failed = true;
        throw e;
      }
    }
  };
  // allSettled: when createJob rejects, none of its lanes is still writing behind it.
  const lanes = await Promise.allSettled(Array.from({ length: BATCH_WRITES_IN_FLIGHT }, lane));
  for (const l of lanes) if (l.status === 'rejected') throw l.reason;
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
