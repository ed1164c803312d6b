// What the DynamoDB ledger writes per chunk, in requests and in write request units (WRU:
// one per 1 KB item write; two in a transaction; every change to the sparse "open" index
// is an index write too, and a change of its sort key is a delete plus an insert). A chunk
// row is well under 1 KB. Read by `tessera plan --cloud`; the write paths are:
//
//   plan       bulk-plan.ts   one PutItem (BatchWriteItem) of the row, with its open-index
//                             entry (gsk P#…)                        1 + 1 index      = 2
//   claim      claims.ts      PENDING→RUNNING: counted-writes.ts' transaction of the row
//                             and one counter (2 × 2), gsk P#… → R#… (2)              = 6
//   heartbeat  tenure.ts      the lease moves: one UpdateItem (1), gsk R#… → R#… (2)   = 3
//   complete   tenure.ts      RUNNING→DONE: the transaction (2 × 2), the index entry
//                             REMOVEd (1)                                              = 5
//
// A job's chunk rows are spread over partitionsFor(chunks) partition keys (schema.ts: one
// per ROWS_PER_PARTITION rows, row i on key i mod P), so planning writes P partitions.

import type { LedgerWriteModel } from '../../../core/pipeline/cloud-figures.ts';
import { partitionsFor, ROWS_PER_PARTITION } from './schema.ts';

const TRANSACTION_ITEM_WRU = 2;
const INDEX_MOVE_WRU = 2;

export const DYNAMO_LEDGER_WRITES: LedgerWriteModel = {
  plan: { requests: 1, units: 1 + 1, partitionUnits: 1 },
  claim: { requests: 1, units: 2 * TRANSACTION_ITEM_WRU + INDEX_MOVE_WRU },
  heartbeat: { requests: 1, units: 1 + INDEX_MOVE_WRU },
  complete: { requests: 1, units: 2 * TRANSACTION_ITEM_WRU + 1 },
  planPartitions: (chunks) => partitionsFor(chunks),
  layout: `chunk rows on one partition key per ${ROWS_PER_PARTITION.toLocaleString('en-US')} rows`,
};
