// The exact commands the DynamoDB ledger sends for its three kinds of row write, written
// out by hand from the protocol in core/ledger/port.ts and the layout in
// adapters/aws/dynamo/schema.ts: a claim (a counted move, so one transaction with a
// counter ADD), a heartbeat (status kept, so a plain UpdateItem) and sweep poisoning an
// expired lease. They pin what the adapter's split by concept must not change: the
// conditions built from named parts, their placeholders, the keys, the index moves and
// ALL_OLD on every conditional write. aws-sdk-client-mock stands in for DynamoDB: the
// emulator checks what a command does, not how it is spelled.

import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  DynamoDBDocumentClient,
  GetCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import type { Claim } from '../../core/ledger/index.ts';

const T0 = 1_700_000_000_000;
const LEASE_MS = 60_000;

const jobItem = {
  pk: 'JOB#j',
  sk: 'JOB',
  jobId: 'j',
  chunkCount: 8,
  maxAttempts: 3,
  leaseMs: LEASE_MS,
  createdAt: T0,
  shards: 4,
  planComplete: true,
};

function mocked() {
  const doc = DynamoDBDocumentClient.from(
    new DynamoDBClient({
      region: 'us-east-1',
      credentials: { accessKeyId: 'unit', secretAccessKey: 'unit' },
    }),
  );
  const mock = mockClient(doc);
  mock.on(GetCommand).resolves({ Item: jobItem });
  mock.on(UpdateCommand).resolves({});
  mock.on(TransactWriteCommand).resolves({});
  return { mock, ledger: new DynamoLedger({ client: doc, table: 't' }) };
}

describe('DynamoLedger commands', () => {
  beforeEach(() => {
    // The counter item of a counted move is picked at random: 0.5 of 4 shards is COUNT#2.
    vi.spyOn(Math, 'random').mockReturnValue(0.5);
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('claims a PENDING row: one Query of its shard from startIndex up to the expired leases, one transaction', async () => {
    const { mock, ledger } = mocked();
    mock.on(QueryCommand).resolves({
      Items: [
        {
          pk: 'JOB#j',
          sk: 'C#0000000005',
          gpk: 'j#1',
          gsk: 'P#0000000005',
          status: 'PENDING',
          attempts: 0,
          token: 0,
          chunkId: 'c5',
        },
      ],
    });

    const claim = await ledger.claim('j', 'w', { startIndex: 5, now: T0 });

    expect(claim).toMatchObject({ chunkId: 'c5', index: 5, token: 1, attempt: 1 });
    const queries = mock.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(queries).toEqual([
      {
        TableName: 't',
        IndexName: 'open',
        KeyConditionExpression: '#gpk = :v0 AND #gsk BETWEEN :v1 AND :v2',
        ExpressionAttributeNames: { '#gpk': 'gpk', '#gsk': 'gsk' },
        // 5 mod 4 = shard 1; the last lease key that expired before now - SKEW_MS (5 s).
        ExpressionAttributeValues: {
          ':v0': 'j#1',
          ':v1': 'P#0000000005',
          ':v2': 'R#0001699999994999',
        },
        Limit: 25,
      },
    ]);
    const writes = mock.commandCalls(TransactWriteCommand).map((c) => c.args[0].input);
    expect(writes).toEqual([
      {
        TransactItems: [
          {
            Update: {
              TableName: 't',
              Key: { pk: 'JOB#j', sk: 'C#0000000005' },
              UpdateExpression:
                'SET #status = :v0, #owner = :v1, #leaseExpiresAt = :v2, #gsk = :v3, ' +
                '#attempts = :v4, #token = :v5, #updatedAt = :v6',
              ConditionExpression:
                '(#status = :v7) AND ((#token = :v8) AND (#attempts = :v9)) AND (#attempts < :v10)',
              ExpressionAttributeNames: {
                '#status': 'status',
                '#owner': 'owner',
                '#leaseExpiresAt': 'leaseExpiresAt',
                '#gsk': 'gsk',
                '#attempts': 'attempts',
                '#token': 'token',
                '#updatedAt': 'updatedAt',
              },
              ExpressionAttributeValues: {
                ':v0': 'RUNNING',
                ':v1': 'w',
                ':v2': T0 + LEASE_MS,
                ':v3': 'R#0001700000060000',
                ':v4': 1,
                ':v5': 1,
                ':v6': T0,
                ':v7': 'PENDING',
                ':v8': 0,
                ':v9': 0,
                ':v10': 3,
              },
              ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
            },
          },
          {
            Update: {
              TableName: 't',
              Key: { pk: 'JOB#j', sk: 'COUNT#2' },
              UpdateExpression: 'ADD #from :minus, #to :plus',
              ExpressionAttributeNames: { '#from': 'PENDING', '#to': 'RUNNING' },
              ExpressionAttributeValues: { ':minus': -1, ':plus': 1 },
            },
          },
        ],
      },
    ]);
    expect(mock.commandCalls(UpdateCommand)).toHaveLength(0);
  });

  it('heartbeats with one plain UpdateItem: the lease and its index key move, the tenure is the condition', async () => {
    const { mock, ledger } = mocked();
    const claim: Claim = {
      jobId: 'j',
      chunkId: 'c5',
      index: 5,
      owner: 'w',
      token: 1,
      attempt: 1,
      leaseExpiresAt: T0 + LEASE_MS,
    };

    await ledger.heartbeat(claim, { now: T0 + 1000 });

    expect(mock.commandCalls(UpdateCommand).map((c) => c.args[0].input)).toEqual([
      {
        TableName: 't',
        Key: { pk: 'JOB#j', sk: 'C#0000000005' },
        UpdateExpression: 'SET #leaseExpiresAt = :v0, #gsk = :v1, #updatedAt = :v2',
        ConditionExpression:
          '(#status = :v3) AND (#owner = :v4) AND (#token = :v5) AND (#chunkId = :v6)',
        ExpressionAttributeNames: {
          '#leaseExpiresAt': 'leaseExpiresAt',
          '#gsk': 'gsk',
          '#updatedAt': 'updatedAt',
          '#status': 'status',
          '#owner': 'owner',
          '#token': 'token',
          '#chunkId': 'chunkId',
        },
        ExpressionAttributeValues: {
          ':v0': T0 + 1000 + LEASE_MS,
          ':v1': 'R#0001700000061000',
          ':v2': T0 + 1000,
          ':v3': 'RUNNING',
          ':v4': 'w',
          ':v5': 1,
          ':v6': 'c5',
        },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      },
    ]);
    expect(mock.commandCalls(TransactWriteCommand)).toHaveLength(0);
  });

  it('sweep poisons an expired lease at maxAttempts: it leaves the open index, pinned to the token it saw', async () => {
    const { mock, ledger } = mocked();
    const now = T0 + 1_000_000;
    mock
      .on(QueryCommand)
      .callsFake((input: { ExpressionAttributeValues: Record<string, string> }) =>
        input.ExpressionAttributeValues[':v0'] === 'j#1'
          ? {
              Items: [
                {
                  pk: 'JOB#j',
                  sk: 'C#0000000005',
                  status: 'RUNNING',
                  attempts: 3,
                  token: 3,
                  owner: 'w',
                  leaseExpiresAt: T0 + LEASE_MS,
                  chunkId: 'c5',
                },
              ],
            }
          : {},
      );

    expect(await ledger.sweep('j', { now })).toEqual({ expired: 0, failed: 1 });

    // Every shard's expired stretch: from the first lease key to the last one expired.
    const ranges = mock
      .commandCalls(QueryCommand)
      .map((c) => c.args[0].input.ExpressionAttributeValues);
    expect(ranges).toEqual(
      [0, 1, 2, 3].map((shard) => ({
        ':v0': `j#${shard}`,
        ':v1': 'R#0000000000000000',
        ':v2': 'R#0001700000994999',
      })),
    );
    const [write] = mock.commandCalls(TransactWriteCommand).map((c) => c.args[0].input);
    expect(write?.TransactItems?.[0]?.Update).toEqual({
      TableName: 't',
      Key: { pk: 'JOB#j', sk: 'C#0000000005' },
      UpdateExpression:
        'SET #status = :v0, #lastError = :v1, #updatedAt = :v2 REMOVE #leaseExpiresAt, #gpk, #gsk',
      ConditionExpression:
        '(#status = :v3) AND (#token = :v4) AND (#attempts >= :v5) AND (#leaseExpiresAt < :v6)',
      ExpressionAttributeNames: {
        '#status': 'status',
        '#lastError': 'lastError',
        '#updatedAt': 'updatedAt',
        '#leaseExpiresAt': 'leaseExpiresAt',
        '#gpk': 'gpk',
        '#gsk': 'gsk',
        '#attempts': 'attempts',
        '#token': 'token',
      },
      ExpressionAttributeValues: {
        ':v0': 'FAILED',
        ':v1': expect.stringContaining('poison'),
        ':v2': now,
        ':v3': 'RUNNING',
        ':v4': 3,
        ':v5': 3,
        ':v6': now - 5000,
      },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
    expect(write?.TransactItems?.[1]?.Update).toMatchObject({
      Key: { pk: 'JOB#j', sk: 'COUNT#2' },
      ExpressionAttributeNames: { '#from': 'RUNNING', '#to': 'FAILED' },
    });
  });
});
