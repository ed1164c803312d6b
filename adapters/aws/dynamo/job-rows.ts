// The job row (sk = JOB): the spec, its shard and partition counts and planComplete. Written once by
// createJob (a conditional put, then planComplete set conditionally) and read by every
// other call; see bulk-plan.ts for why a job is invisible until planComplete.

import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { absent, Expr, equals, updateExpression } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { JOB_SK, jobPk, PK, SK } from './schema.ts';
import type { LedgerTable } from './table.ts';

export type JobRow = { meta: JobMeta; complete: boolean };

export async function readJob(t: LedgerTable, jobId: string): Promise<JobRow | undefined> {
  const out = await t.doc.send(
    new GetCommand({
      TableName: t.name,
      Key: { [PK]: jobPk(jobId), [SK]: JOB_SK },
      ConsistentRead: true,
    }),
  );
  return out.Item && t.items.job(out.Item);
}

/** The conditional put of a new job row; undefined if it was created, else the one there. */
export async function putJob(t: LedgerTable, meta: JobMeta): Promise<JobRow | undefined> {
  const { spec } = meta;
  const x = new Expr();
  const condition = absent(PK)(x);
  try {
    await t.doc.send(
      new PutCommand({
        TableName: t.name,
        Item: {
          [PK]: jobPk(spec.jobId),
          [SK]: JOB_SK,
          jobId: spec.jobId,
          chunkCount: spec.chunkCount,
          maxAttempts: spec.maxAttempts,
          leaseMs: spec.leaseMs,
          createdAt: spec.createdAt,
          ...(spec.attributes === undefined ? {} : { attributes: spec.attributes }),
          shards: meta.shards,
          partitions: meta.partitions,
          planComplete: false,
        },
        ConditionExpression: condition,
        ExpressionAttributeNames: x.names,
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
    return undefined;
  } catch (e) {
    if (!(e instanceof ConditionalCheckFailedException)) throw e;
    // A concurrent createJob won the put; carry on with its row.
    const there = e.Item ? t.items.job(unmarshall(e.Item)) : await readJob(t, spec.jobId);
    if (!there) throw e;
    return there;
  }
}

/** Sets planComplete; true if this call did (so exactly one caller reports created). */
export async function markComplete(t: LedgerTable, meta: JobMeta): Promise<boolean> {
  const x = new Expr();
  try {
    await t.doc.send(
      new UpdateCommand({
        TableName: t.name,
        Key: { [PK]: jobPk(meta.spec.jobId), [SK]: JOB_SK },
        UpdateExpression: updateExpression({ set: { planComplete: true } }, x),
        ConditionExpression: equals('planComplete', false)(x),
        ExpressionAttributeNames: x.names,
        ExpressionAttributeValues: x.values,
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
    return true;
  } catch (e) {
    if (e instanceof ConditionalCheckFailedException) return false;
    throw e;
  }
}
