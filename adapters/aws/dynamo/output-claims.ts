// Output claims (pk = OUT#<sha256(url)>, sk = OUT): one item per output URL naming the
// job that writes it, so two jobs never write one output.

import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { GetCommand, PutCommand } from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import { OutputClaimedError } from '../../../core/ledger/errors.ts';
import { absent, anyOf, Expr, equals } from './expressions.ts';
import { OUTPUT_SK, outputPk, PK, SK } from './schema.ts';
import type { LedgerTable } from './table.ts';

/** The port's claimOutput: puts the claim if no other job holds it (or `replacing` does). */
export async function claimOutput(
  t: LedgerTable,
  url: string,
  jobId: string,
  o: { replacing?: string },
): Promise<void> {
  if (url === '' || jobId === '')
    throw new RangeError('claimOutput needs a non-empty output url and job id');
  const x = new Expr();
  const holders = [jobId, ...(o.replacing === undefined ? [] : [o.replacing])];
  const condition = anyOf(absent(PK), ...holders.map((h) => equals('jobId', h)))(x);
  try {
    await t.doc.send(
      new PutCommand({
        TableName: t.name,
        Item: { [PK]: outputPk(url), [SK]: OUTPUT_SK, url, jobId },
        ConditionExpression: condition,
        ExpressionAttributeNames: x.names,
        ExpressionAttributeValues: x.values,
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      }),
    );
  } catch (e) {
    if (!(e instanceof ConditionalCheckFailedException)) throw e;
    const old = e.Item
      ? unmarshall(e.Item)
      : (
          await t.doc.send(
            new GetCommand({
              TableName: t.name,
              Key: { [PK]: outputPk(url), [SK]: OUTPUT_SK },
              ConsistentRead: true,
            }),
          )
        ).Item;
    if (!old) throw e;
    throw new OutputClaimedError(url, t.items.str(old, 'jobId'), jobId);
  }
}
