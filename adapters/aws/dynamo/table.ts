// One ledger table as the adapter's parts share it: the client, the table's name, its
// item parsers, the backoff of the adapter's own retries and the counters they feed.

import {
  type DynamoDBDocumentClient,
  QueryCommand,
  type QueryCommandInput,
} from '@aws-sdk/lib-dynamodb';
import type { Item } from './expressions.ts';
import { Items } from './items.ts';

/** Counters for tuning and benchmarks; not part of the port. */
export interface DynamoLedgerStats {
  /** Successful claims. */
  claims: number;
  /** Claim writes refused because another claimer (or a stale index) got there first. */
  conflicts: number;
  /** GSI pages read while looking for work. */
  pages: number;
  /** Rows made FAILED on the claim path or by sweep. */
  poisoned: number;
  /** Transactions retried after TransactionConflict or throttling. */
  retries: number;
  /** BatchWriteItem calls repeated for UnprocessedItems. */
  batchRetries: number;
}

export interface RetryPolicy {
  attempts: number;
  baseMs: number;
  capMs: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class LedgerTable {
  readonly items: Items;

  constructor(
    readonly doc: DynamoDBDocumentClient,
    readonly name: string,
    readonly retry: RetryPolicy,
    readonly stats: DynamoLedgerStats,
  ) {
    this.items = new Items(name);
  }

  /** Waits before retry `attempt` + 1 of one of the adapter's own retry loops. */
  pause(attempt: number): Promise<void> {
    // Full jitter: colliding writers spread out instead of colliding again in lockstep.
    const cap = Math.min(this.retry.capMs, this.retry.baseMs * 2 ** (attempt - 1));
    return sleep(Math.random() * cap);
  }

  /** Every item a Query matches, page after page. */
  async *query(input: Omit<QueryCommandInput, 'TableName'>): AsyncGenerator<Item> {
    const q: QueryCommandInput = { TableName: this.name, ...input };
    for (;;) {
      const out = await this.doc.send(new QueryCommand(q));
      yield* out.Items ?? [];
      if (!out.LastEvaluatedKey) return;
      q.ExclusiveStartKey = out.LastEvaluatedKey;
    }
  }
}
