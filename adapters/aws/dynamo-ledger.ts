// The DynamoDB ledger's public face, the module the rest of Tessera imports (deps, the
// CLI's status command, the CDK stack, faults, tests). The adapter itself lives in
// dynamo/, one concept a file: dynamo/ledger.ts says which holds what.

export {
  DynamoLedger,
  type DynamoLedgerOptions,
  type DynamoLedgerStats,
} from './dynamo/ledger.ts';
export {
  chunkPk,
  chunkSk,
  counterSk,
  DEFAULT_SHARDS,
  INDEX_DIGITS,
  JOB_SK,
  jobPk,
  LEASE_DIGITS,
  leaseKey,
  OPEN_INDEX,
  OPEN_LEASE,
  OPEN_PENDING,
  OPEN_PK,
  OPEN_PROJECTED,
  OPEN_SK,
  openPk,
  outputPk,
  PK,
  partitionPk,
  partitionsFor,
  pendingKey,
  ROWS_PER_PARTITION,
  SK,
  shardsFor,
  tableDefinition,
} from './dynamo/schema.ts';
