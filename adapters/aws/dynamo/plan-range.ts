// planRange / completePlan: createJob split over index ranges (the port's RangePlanner),
// for jobs too large for one planner's time limit. Same rules as bulk-plan.ts: rows are
// written with BatchWriteItem behind planComplete = false, so no reader sees them and
// rewriting one rewrites identical bytes; that makes a range idempotent without reading
// anything back (a range run again, or two overlapping, just rewrite their rows).
//
//   planRange(0..k)   planRange(k..2k)  …    (a Map, in parallel; each one):
//     job row absent? put it (spec, shards, partitions; the first put wins, the others adopt it)
//     write the range's rows            (bulk-plan.ts writeRows: spread over the P keys)
//     put  pk = JOB#<jobId>  sk = PLAN#<from>#<to>     (only once every row is written)
//   completePlan:
//     Query PLAN#…  →  the ranges cover 0..chunkCount-1?  →  set planComplete
//
// A range stopped half-way has no PLAN# marker, so completePlan refuses until it is run
// again. As with createJob, no planRange may still be writing when completePlan runs
// (the state machine runs completePlan after the Map has finished every range).

import { PutCommand } from '@aws-sdk/lib-dynamodb';
import { JobNotFoundError, PlanIncompleteError } from '../../../core/ledger/errors.ts';
import { collectRangeIds, uncovered, validateRange } from '../../../core/ledger/plan-ranges.ts';
import type { ChunkRef, IndexRange, JobSpec } from '../../../core/ledger/port.ts';
import { validateJobSpec } from '../../../core/ledger/protocol.ts';
import { checkSameCount, newJobMeta, type PlanLayout, writeRows } from './bulk-plan.ts';
import { markComplete, putJob, readJob } from './job-rows.ts';
import { jobPk, PK, PLAN_RANGE_PREFIX, planRangeSk, SK } from './schema.ts';
import type { LedgerTable } from './table.ts';

/** Missing ranges a refusal names. */
const NAMED_GAPS = 20;

export async function planRange(
  t: LedgerTable,
  layout: PlanLayout,
  job: JobSpec,
  range: IndexRange,
  chunks: Iterable<ChunkRef>,
): Promise<{ written: number; complete: boolean }> {
  validateJobSpec(job);
  let found = await readJob(t, job.jobId);
  if (found?.complete) return { written: 0, complete: true };
  if (!found) {
    const meta = newJobMeta(layout, job);
    found = (await putJob(t, meta)) ?? { meta, complete: false };
    if (found.complete) return { written: 0, complete: true };
  }
  const { meta } = found;
  checkSameCount(meta, job);
  validateRange(meta.spec, range);
  const ids = collectRangeIds(meta.spec, range, chunks);
  const written = await writeRows(
    t,
    layout,
    meta,
    range.from,
    range.to,
    (i) => ids[i - range.from],
  );
  await t.doc.send(
    new PutCommand({
      TableName: t.name,
      Item: { [PK]: jobPk(job.jobId), [SK]: planRangeSk(range.from, range.to), ...range },
    }),
  );
  return { written, complete: false };
}

export async function completePlan(
  t: LedgerTable,
  jobId: string,
): Promise<{ created: boolean; job: JobSpec }> {
  const found = await readJob(t, jobId);
  if (!found) throw new JobNotFoundError(jobId);
  const { meta } = found;
  if (found.complete) return { created: false, job: structuredClone(meta.spec) };
  const ranges: IndexRange[] = [];
  for await (const item of t.query({
    KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :prefix)',
    ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
    ExpressionAttributeValues: { ':pk': jobPk(jobId), ':prefix': PLAN_RANGE_PREFIX },
    ConsistentRead: true,
  })) {
    ranges.push({ from: t.items.num(item, 'from'), to: t.items.num(item, 'to') });
  }
  const gaps = uncovered(meta.spec.chunkCount, ranges);
  if (gaps.length > 0) {
    const count = gaps.reduce((n, g) => n + g.to - g.from, 0);
    throw new PlanIncompleteError(jobId, gaps.slice(0, NAMED_GAPS), count);
  }
  return { created: await markComplete(t, meta), job: structuredClone(meta.spec) };
}
