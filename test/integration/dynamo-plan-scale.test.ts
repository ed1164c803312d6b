// The DynamoDB ledger's layout for large plans, against DynamoDB Local: chunk rows spread
// over P partition keys (schema.ts), planning split over index ranges (plan-range.ts), and
// jobs written in the one-key layout before partitions existed. Item counts per key are
// read with plain Queries, not through the adapter; the old-layout job is written item by
// item here, as the adapter used to write it.

import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedger, JOB_SK, PK, SK } from '../../adapters/aws/dynamo-ledger.ts';
import type { ChunkRef, ChunkRow, JobSpec } from '../../core/ledger/index.ts';
import { ledgerContract } from '../contract/ledger-contract.ts';
import { rangePlanContract } from '../contract/range-plan-contract.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';

const T0 = 1_700_000_000_000;

let ddb: DynamoUnderTest;
let doc: DynamoDBDocumentClient;
beforeAll(async () => {
  ddb = await startDynamo();
  doc = DynamoDBDocumentClient.from(ddb.client);
});
afterAll(async () => {
  await ddb?.stop();
});

const spec = (jobId: string, chunkCount: number): JobSpec => ({
  jobId,
  chunkCount,
  maxAttempts: 3,
  leaseMs: 10_000,
  createdAt: T0,
});

function* chunks(from: number, to: number): Generator<ChunkRef> {
  for (let i = from; i < to; i++) yield { chunkId: `c${i}`, index: i };
}

async function rows(ledger: DynamoLedger, jobId: string): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const r of ledger.list(jobId)) out.push(r);
  return out;
}

/** Chunk items (sk C#…) under one partition key, counted by the table itself. */
async function itemsUnder(table: string, pk: string): Promise<number> {
  let count = 0;
  let start: Record<string, unknown> | undefined;
  do {
    const out = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :c)',
        ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
        ExpressionAttributeValues: { ':pk': pk, ':c': 'C#' },
        Select: 'COUNT',
        ConsistentRead: true,
        ExclusiveStartKey: start,
      }),
    );
    count += out.Count ?? 0;
    start = out.LastEvaluatedKey;
  } while (start);
  return count;
}

/** Items per key ROWS#<jobId>#0..p-1, and under the one-key layout's JOB#<jobId>. */
async function perKey(
  table: string,
  jobId: string,
  p: number,
): Promise<{ keys: number[]; jobKey: number }> {
  const keys = await Promise.all(
    Array.from({ length: p }, (_, k) => itemsUnder(table, `ROWS#${jobId}#${k}`)),
  );
  return { keys, jobKey: await itemsUnder(table, `JOB#${jobId}`) };
}

/** A client whose every command passes through `hook` first. */
function instrumented(
  hook: (command: string, input: Record<string, unknown>) => void,
): DynamoDBClient {
  const client = ddb.newClient();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      hook(context.commandName ?? '?', args.input as Record<string, unknown>);
      return next(args);
    },
    { step: 'initialize', name: 'tesseraTestHook' },
  );
  return client;
}

rangePlanContract('DynamoLedger, one key per job', async () => ({
  ledger: new DynamoLedger({ client: ddb.client, table: await ddb.createTable() }),
}));

rangePlanContract('DynamoLedger, 3 rows per partition key', async () => ({
  ledger: new DynamoLedger({
    client: ddb.client,
    table: await ddb.createTable(),
    rowsPerPartition: 3,
  }),
}));

// The whole Ledger contract (claims, tenure, status-filtered listing, counts, sweep,
// rearm…) with every job of more than 2 chunks on several partition keys.
ledgerContract('DynamoLedger, 2 rows per partition key', async () => ({
  ledger: new DynamoLedger({
    client: ddb.client,
    table: await ddb.createTable(),
    rowsPerPartition: 2,
  }),
}));

describe('DynamoLedger chunk rows on P partition keys', () => {
  it('createJob of 10^4 rows at 1,000 rows per key puts exactly 1,000 on each of 10 keys', async () => {
    const table = await ddb.createTable();
    const ledger = new DynamoLedger({ client: ddb.client, table, rowsPerPartition: 1000 });
    const n = 10_000;
    expect((await ledger.createJob(spec('big', n), chunks(0, n))).created).toBe(true);
    expect(await perKey(table, 'big', 10)).toEqual({ keys: Array(10).fill(1000), jobKey: 0 });
    // Nothing past the 10th key.
    expect(await itemsUnder(table, 'ROWS#big#10')).toBe(0);
    const job = await doc.send(
      new GetCommand({ TableName: table, Key: { [PK]: 'JOB#big', [SK]: JOB_SK } }),
    );
    expect(job.Item?.partitions).toBe(10);
    const all = await rows(ledger, 'big');
    expect(all.map((r) => r.index)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(all.every((r) => r.chunkId === `c${r.index}` && r.status === 'PENDING')).toBe(true);
    expect(await ledger.counts('big')).toMatchObject({ PENDING: n, DONE: 0 });
  });

  it('jobs up to rowsPerPartition keep the one-key layout', async () => {
    const table = await ddb.createTable();
    const ledger = new DynamoLedger({ client: ddb.client, table, rowsPerPartition: 1000 });
    await ledger.createJob(spec('small', 1000), chunks(0, 1000));
    expect(await perKey(table, 'small', 1)).toEqual({ keys: [0], jobKey: 1000 });
  });

  it('each batch the planner sends spreads its 25 rows over 25 different keys', async () => {
    const table = await ddb.createTable();
    const perBatch: number[] = [];
    const client = instrumented((cmd, input) => {
      if (cmd !== 'BatchWriteItemCommand') return;
      const reqs = Object.values(
        input.RequestItems as Record<string, { PutRequest: { Item: Record<string, unknown> } }[]>,
      )[0]!;
      const keys = new Set(reqs.map((r) => String(r.PutRequest.Item[PK])));
      perBatch.push(keys.size === reqs.length ? 1 : 0);
    });
    const ledger = new DynamoLedger({ client, table, rowsPerPartition: 40 });
    await ledger.createJob(spec('spread', 2000), chunks(0, 2000));
    expect(perBatch).toHaveLength(80);
    expect(perBatch.every((ok) => ok === 1)).toBe(true);
    client.destroy();
  });

  it('claims find every chunk of a job on 20 keys (4 claimers at once), and complete each', async () => {
    const table = await ddb.createTable();
    const n = 600;
    const planner = new DynamoLedger({ client: ddb.client, table, rowsPerPartition: 30 });
    await planner.createJob(spec('claimed', n), chunks(0, n));
    const done: number[] = [];
    await Promise.all(
      Array.from({ length: 4 }, async (_, w) => {
        const ledger = new DynamoLedger({ client: ddb.client, table });
        for (
          let c = await ledger.claim('claimed', `w${w}`, { startIndex: w });
          c;
          c = await ledger.claim('claimed', `w${w}`)
        ) {
          const beat = await ledger.heartbeat(c);
          await ledger.complete(beat);
          done.push(c.index);
        }
      }),
    );
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
    expect(await planner.counts('claimed')).toMatchObject({ DONE: n, PENDING: 0, RUNNING: 0 });
    expect((await perKey(table, 'claimed', 20)).keys).toEqual(Array(20).fill(30));
  }, 120_000);
});

describe('DynamoLedger range plans', () => {
  it('a range interrupted half-way and run again ends with exactly its rows', async () => {
    const table = await ddb.createTable();
    const n = 4000;
    const layout = { table, rowsPerPartition: 500 };
    await new DynamoLedger({ client: ddb.client, ...layout }).planRange(
      spec('r', n),
      { from: 0, to: 2000 },
      chunks(0, 2000),
    );
    let batches = 0;
    const crashing = instrumented((cmd) => {
      if (cmd === 'BatchWriteItemCommand' && ++batches > 30)
        throw new Error('planner Lambda timed out');
    });
    await expect(
      new DynamoLedger({ client: crashing, ...layout }).planRange(
        spec('r', n),
        { from: 2000, to: n },
        chunks(2000, n),
      ),
    ).rejects.toThrow('planner Lambda timed out');
    crashing.destroy();
    const half = (await perKey(table, 'r', 8)).keys.reduce((a, b) => a + b, 0);
    expect(half).toBeGreaterThan(2000);
    expect(half).toBeLessThan(n);

    const ledger = new DynamoLedger({ client: ddb.client, ...layout });
    // The interrupted range left no marker: the plan cannot be completed yet.
    await expect(ledger.completePlan('r')).rejects.toMatchObject({
      missing: [{ from: 2000, to: n }],
    });
    expect(await ledger.planRange(spec('r', n), { from: 2000, to: n }, chunks(2000, n))).toEqual({
      written: 2000,
      complete: false,
    });
    expect((await ledger.completePlan('r')).created).toBe(true);
    expect(await perKey(table, 'r', 8)).toEqual({ keys: Array(8).fill(500), jobKey: 0 });
    const all = await rows(ledger, 'r');
    expect(all.map((r) => `${r.index}:${r.chunkId}`)).toEqual(
      Array.from({ length: n }, (_, i) => `${i}:c${i}`),
    );
  });

  it('overlapping ranges on several ledgers at once leave each row once', async () => {
    const table = await ddb.createTable();
    const n = 3000;
    const ranges: [number, number][] = [
      [0, 1200],
      [1000, 2200],
      [2000, 3000],
      [500, 2500],
    ];
    await Promise.all(
      ranges.map(([from, to]) =>
        new DynamoLedger({ client: ddb.client, table, rowsPerPartition: 300 }).planRange(
          spec('o', n),
          { from, to },
          chunks(from, to),
        ),
      ),
    );
    const ledger = new DynamoLedger({ client: ddb.client, table });
    expect((await ledger.completePlan('o')).created).toBe(true);
    expect(await perKey(table, 'o', 10)).toEqual({ keys: Array(10).fill(300), jobKey: 0 });
    expect(await ledger.counts('o')).toMatchObject({ PENDING: n });
  });
});

describe('a job planned in the one-key layout (no partitions in its job row)', () => {
  it('still lists, claims, heartbeats, completes, fails and counts', async () => {
    const table = await ddb.createTable();
    const n = 6;
    // As the adapter wrote jobs before partitions: job row without `partitions`, rows under JOB#<id>.
    await doc.send(
      new PutCommand({
        TableName: table,
        Item: { [PK]: 'JOB#old', [SK]: JOB_SK, ...spec('old', n), shards: 2, planComplete: true },
      }),
    );
    await doc.send(
      new BatchWriteCommand({
        RequestItems: {
          [table]: Array.from({ length: n }, (_, i) => ({
            PutRequest: {
              Item: {
                [PK]: 'JOB#old',
                [SK]: `C#${String(i).padStart(10, '0')}`,
                gpk: `old#${i % 2}`,
                gsk: `P#${String(i).padStart(10, '0')}`,
                chunkId: `old-${i}`,
                index: i,
                status: 'PENDING',
                attempts: 0,
                token: 0,
                updatedAt: T0,
              },
            },
          })),
        },
      }),
    );
    const ledger = new DynamoLedger({ client: ddb.client, table, rowsPerPartition: 1 });
    expect((await rows(ledger, 'old')).map((r) => r.chunkId)).toEqual(
      Array.from({ length: n }, (_, i) => `old-${i}`),
    );
    const seen: string[] = [];
    for (let c = await ledger.claim('old', 'w'); c; c = await ledger.claim('old', 'w')) {
      seen.push(c.chunkId);
      const beat = await ledger.heartbeat(c);
      if (c.index === 3) await ledger.fail(beat, 'boom');
      else await ledger.complete(beat);
    }
    // Chunk 3 came back after its failure (attempts < maxAttempts), until it ran out.
    expect(new Set(seen)).toEqual(new Set(Array.from({ length: n }, (_, i) => `old-${i}`)));
    expect(await ledger.counts('old')).toMatchObject({ DONE: n - 1, FAILED: 1, PENDING: 0 });
    const row3 = await doc.send(
      new GetCommand({
        TableName: table,
        Key: { [PK]: 'JOB#old', [SK]: `C#${'3'.padStart(10, '0')}` },
      }),
    );
    expect(row3.Item?.status).toBe('FAILED');
    // No write went to a partitioned key.
    expect(await itemsUnder(table, 'ROWS#old#0')).toBe(0);
  });
});
