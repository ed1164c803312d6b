// The cloud's way back after a fix: `tessera retry <jobId> --cloud` re-arms a FAILED job's
// FAILED chunks in DynamoDB (Local), keeps its DONE chunks, and starts the state machine
// again as `<jobId>_r<n>` with the manifest version the job was planned from; the stall
// watchdog reads the job back from that name. Against s3rver and DynamoDB Local with the
// production clients; the state machine's StartExecution is the one faked port.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { RetryRefusedError, retryFailedJob } from '../../adapters/aws/retry-job.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import type { PipelineInput } from '../../contracts/cloud.ts';
import { executionName, jobIdOfExecution } from '../../contracts/executions.ts';
import { writeStatus } from '../../core/cloud/index.ts';
import type { ChunkRow } from '../../core/ledger/index.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let ledger: DynamoLedger;
let store: S3Store;

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3(), startDynamo()]);
  const bucket = uniqueBucketName('retry');
  await s3.createBucket(bucket);
  store = new S3Store({ client: s3.client, bucket });
  ledger = new DynamoLedger({ client: ddb.client, table: await ddb.createTable() });
}, 120_000);
afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

const MANIFEST = { bucket: 'stack-bucket', key: 'manifests/cells.json', versionId: 'v7' };

/** A job of 3 chunks, maxAttempts 1: chunk a DONE, b FAILED (poison), c PENDING. */
async function failedJob(jobId: string): Promise<Map<string, ChunkRow>> {
  await ledger.createJob(
    { jobId, chunkCount: 3, maxAttempts: 1, leaseMs: 60_000, createdAt: 1 },
    ['a', 'b', 'c'].map((chunkId, index) => ({ chunkId, index })),
  );
  const a = await ledger.claim(jobId, 'w', { startIndex: 0 });
  await ledger.complete(a!);
  const b = await ledger.claim(jobId, 'w', { startIndex: 1 });
  expect((await ledger.fail(b!, 'chunk b: the input chunk is truncated')).status).toBe('FAILED');
  await writeStatus(
    { bucketStore: store },
    { jobId, status: 'FAILED', manifest: MANIFEST, reason: '1 chunk(s) failed every attempt' },
  );
  return rows(jobId);
}

async function rows(jobId: string): Promise<Map<string, ChunkRow>> {
  const out = new Map<string, ChunkRow>();
  for await (const r of ledger.list(jobId)) out.set(r.chunkId, r);
  return out;
}

describe('tessera retry --cloud', () => {
  it('re-arms the FAILED chunks, keeps the DONE one, and runs the job again under a new name', async () => {
    const jobId = 'cells-0123456789';
    const before = await failedJob(jobId);
    const started: { name: string; input: PipelineInput }[] = [];
    const outcome = await retryFailedJob(
      {
        bucketStore: store,
        ledger,
        // An earlier retry holds `_r1`: the name after it is taken.
        startExecution: async (name, input) => {
          started.push({ name, input });
          return name.endsWith('_r1')
            ? { alreadyExists: true }
            : { alreadyExists: false, executionArn: `arn:aws:states:::execution:sm:${name}` };
        },
      },
      jobId,
    );
    expect(outcome).toMatchObject({ jobId, rearmed: 1, execution: `${jobId}_r2` });
    expect(started).toEqual([
      { name: `${jobId}_r1`, input: { manifest: MANIFEST } },
      { name: `${jobId}_r2`, input: { manifest: MANIFEST } },
    ]);
    const after = await rows(jobId);
    expect(after.get('b')).toMatchObject({ status: 'PENDING', attempts: 0 });
    expect(after.get('b')?.token).toBe(before.get('b')?.token);
    expect(after.get('a')).toMatchObject({ status: 'DONE', token: before.get('a')?.token });
    expect(after.get('c')).toMatchObject({ status: 'PENDING', attempts: 0 });
    expect(await ledger.counts(jobId)).toMatchObject({ DONE: 1, PENDING: 2, FAILED: 0 });
    const status = JSON.parse(
      new TextDecoder().decode(await store.get(`/jobs/${jobId}/status.json`)),
    ) as { status: string; executionArn?: string };
    expect(status).toMatchObject({
      status: 'RUNNING',
      executionArn: `arn:aws:states:::execution:sm:${jobId}_r2`,
    });
    // The stall watchdog reads the job back from the retry's name.
    expect(jobIdOfExecution(outcome.execution)).toBe(jobId);
  });

  it('refuses a job that is not FAILED, saying why, and changes nothing', async () => {
    const jobId = 'cells-abcdefabcd';
    await failedJob(jobId);
    await writeStatus({ bucketStore: store }, { jobId, status: 'RUNNING', manifest: MANIFEST });
    const start = async (): Promise<never> => {
      throw new Error('no execution may start');
    };
    const refused = retryFailedJob({ bucketStore: store, ledger, startExecution: start }, jobId);
    await expect(refused).rejects.toBeInstanceOf(RetryRefusedError);
    await expect(refused).rejects.toThrow(/is RUNNING, not FAILED/);
    expect(await ledger.counts(jobId)).toMatchObject({ FAILED: 1 });
    await expect(
      retryFailedJob({ bucketStore: store, ledger, startExecution: start }, 'nope-0000000000'),
    ).rejects.toThrow(/has no status/);
  });
});

describe('execution names', () => {
  it('are the job id, then <jobId>_r<n>; anything else names no job', () => {
    expect(executionName('cells-0123456789')).toBe('cells-0123456789');
    expect(executionName('cells-0123456789', 12)).toBe('cells-0123456789_r12');
    expect(jobIdOfExecution('cells-0123456789_r12')).toBe('cells-0123456789');
    expect(jobIdOfExecution('cells-0123456789')).toBe('cells-0123456789');
    expect(jobIdOfExecution('someone-elses-run')).toBeUndefined();
    expect(jobIdOfExecution('cells-0123456789_r0')).toBeUndefined();
    // Step Functions allows 80 characters: a 63-character name's retries still fit.
    expect(executionName(`${'a'.repeat(63)}-0123456789`, 99).length).toBeLessThanOrEqual(80);
  });
});
