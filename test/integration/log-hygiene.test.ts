// Secrets never reach the logs, and neither does voxel data. Real `tessera worker`
// processes run against s3rver and DynamoDB Local with credentials in their environment
// (the secret key that signs every request, and a session token), through their noisy
// paths: retried 5xx, chunks that fail (NaN model), input reads refused with 403, a job
// that does not exist. Then `tessera run` locally, with the same credentials exported and
// a poison chunk. Everything they print on stdout and stderr is checked.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerS3 } from '../../adapters/aws/clients.ts';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { type CloudDeps, planFromManifest } from '../../core/cloud/index.ts';
import type { Vec3 } from '../../core/geometry/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { FaultProxy } from '../../faults/proxy.ts';
import { Rng } from '../../faults/rng.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume, tempDir, writeJobDir } from '../helpers/job-dir.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const SHAPE: Vec3 = [12, 32, 32];
/** s3rver accepts only this key pair, so this is the secret that signs every request. */
const SECRET_KEY = 'S3RVER';
/** A distinctive session token: the SDK sends it in a header, emulators ignore it. */
const SESSION_TOKEN = `TesseraSessionToken${randomBytes(12).toString('hex')}`;
/** Longest line a worker may print: a lost error message, not a buffer dump. */
const MAX_LINE = 2000;
/** Sixteen numbers in a row (comma or space separated) is an array, not a message. */
const NUMBER_RUN = /(?:-?\d+(?:\.\d+)?(?:e[-+]?\d+)?[,\s]+){15}-?\d/i;

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let bucket: string;
let table: string;
let deps: CloudDeps;
const transcripts: { name: string; text: string }[] = [];

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3({ local: true }), startDynamo()]);
  bucket = uniqueBucketName('logs');
  await s3.createBucket(bucket);
  table = await ddb.createTable();
  registerS3(s3.client);
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
      { s3: s3.client, ledger: new DynamoLedger({ client: ddb.client, table }) },
    ),
    leaseMs: 5000,
  };
  await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/in.zarr' }), {
    data: lcgVolume(SHAPE, 4),
    shape: [...SHAPE],
    chunkShape: [6, 16, 16],
  });
  for (const m of ['tiny.onnx', 'nan.onnx'])
    await deps.bucketStore.set(
      `/models/${m}`,
      new Uint8Array(readFileSync(join(FIXTURE_MODELS, m))),
    );
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

async function plan(name: string, model: string): Promise<string> {
  const body = {
    version: 1,
    name,
    input: { url: `s3://${bucket}/data/in.zarr` },
    output: { url: `s3://${bucket}/outputs/${name}.zarr`, dtype: 'float32' },
    model: { url: `s3://${bucket}/models/${model}`, patchShape: [6, 10, 10], outputChannels: 2 },
    overlap: [2, 2, 2],
    blend: 'bump',
    chunkShape: [12, 16, 16],
    maxAttempts: 1,
  };
  const key = `manifests/${name}.json`;
  await s3.client.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(body) }),
  );
  const outcome = await planFromManifest(deps, { bucket, key });
  if (outcome.kind !== 'planned') throw new Error(outcome.error.message);
  return outcome.result.jobId;
}

function credentialsEnv(): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    AWS_REGION: 'us-east-1',
    AWS_ACCESS_KEY_ID: 'S3RVER',
    AWS_SECRET_ACCESS_KEY: SECRET_KEY,
    AWS_SESSION_TOKEN: SESSION_TOKEN,
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

async function run(name: string, args: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  const child = spawn(process.execPath, [BIN, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout.on('data', (b: Buffer) => (text += b.toString()));
  child.stderr.on('data', (b: Buffer) => (text += b.toString()));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  transcripts.push({ name, text });
  return code;
}

async function worker(name: string, jobId: string, s3Proxy?: FaultProxy): Promise<number | null> {
  const s3Endpoint = s3Proxy ? await s3Proxy.start() : s3.endpoint;
  try {
    return await run(name, ['worker', '--job', jobId, '--threads', '1'], {
      ...credentialsEnv(),
      AWS_ENDPOINT_URL_S3: s3Endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint,
      TESSERA_TABLE: table,
      TESSERA_BUCKET: bucket,
    });
  } finally {
    await s3Proxy?.stop();
  }
}

function checkTranscript(t: { name: string; text: string }): void {
  expect(t.text.length, `${t.name} printed nothing`).toBeGreaterThan(0);
  expect(t.text.includes(SECRET_KEY), `${t.name} printed the secret access key`).toBe(false);
  expect(t.text.includes(SESSION_TOKEN), `${t.name} printed the session token`).toBe(false);
  expect(
    /authorization|x-amz-security-token|signature=/i.test(t.text),
    `${t.name} printed signing headers`,
  ).toBe(false);
  for (const line of t.text.split('\n')) {
    expect(
      line.length,
      `${t.name}: a ${line.length}-character line: ${line.slice(0, 200)}…`,
    ).toBeLessThanOrEqual(MAX_LINE);
    expect(NUMBER_RUN.test(line), `${t.name}: numbers dumped: ${line.slice(0, 200)}`).toBe(false);
  }
}

describe('log hygiene', () => {
  it('workers through retried 5xx, failing chunks, refused reads and a missing job print no secret and no voxels', async () => {
    const ok = await plan('logs-ok', 'tiny.onnx');
    const nan = await plan('logs-nan', 'nan.onnx');
    const denied = await plan('logs-denied', 'tiny.onnx');
    const flaky = new FaultProxy({
      service: 's3',
      upstream: s3.endpoint,
      random: { rng: new Rng(7), rate: 0.15, faults: ['server-error', 'slowdown', 'drop-after'] },
    });
    expect(await worker('worker with 5xx', ok, flaky)).toBe(0);
    expect(flaky.stats.faults['server-error'] + flaky.stats.faults.slowdown).toBeGreaterThan(0);
    expect(await worker('worker with a NaN model', nan)).toBe(0);
    const refusing = new FaultProxy({
      service: 's3',
      upstream: s3.endpoint,
      rule: (r) =>
        r.method === 'GET' && r.target.startsWith('data/in.zarr/c/') ? 'access-denied' : undefined,
    });
    // The input is read once at open (one stored chunk decoded): a refused input stops the
    // worker there, naming the key and the cause, before it claims anything (exit 1).
    expect(await worker('worker refused its input', denied, refusing)).toBe(1);
    expect(refusing.stats.faults['access-denied']).toBeGreaterThan(0);
    expect(await worker('worker for a missing job', 'no-such-job-0000000000')).not.toBe(0);
    // The noisy paths were taken: refused reads and NaN output reached the logs as failures.
    expect(transcripts.find((t) => t.name === 'worker refused its input')?.text).toMatch(
      /AccessDenied|403/,
    );
    expect(transcripts.find((t) => t.name === 'worker with a NaN model')?.text).toMatch(/NaN/);
    const failures = transcripts
      .flatMap((t) => t.text.split('\n'))
      .filter((l) => l.includes('"failed"'));
    expect(failures.length).toBeGreaterThan(0);
    for (const t of transcripts) checkTranscript(t);
  }, 240_000);

  it('a local run with credentials exported and a poison chunk prints no secret and no voxels', async () => {
    const t = tempDir();
    try {
      const data = Float32Array.from(lcgVolume(SHAPE, 2), (v) => v / 255);
      data[100] = Number.NaN;
      const path = await writeJobDir(t.dir, {
        shape: SHAPE,
        data,
        manifest: {
          model: {
            url: join(FIXTURE_MODELS, 'tiny.onnx'),
            patchShape: [6, 10, 10],
            outputChannels: 2,
          },
          overlap: [2, 2, 2],
          chunkShape: [12, 16, 16],
          blend: 'bump',
          maxAttempts: 1,
        },
      });
      const code = await run('tessera run', ['run', path, '--workers', '2'], credentialsEnv());
      expect(code).not.toBe(0);
      checkTranscript(transcripts[transcripts.length - 1]!);
    } finally {
      t.cleanup();
    }
  }, 120_000);
});
