// `tessera status --cloud` (the CLI in a child process) shows what Verify and the stall
// watchdog wrote into status.json: failed Batch workers and the stall flag, in the text
// report and in --json. Ledger in DynamoDB Local, bucket in s3rver; status.json is
// written by verifyStep (Batch's answer from an in-memory fake of its workFailures port:
// no Batch emulator exists) and watchdogStep (a fake list of running executions).

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { watchdogStep } from '../../adapters/aws/watchdog.ts';
import type { JobStatus } from '../../cli/job-status.ts';
import { KEYS, type WorkerFailure } from '../../contracts/cloud.ts';
import { type CloudDeps, verifyStep, writeStatus } from '../../core/cloud/index.ts';
import { emulatorChildEnv } from '../helpers/child-env.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const run = promisify(execFile);
const MIN = 60_000;
const suffix = Date.now().toString(16).slice(-10).padStart(10, '0');
const FAILING = `oom-${suffix}`;
const QUIET = `quiet-${suffix}`;
const OOM_CHILD = {
  batchJobId: 'arr-1:3',
  index: 3,
  statusReason: 'Essential container in task exited',
  exitCode: 137,
  reason: 'OutOfMemoryError: Container killed due to memory usage',
  logStream: 'worker/default/abc',
};

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let bucket: string;
let table: string;
let deps: CloudDeps;
const startedAt = new Date(Date.now() - 75 * MIN);

async function planned(jobId: string): Promise<void> {
  await deps.ledger.createJob(
    { jobId, chunkCount: 4, maxAttempts: 3, leaseMs: 60_000, createdAt: Date.now() },
    Array.from({ length: 4 }, (_, i) => ({ chunkId: `0_0_${i}`, index: i })),
  );
  const manifest = {
    version: 1,
    name: jobId.replace(/-[0-9a-f]{10}$/, ''),
    input: { url: `s3://${bucket}/raw.zarr` },
    output: {
      url: `s3://${bucket}/outputs/${jobId}.zarr`,
      dtype: 'float32',
      blockShape: [8, 16, 16],
    },
    model: { url: `s3://${bucket}/models/tiny.onnx`, patchShape: [8, 12, 12], outputChannels: 2 },
    overlap: [2, 4, 4],
    blend: 'bump',
    chunkShape: [8, 16, 16],
    compute: { device: 'cpu', maxWorkers: 4, spot: true },
  };
  await deps.bucketStore.set(
    `/${KEYS.jobManifest(jobId)}`,
    new TextEncoder().encode(JSON.stringify({ jobId, manifest })),
  );
  await writeStatus(deps, {
    jobId,
    status: 'PLANNED',
    manifest: { bucket, key: `manifests/${jobId}.json` },
  });
}

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3(), startDynamo()]);
  bucket = uniqueBucketName('status');
  await s3.createBucket(bucket);
  table = await ddb.createTable();
  const ledger = new DynamoLedger({ client: ddb.client, table });
  deps = {
    ...cloudDeps(
      {
        table,
        bucket,
        allowedBuckets: [],
        stateMachineArn: undefined,
        maxChunks: undefined,
        maxRounds: 3,
      },
      { s3: s3.client, ledger },
    ),
    workFailures: async () => ({ failed: 1, described: [OOM_CHILD] }),
  };
  await planned(FAILING);
  await planned(QUIET);
  // Round 1's array job failed: Verify reads why and records it.
  await verifyStep(deps, {
    jobId: FAILING,
    round: 1,
    batch: {
      Error: 'States.TaskFailed',
      Cause: JSON.stringify({ JobId: 'arr-1', Status: 'FAILED' }),
    },
  });
  await verifyStep(deps, {
    jobId: QUIET,
    round: 1,
    batch: { JobId: 'arr-2', Status: 'SUCCEEDED' },
  });
  // 75 minutes since the start and nothing finished: the watchdog marks FAILING stalled.
  // QUIET has a chunk finished just now, so it is not.
  await ledger.complete((await ledger.claim(QUIET, 'w'))!);
  const r = await watchdogStep(
    {
      bucketStore: new S3Store({ client: s3.client, bucket }),
      ledger,
      runningExecutions: async () => [
        { name: FAILING, startDate: startedAt },
        { name: QUIET, startDate: startedAt },
      ],
      stallMs: 60 * MIN,
      publishStalled: () => {},
    },
    { now: new Date(startedAt.getTime() + 75 * MIN) },
  );
  expect(r.stalledJobs).toEqual([FAILING]);
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

async function status(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const env: NodeJS.ProcessEnv = {
    ...emulatorChildEnv(s3, ddb),
  };
  delete env.TESSERA_BUCKET;
  delete env.TESSERA_TABLE;
  try {
    const r = await run(process.execPath, [BIN, 'status', ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('tessera status --cloud: Batch failures and the stall flag', () => {
  it('--json carries workerFailures and stalled from status.json', async () => {
    const r = await status(FAILING, '--cloud', '--table', table, '--bucket', bucket, '--json');
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as JobStatus;
    const expected: WorkerFailure[] = [{ round: 1, ...OOM_CHILD }];
    expect(s.workerFailures).toEqual(expected);
    expect(s.stalled).toEqual({ since: startedAt.toISOString(), minutes: 75 });

    const quiet = JSON.parse(
      (await status(QUIET, '--cloud', '--table', table, '--bucket', bucket, '--json')).stdout,
    ) as JobStatus;
    expect(quiet.chunks.DONE).toBe(1);
    expect('workerFailures' in quiet).toBe(false);
    expect('stalled' in quiet).toBe(false);
  });

  it('the text report has a line per failed worker and the stall warning', async () => {
    const r = await status(FAILING, '--cloud', '--table', table, '--bucket', bucket);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines).toContain(
      'batch      round 1 · arr-1:3 · Essential container in task exited · ' +
        'OutOfMemoryError: Container killed due to memory usage · exit 137 · log worker/default/abc',
    );
    expect(
      lines.find((l) => l.startsWith('STALLED ')),
      r.stdout,
    ).toMatch(
      new RegExp(
        `^STALLED {4}no chunk finished for 75 min \\(since ${startedAt.toISOString().replace(/\./g, '\\.')}\\)`,
      ),
    );
    const quiet = await status(QUIET, '--cloud', '--table', table, '--bucket', bucket);
    expect(quiet.stdout).not.toMatch(/^(STALLED|batch) /m);
  });
});
