// `tessera worker --job <id>`'s exit code, which Batch's retry strategy reads: a worker
// stopped by SIGTERM (a Spot reclaim, a scale-in) exits WORKER_EXIT.interrupted after
// releasing its chunks unspent, whether it was inferring or idle; one that runs out of
// work exits 0. Real processes (the container command) against DynamoDB Local and
// s3rver, or the environment's endpoint when AWS_ENDPOINT_URL is set.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerS3 } from '../../adapters/aws/clients.ts';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { WORKER_EXIT } from '../../contracts/cloud.ts';
import { type CloudDeps, planFromManifest } from '../../core/cloud/index.ts';
import type { Vec3 } from '../../core/geometry/index.ts';
import type { Claim } from '../../core/ledger/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { emulatorChildEnv } from '../helpers/child-env.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume } from '../helpers/job-dir.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const SHAPE: Vec3 = [12, 20, 20];
const PATCH: Vec3 = [8, 12, 12];

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let bucket: string;
let table: string;
let deps: CloudDeps;

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3(), startDynamo()]);
  bucket = uniqueBucketName('worker-exit');
  await s3.createBucket(bucket);
  table = await ddb.createTable();
  // s3:// URLs in the manifest are opened through this client.
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
    leaseMs: 60_000,
  };
  await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/input.zarr' }), {
    data: lcgVolume(SHAPE, 5),
    shape: [...SHAPE],
    chunkShape: [6, 10, 10],
  });
  await new S3Store({ client: s3.client, bucket }).set(
    '/models/realistic.onnx',
    new Uint8Array(readFileSync(join(FIXTURE_MODELS, 'realistic.onnx'))),
  );
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

function workerEnv(): NodeJS.ProcessEnv {
  return {
    ...emulatorChildEnv(s3, ddb),
    TESSERA_TABLE: table,
    TESSERA_BUCKET: bucket,
  };
}

/** Plans a job of small chunks (2 × 2 × 2 of them) and returns its id. */
async function planned(name: string): Promise<{ jobId: string; chunks: number }> {
  const key = `manifests/${name}.json`;
  const body = JSON.stringify({
    version: 1,
    name,
    input: { url: `s3://${bucket}/data/input.zarr` },
    output: { url: `s3://${bucket}/outputs/${name}.zarr`, dtype: 'float32' },
    model: { url: `s3://${bucket}/models/realistic.onnx`, patchShape: PATCH, outputChannels: 2 },
    overlap: [2, 4, 4],
    blend: 'gaussian',
    chunkShape: [6, 8, 8],
    compute: { device: 'cpu', maxWorkers: 1, spot: true },
  });
  const put = await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
  const outcome = await planFromManifest(deps, {
    bucket,
    key,
    ...(put.VersionId ? { versionId: put.VersionId } : {}),
  });
  if (outcome?.kind !== 'planned')
    throw new Error(`not planned: ${outcome?.kind === 'rejected' ? outcome.error.message : ''}`);
  return { jobId: outcome.result.jobId, chunks: outcome.result.chunks };
}

function startWorker(jobId: string) {
  const child = spawn(process.execPath, [BIN, 'worker', '--job', jobId], {
    env: workerEnv(),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let err = '';
  child.stdout.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter(Boolean)));
  child.stderr.on('data', (b: Buffer) => (err += b));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  const seen = async (text: string, timeoutMs = 60_000): Promise<void> => {
    const t0 = Date.now();
    while (!lines.some((l) => l.includes(text))) {
      if (Date.now() - t0 > timeoutMs || child.exitCode !== null)
        throw new Error(`worker never logged ${text}:\n${lines.join('\n')}\n${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };
  return { exit, seen, lines, kill: (s: NodeJS.Signals) => child.kill(s), stderr: () => err };
}

describe('tessera worker exit codes', () => {
  it('SIGTERM while inferring: releases its chunks unspent and exits WORKER_EXIT.interrupted', async () => {
    const { jobId } = await planned('term-busy');
    const w = startWorker(jobId);
    await w.seen('"claimed"');
    w.kill('SIGTERM');
    const killedAt = Date.now();
    const { code, signal } = await w.exit;
    expect({ code, signal }, w.stderr()).toEqual({ code: WORKER_EXIT.interrupted, signal: null });
    expect(Date.now() - killedAt).toBeLessThan(30_000); // Batch's grace period
    expect(w.lines.some((l) => l.includes('"released"'))).toBe(true);
    expect((await deps.ledger.counts(jobId)).RUNNING).toBe(0);
    for await (const row of deps.ledger.list(jobId)) expect(row.attempts, row.chunkId).toBe(0);
  });

  it('SIGTERM while idle (every chunk held elsewhere) exits WORKER_EXIT.interrupted too', async () => {
    const { jobId, chunks } = await planned('term-idle');
    // Another owner holds every chunk under a live lease: nothing to claim, but RUNNING
    // chunks elsewhere keep the worker polling instead of leaving.
    const held: Claim[] = [];
    for (let i = 0; i < chunks; i++) {
      const c = await deps.ledger.claim(jobId, 'elsewhere');
      if (c) held.push(c);
    }
    expect(held.length).toBe(chunks);
    const w = startWorker(jobId);
    await w.seen('joined the job');
    // Past the first claim attempt, into the idle poll.
    await new Promise((r) => setTimeout(r, 1500));
    expect(w.lines.some((l) => l.includes('"claimed"'))).toBe(false);
    w.kill('SIGTERM');
    const { code, signal } = await w.exit;
    expect({ code, signal }, w.stderr()).toEqual({ code: WORKER_EXIT.interrupted, signal: null });
    // The other owner's chunks are untouched.
    for await (const row of deps.ledger.list(jobId))
      expect({ status: row.status, owner: row.owner, attempts: row.attempts }).toEqual({
        status: 'RUNNING',
        owner: 'elsewhere',
        attempts: 1,
      });
  });

  it('no work left: exits 0', async () => {
    const { jobId, chunks } = await planned('no-work');
    for (let i = 0; i < chunks; i++) {
      const c = await deps.ledger.claim(jobId, 'earlier-worker');
      if (!c) throw new Error('expected a claimable chunk');
      await deps.ledger.complete(c);
    }
    const w = startWorker(jobId);
    const { code, signal } = await w.exit;
    expect({ code, signal }, w.stderr()).toEqual({ code: 0, signal: null });
    expect(w.lines.some((l) => l.includes('"claimed"'))).toBe(false);
    expect(w.lines.some((l) => l.includes('worker finished'))).toBe(true);
  });
});
