// The one write every chunk-row change goes through: a conditional UpdateItem, and where
// the status moves, the same update in one TransactWriteItems with a counter ADD.
//
// Exact counts: the counter move is an ADD of -1/+1 on one of the job's counter items
// (picked at random, so concurrent transitions rarely touch the same item). The
// transaction commits both or neither, so the counters' sum is exact under any
// concurrency; PENDING is chunkCount plus its delta, so planning writes no counters.
// Status-preserving writes (heartbeat, re-claiming an expired lease) are plain
// UpdateItems.

import {
  type CancellationReason,
  ConditionalCheckFailedException,
  TransactionCanceledException,
  TransactionConflictException,
} from '@aws-sdk/client-dynamodb';
import {
  TransactWriteCommand,
  UpdateCommand,
  type UpdateCommandInput,
} from '@aws-sdk/lib-dynamodb';
import { unmarshall } from '@aws-sdk/util-dynamodb';
import type { ChunkStatus } from '../../../core/ledger/port.ts';
import { LedgerContentionError, LedgerThrottledError } from '../dynamo-errors.ts';
import { type Change, type Cond, Expr, type Item, updateExpression } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { chunkPk, chunkSk, counterSk, jobPk, PK, SK } from './schema.ts';
import type { LedgerTable } from './table.ts';

/** A refused condition comes back as the row as it is now (ALL_OLD), when there is one. */
export type WriteResult = { ok: true } | { ok: false; old: Item | undefined };

export interface StatusMove {
  from: ChunkStatus;
  to: ChunkStatus;
}

const RETRYABLE_REASONS = new Set([
  'TransactionConflict',
  'ThrottlingError',
  'ProvisionedThroughputExceeded',
]);

/**
 * One conditional update of a chunk row; with a status move, one transaction with the
 * counter ADD. A refused condition comes back as the row as it is now (ALL_OLD);
 * transaction conflicts and throttling are retried with backoff, up to the table's retry
 * attempts; every other error is thrown as the SDK gave it.
 */
export async function writeRow(
  t: LedgerTable,
  job: JobMeta,
  index: number,
  change: Change,
  condition: Cond,
  move?: StatusMove,
): Promise<WriteResult> {
  const x = new Expr();
  const update = {
    TableName: t.name,
    Key: { [PK]: chunkPk(job.spec.jobId, index, job.partitions), [SK]: chunkSk(index) },
    UpdateExpression: updateExpression(change, x),
    ConditionExpression: condition(x),
    ExpressionAttributeNames: x.names,
    ExpressionAttributeValues: x.values,
    ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
  } satisfies UpdateCommandInput;

  const counted = move !== undefined && move.from !== move.to;
  const what = counted ? `${move.from}→${move.to}` : 'update';
  for (let attempt = 1; ; attempt++) {
    try {
      if (!counted) {
        await t.doc.send(new UpdateCommand(update));
      } else {
        await t.doc.send(
          new TransactWriteCommand({
            TransactItems: [{ Update: update }, { Update: counterUpdate(t, job, move) }],
          }),
        );
      }
      return { ok: true };
    } catch (e) {
      if (e instanceof ConditionalCheckFailedException) {
        return { ok: false, old: e.Item && unmarshall(e.Item) };
      }
      const reason = cancellation(e);
      if (reason?.Code === 'ConditionalCheckFailed') {
        return { ok: false, old: reason.Item && unmarshall(reason.Item) };
      }
      const conflict =
        e instanceof TransactionConflictException || reason?.Code === 'TransactionConflict';
      if (!conflict && !(reason && RETRYABLE_REASONS.has(reason.Code ?? ''))) throw e;
      if (attempt >= t.retry.attempts) {
        throw conflict
          ? new LedgerContentionError(t.name, job.spec.jobId, what, attempt, { cause: e })
          : new LedgerThrottledError(t.name, what, attempt, { cause: e });
      }
      t.stats.retries++;
      await t.pause(attempt);
    }
  }
}

function counterUpdate(
  t: LedgerTable,
  job: JobMeta,
  move: StatusMove,
): UpdateCommandInput & { UpdateExpression: string } {
  // Random, not by chunk: workers cluster on shards, transitions should not.
  const k = Math.floor(Math.random() * job.shards);
  return {
    TableName: t.name,
    Key: { [PK]: jobPk(job.spec.jobId), [SK]: counterSk(k) },
    UpdateExpression: 'ADD #from :minus, #to :plus',
    ExpressionAttributeNames: { '#from': move.from, '#to': move.to },
    ExpressionAttributeValues: { ':minus': -1, ':plus': 1 },
  };
}

/** The chunk row's reason when a transaction was cancelled (it is always item 0). */
function cancellation(e: unknown): CancellationReason | undefined {
  if (!(e instanceof TransactionCanceledException)) return undefined;
  const reasons = e.CancellationReasons ?? [];
  return (
    reasons.find((r) => r.Code === 'ConditionalCheckFailed') ??
    reasons.find((r) => r.Code !== undefined && r.Code !== 'None')
  );
}
