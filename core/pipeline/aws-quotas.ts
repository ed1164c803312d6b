// AWS's own limits that a cloud job meets (not the stack's settings: those are cdk/knobs.ts
// and contracts/stack-sizing.ts). Hard limits unless the comment says a quota can be raised.
// The Batch array limit is MAX_FLEET in steps.ts, which the state machine's rounds use.

/** Lambda: longest invocation (seconds) and most memory (MiB) a function can be given. */
export const LAMBDA_MAX_TIMEOUT_S = 900;
export const LAMBDA_MAX_MEMORY_MIB = 10_240;

/** Step Functions (standard): input/output of a task, state or execution, UTF-8 bytes. */
export const SFN_MAX_PAYLOAD_BYTES = 262_144;
/** Step Functions (standard): events in one execution's history; the execution fails past it. */
export const SFN_MAX_HISTORY_EVENTS = 25_000;
/** Distributed Map: child executions running at once (MaxConcurrency's ceiling). */
export const MAP_MAX_CONCURRENCY = 10_000;
/** Distributed Map ItemReader: the largest JSON file of items it reads from S3. */
export const ITEM_READER_MAX_BYTES = 10 * 1e9;

/** DynamoDB: write units per second one partition (one partition key's items) accepts. */
export const DYNAMO_PARTITION_WCU = 1_000;
/**
 * DynamoDB on demand: write units per second a new table serves before it has scaled
 * (its initial warm throughput); more needs warm throughput set on the table.
 */
export const DYNAMO_NEW_TABLE_WRU = 4_000;

/** Step Functions: items States.ArrayRange may produce (the plan's range starts). */
export const SFN_ARRAY_RANGE_MAX_ITEMS = 1_000;
