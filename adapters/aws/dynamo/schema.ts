// The ledger table's layout: its keys, its sparse "open" index and how each item is keyed.
// The CDK stack (cdk/constructs/storage.ts) declares the same table from these names.
//
// One on-demand table; per job, its job row and counters, and its chunk rows on
// `partitions` partition keys (P, recorded in the job row):
//
//   pk = JOB#<jobId>   sk = JOB               the spec + shards + partitions + planComplete
//                      sk = COUNT#<k>         k < shards: per-status deltas (ADD)
//                      sk = PLAN#<from>#<to>  a range planned by planRange (plan-range.ts)
//                      sk = C#<index:10>      a chunk row, when P = 1 (status, owner, lease…)
//   pk = ROWS#<jobId>#<index mod P>           a chunk row, when P > 1
//                      sk = C#<index:10>
//   pk = OUT#<sha256(url)>  sk = OUT             an output claim: {url, jobId} (claimOutput)
//
// Why P: one partition key takes at most 1,000 WCU/s, so a planner writing 10^7 rows
// under one key needs ≥ 10^4 s, past Lambda's 900 s. With row i under key i mod P, any
// run of consecutive indices (a batch, a planner's range) spreads evenly over the P keys:
// the write rate each key sees is the planners' total ÷ P. P = 1 keeps the original
// layout, so a job planned before partitions existed (no `partitions` in its job row)
// reads as P = 1 and keeps working. ROWS# never begins like JOB#, and the key's last
// field is the partition, so no job id can make one job's key another's.
//
// GSI "open" (sparse, write-sharded): only PENDING and RUNNING rows carry its keys;
// finishing a row (DONE, SKIPPED, FAILED) REMOVEs them, so looking for work never scans
// and never reads a finished row. Within a shard, the sort key puts claimable rows in
// one contiguous stretch:
//
//   gpk = <jobId>#<index mod shards>     (shards = 16, or one per chunk for tiny jobs)
//   gsk = P#<index:10>                   PENDING, in index order
//       | R#<leaseExpiresAt:16>          RUNNING, in expiry order
//
//   shard 3:  P#…0003  P#…0019  P#…0035 … | R#…1712 R#…1730 (expired) | R#…9050 (alive)
//             └─ one Query: gsk BETWEEN P#<entry> AND R#<now − SKEW_MS> ─┘
//
// so a claim reads candidates only (never live leases), an idle claim costs one empty
// Query per shard, and sweep reads exactly the expired leases. A heartbeat moves the
// row's index entry (its gsk changes with the lease): two index writes instead of one.

import { createHash } from 'node:crypto';
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';

export const PK = 'pk';
export const SK = 'sk';
export const OPEN_INDEX = 'open';
export const OPEN_PK = 'gpk';
export const OPEN_SK = 'gsk';
/** What a claimer needs to judge and claim a candidate without reading the base row. */
export const OPEN_PROJECTED = [
  'status',
  'leaseExpiresAt',
  'attempts',
  'token',
  'owner',
  'chunkId',
] as const;
export const JOB_SK = 'JOB';
/** gsk prefixes: PENDING rows by index, RUNNING rows by lease expiry ('P' < 'R'). */
export const OPEN_PENDING = 'P#';
export const OPEN_LEASE = 'R#';
export const DEFAULT_SHARDS = 16;
/** Zero-padding of chunk indices in sort keys, so string order is index order (< 10^10). */
export const INDEX_DIGITS = 10;
/** Zero-padding of epoch-ms lease expiries in gsk (< 10^16 ms, year 318857). */
export const LEASE_DIGITS = 16;

export const CHUNK_PREFIX = 'C#';
export const OUTPUT_SK = 'OUT';
export const COUNTER_PREFIX = 'COUNT#';

const pad = (index: number): string => String(index).padStart(INDEX_DIGITS, '0');
export const jobPk = (jobId: string): string => `JOB#${jobId}`;
/** The partition key of partition `k` of a job's chunk rows (see the header). */
export const partitionPk = (jobId: string, k: number, partitions: number): string =>
  partitions <= 1 ? jobPk(jobId) : `ROWS#${jobId}#${k}`;
/** The partition key holding chunk row `index`. */
export const chunkPk = (jobId: string, index: number, partitions: number): string =>
  partitionPk(jobId, index % Math.max(1, partitions), partitions);
export const PLAN_RANGE_PREFIX = 'PLAN#';
/** The marker planRange writes once every row of [from, to) is written. */
export const planRangeSk = (from: number, to: number): string =>
  `${PLAN_RANGE_PREFIX}${pad(from)}#${pad(to)}`;
/** Hashed: an output URL may be longer than a partition key may be (2048 bytes). */
export const outputPk = (url: string): string =>
  `OUT#${createHash('sha256').update(url).digest('hex')}`;
export const chunkSk = (index: number): string => `${CHUNK_PREFIX}${pad(index)}`;
export const counterSk = (k: number): string => `${COUNTER_PREFIX}${k}`;
export const openPk = (jobId: string, shard: number): string => `${jobId}#${shard}`;
/** gsk of a PENDING row. */
export const pendingKey = (index: number): string => `${OPEN_PENDING}${pad(index)}`;
/** gsk of a RUNNING row; whole ms, so the string order is the numeric order. */
export const leaseKey = (leaseExpiresAt: number): string =>
  `${OPEN_LEASE}${String(Math.max(0, Math.floor(leaseExpiresAt))).padStart(LEASE_DIGITS, '0')}`;
/**
 * The last gsk of a lease that expired before `expiredBefore` (inclusive bound for
 * BETWEEN), or undefined when no lease can have. A fractional bound only widens the
 * range by under a millisecond; the claim's condition then decides exactly.
 */
export const lastExpiredKey = (expiredBefore: number): string | undefined => {
  const last = Math.ceil(expiredBefore) - 1;
  return last < 0 ? undefined : leaseKey(last);
};
export const LAST_PENDING_KEY = `${OPEN_PENDING}${'9'.repeat(INDEX_DIGITS)}`;

/**
 * Tiny jobs get one shard per chunk: a claimer never queries an empty shard, and with one
 * row per shard the claim order is exactly the port's (startIndex upward, wrapping).
 */
export const shardsFor = (chunkCount: number, max = DEFAULT_SHARDS): number =>
  Math.max(1, Math.min(max, chunkCount));

/**
 * Chunk rows per partition key. Ranges of PLAN_RANGE_ROWS rows (contracts/cloud.ts) are
 * planned in parallel by the state machine's PlanRanges Map, each at R rows/s; with P =
 * chunkCount / ROWS_PER_PARTITION a key sees about R × ROWS_PER_PARTITION / PLAN_RANGE_ROWS
 * = R / 10 writes/s while the ranges all run at once, and less once the Map's concurrency
 * caps them: far under 1,000 WCU/s for any R a planner reaches (bench plan-ledger, DynamoDB
 * Local: 10^6 rows over 40 keys at 3,186 rows/s, 80 writes/s a key).
 */
export const ROWS_PER_PARTITION = 25_000;
/** Enough for 2.5·10^7 chunks at ROWS_PER_PARTITION; a listing merges this many streams. */
export const MAX_PARTITIONS = 1_000;

/** Partition keys for a new job's chunk rows: 1 (the original layout) up to 25,000 chunks. */
export const partitionsFor = (chunkCount: number, rowsPerPartition = ROWS_PER_PARTITION): number =>
  Math.max(1, Math.min(MAX_PARTITIONS, Math.ceil(chunkCount / rowsPerPartition)));

/** The CreateTable input of the ledger table; the CDK stack declares the same. */
export function tableDefinition(table: string): CreateTableCommandInput {
  return {
    TableName: table,
    BillingMode: 'PAY_PER_REQUEST',
    AttributeDefinitions: [PK, SK, OPEN_PK, OPEN_SK].map((AttributeName) => ({
      AttributeName,
      AttributeType: 'S',
    })),
    KeySchema: [
      { AttributeName: PK, KeyType: 'HASH' },
      { AttributeName: SK, KeyType: 'RANGE' },
    ],
    GlobalSecondaryIndexes: [
      {
        IndexName: OPEN_INDEX,
        KeySchema: [
          { AttributeName: OPEN_PK, KeyType: 'HASH' },
          { AttributeName: OPEN_SK, KeyType: 'RANGE' },
        ],
        Projection: { ProjectionType: 'INCLUDE', NonKeyAttributes: [...OPEN_PROJECTED] },
      },
    ],
  };
}
