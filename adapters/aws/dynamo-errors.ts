// Failures of the DynamoDB ledger adapter that a caller can act on, beyond the port's
// own (LeaseLostError, JobNotFoundError, ...). Each extends the core LedgerError, so
// `instanceof LedgerError` still catches every ledger failure. Errors the SDK throws
// (after its own retries) are never wrapped: only the adapter's own bounded retry loops
// end in these.

import { LedgerError } from '../../core/ledger/errors.ts';

/**
 * DynamoDB kept refusing a write for throughput (a cancelled transaction whose reason
 * was ThrottlingError or ProvisionedThroughputExceeded) after the adapter's retries.
 */
export class LedgerThrottledError extends LedgerError {
  override readonly name = 'LedgerThrottledError';
  constructor(
    readonly table: string,
    readonly operation: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(
      `DynamoDB table "${table}" throttled ${operation} ${attempts} times in a row; ` +
        'the table (or its "open" index) is short of write capacity. Raise its warm ' +
        'throughput or max on-demand throughput, or shrink the fleet, then retry',
      options,
    );
  }
}

/**
 * Transactions on the same counter item kept colliding (TransactionConflict) after the
 * adapter's retries: too many workers move chunks of one job at once for its counters.
 */
export class LedgerContentionError extends LedgerError {
  override readonly name = 'LedgerContentionError';
  constructor(
    readonly table: string,
    readonly jobId: string,
    readonly operation: string,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(
      `DynamoDB table "${table}": ${operation} in job "${jobId}" lost ${attempts} transaction ` +
        "conflicts in a row on the job's counter items; retry it, and create such jobs " +
        'with more shards (DynamoLedger option `shards`) so transitions spread over more counters',
      options,
    );
  }
}

/**
 * createJob could not get every chunk row written: BatchWriteItem kept returning
 * UnprocessedItems. The job row stays marked incomplete, so nothing claims from it and
 * calling createJob again with the same plan writes the rows still missing.
 */
export class BatchWriteIncompleteError extends LedgerError {
  override readonly name = 'BatchWriteIncompleteError';
  constructor(
    readonly table: string,
    readonly jobId: string,
    readonly unprocessed: number,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(
      `createJob "${jobId}" in DynamoDB table "${table}": ${unprocessed} chunk rows were still ` +
        `unprocessed after ${attempts} BatchWriteItem attempts (throttling). The job is not ` +
        'claimable yet; call createJob again with the same plan to write the missing rows, ' +
        "after raising the table's write throughput if this repeats",
      options,
    );
  }
}

/** An item in the ledger table does not have the shape this adapter writes. */
export class LedgerItemInvalidError extends LedgerError {
  override readonly name = 'LedgerItemInvalidError';
  constructor(
    readonly table: string,
    readonly key: { pk: string; sk: string },
    readonly field: string,
    readonly detail: string,
  ) {
    super(
      `DynamoDB table "${table}", item pk="${key.pk}" sk="${key.sk}": ${field} ${detail}. ` +
        'The table is shared with something else or was edited by hand; point the ledger at ' +
        'a table only Tessera writes',
    );
  }
}

/** A consistent BatchGetItem kept returning UnprocessedKeys (throttling) past the retries. */
export class BatchGetIncompleteError extends LedgerError {
  override readonly name = 'BatchGetIncompleteError';
  constructor(
    readonly table: string,
    readonly jobId: string,
    readonly unprocessed: number,
    readonly attempts: number,
  ) {
    super(
      `reading ${unprocessed} chunk row(s) of job "${jobId}" from DynamoDB table "${table}": still ` +
        `unprocessed after ${attempts} BatchGetItem attempts (throttling); the caller retries ` +
        "later; raise the table's read throughput if this repeats",
    );
  }
}
