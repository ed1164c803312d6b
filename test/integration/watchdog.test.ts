// The stall watchdog against real emulators: ledger counts from DynamoDB Local, status.json
// and progress.json in s3rver (or AWS_ENDPOINT_URL). Step Functions' execution list is a
// fake of the small runningExecutions port (the real ListExecutions adapter is tested with
// aws-sdk-client-mock in test/unit/stall.test.ts); the clock is passed in.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { MissingEnvError } from '../../adapters/aws/env.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import type { RunningExecution } from '../../adapters/aws/sfn-executions.ts';
import {
  type WatchdogDeps,
  watchdogDepsFromEnv,
  watchdogStep,
} from '../../adapters/aws/watchdog.ts';
import { KEYS } from '../../contracts/cloud.ts';
import { readStatus, writeStatus } from '../../core/cloud/index.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const MIN = 60_000;
let s3: S3Emulator;
let ddb: DynamoUnderTest;
let ledger: DynamoLedger;
let store: S3Store;
const published: number[] = [];
let executions: RunningExecution[] = [];
let deps: WatchdogDeps;

const suffix = Date.now().toString(16).slice(-10).padStart(10, '0');
const PROGRESSING = `progressing-${suffix}`;
const STUCK = `stuck-${suffix}`;
const FINISHED = `finished-${suffix}`;
const N = Date.UTC(2030, 0, 1, 12, 0, 0);

async function plan(jobId: string, chunks: number, done: number): Promise<void> {
  await ledger.createJob(
    { jobId, chunkCount: chunks, maxAttempts: 3, leaseMs: 60_000, createdAt: Date.now() },
    Array.from({ length: chunks }, (_, i) => ({ chunkId: `0_0_${i}`, index: i })),
  );
  await finish(jobId, done);
  await writeStatus(
    { bucketStore: store },
    { jobId, status: 'RUNNING', manifest: { bucket: 'b', key: `manifests/${jobId}.json` } },
  );
}

async function finish(jobId: string, n: number): Promise<void> {
  for (let k = 0; k < n; k++) await ledger.complete((await ledger.claim(jobId, 'w'))!);
}

async function progressOf(jobId: string): Promise<unknown> {
  const bytes = await store.get(`/${KEYS.progress(jobId)}`);
  return bytes ? JSON.parse(new TextDecoder().decode(bytes)) : undefined;
}

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3(), startDynamo()]);
  const bucket = uniqueBucketName('watchdog');
  await s3.createBucket(bucket);
  const table = await ddb.createTable();
  ledger = new DynamoLedger({ client: ddb.client, table });
  store = new S3Store({ client: s3.client, bucket });
  deps = {
    bucketStore: store,
    ledger,
    runningExecutions: async () => executions,
    stallMs: 60 * MIN,
    publishStalled: (n) => published.push(n),
  };
  await plan(PROGRESSING, 6, 2);
  await plan(STUCK, 4, 0);
  await plan(FINISHED, 3, 3);
  executions = [
    { name: PROGRESSING, startDate: new Date(N - 120 * MIN) },
    { name: STUCK, startDate: new Date(N - 90 * MIN) },
    { name: FINISHED, startDate: new Date(N - 300 * MIN) },
    // Started by hand under another name, and one whose Plan has not written rows yet.
    { name: 'adhoc-run', startDate: new Date(N - 500 * MIN) },
    { name: `unplanned-${suffix}`, startDate: new Date(N - 500 * MIN) },
  ];
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

describe('stall watchdog on S3 + DynamoDB', () => {
  it('flags the job with no finished chunk since its start, not the progressing or finished ones', async () => {
    const r = await watchdogStep(deps, { now: new Date(N) });
    expect(r).toEqual({ checked: 3, stalled: 1, stalledJobs: [STUCK], skipped: 2 });
    expect(published).toEqual([1]);
    expect((await readStatus({ bucketStore: store }, STUCK))?.stalled).toEqual({
      since: new Date(N - 90 * MIN).toISOString(),
      minutes: 90,
    });
    expect((await readStatus({ bucketStore: store }, PROGRESSING))?.stalled).toBeUndefined();
    expect((await readStatus({ bucketStore: store }, FINISHED))?.stalled).toBeUndefined();
    // First look at a job with finished chunks: its clock starts now.
    expect(await progressOf(PROGRESSING)).toEqual({
      jobId: PROGRESSING,
      finished: 2,
      at: new Date(N).toISOString(),
    });
    expect(await progressOf(STUCK)).toEqual({
      jobId: STUCK,
      finished: 0,
      at: new Date(N - 90 * MIN).toISOString(),
    });
  });

  it('a chunk finishing clears the flag; a job that stops moving is flagged from its last move', async () => {
    await finish(STUCK, 1);
    await finish(PROGRESSING, 1);
    const r = await watchdogStep(deps, { now: new Date(N + 70 * MIN) });
    expect(r.stalledJobs).toEqual([]);
    expect(published).toEqual([1, 0]);
    const stuck = await readStatus({ bucketStore: store }, STUCK);
    expect(stuck?.stalled).toBeUndefined();
    expect(stuck?.status).toBe('RUNNING');
    expect(await progressOf(STUCK)).toMatchObject({
      finished: 1,
      at: new Date(N + 70 * MIN).toISOString(),
    });

    // Nothing moves for 61 minutes: both unfinished jobs are stalled since N + 70 min;
    // the finished one never is.
    const later = await watchdogStep(deps, { now: new Date(N + 131 * MIN) });
    expect(later.stalledJobs.sort()).toEqual([PROGRESSING, STUCK].sort());
    expect(published).toEqual([1, 0, 2]);
    expect((await readStatus({ bucketStore: store }, PROGRESSING))?.stalled).toEqual({
      since: new Date(N + 70 * MIN).toISOString(),
      minutes: 61,
    });
  });

  it('its environment names the state machine, or it refuses to start', () => {
    expect(() =>
      watchdogDepsFromEnv({ TESSERA_TABLE: 't', TESSERA_BUCKET: 'b', AWS_REGION: 'us-east-1' }),
    ).toThrow(MissingEnvError);
    expect(() =>
      watchdogDepsFromEnv({
        TESSERA_TABLE: 't',
        TESSERA_BUCKET: 'b',
        TESSERA_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111122223333:stateMachine:x',
        TESSERA_STALL_MINUTES: 'soon',
      }),
    ).toThrow(/TESSERA_STALL_MINUTES must be a positive integer, got "soon"/);
    const d = watchdogDepsFromEnv({
      TESSERA_TABLE: 't',
      TESSERA_BUCKET: 'b',
      TESSERA_STATE_MACHINE_ARN: 'arn:aws:states:us-east-1:111122223333:stateMachine:x',
      TESSERA_STALL_MINUTES: '45',
      AWS_REGION: 'us-east-1',
    });
    expect(d.stallMs).toBe(45 * MIN);
  });
});
