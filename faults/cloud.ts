// The cloud lab of the fault matrix: s3rver and DynamoDB Local on loopback, one bucket
// holding the input volume and the model, the cloud steps in-process (plan, verify,
// blend, finalize) and real `tessera worker` processes, each optionally behind its own
// fault-injecting proxies. Jobs are checked chunk by chunk against the whole-volume
// reference.

import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { registerS3 } from '../adapters/aws/clients.ts';
import { cloudDeps } from '../adapters/aws/deps.ts';
import { DynamoLedger } from '../adapters/aws/dynamo-ledger.ts';
import { S3Store } from '../adapters/aws/s3-store.ts';
import type { BlendItem, ManifestLocation } from '../contracts/cloud.ts';
import {
  blendStep,
  type CloudDeps,
  finalizeStep,
  loadCloudJob,
  planFromManifest,
  verifyStep,
} from '../core/cloud/index.ts';
import { Box, type Vec3 } from '../core/geometry/index.ts';
import type { ChunkRow } from '../core/ledger/index.ts';
import { openOutputVolume } from '../core/volume/index.ts';
import { writeZarrArray } from '../core/volume/write-array.ts';
import { type DynamoUnderTest, startDynamo } from '../test/helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume, referenceFor } from '../test/helpers/job-dir.ts';
import {
  EMULATOR_CREDENTIALS,
  type S3Emulator,
  startS3,
  uniqueBucketName,
} from '../test/helpers/s3-emulator.ts';
import { type ChunkVerdict, compareChunks } from './compare.ts';
import { FaultProxy, type ProxyOptions } from './proxy.ts';

const BIN = new URL('../bin/tessera.js', import.meta.url).pathname;

/** The job every cloud scenario runs: 27 chunks of 4 patches, ~8 objects written per chunk. */
export const JOB = {
  shape: [16, 48, 48] as Vec3,
  patch: [8, 12, 12] as Vec3,
  overlap: [2, 4, 4] as Vec3,
  chunk: [12, 24, 24] as Vec3,
  block: [7, 12, 12] as Vec3,
  blend: 'gaussian' as const,
  model: 'realistic.onnx',
  channels: 2,
};

export const LEASE_MS = 3000;

export interface CloudLab {
  s3: S3Emulator;
  ddb: DynamoUnderTest;
  bucket: string;
  table: string;
  /** Direct (fault-free) dependencies for the in-process steps. */
  deps: CloudDeps;
  reference(blend?: 'gaussian' | 'bump' | 'constant'): Promise<Float32Array>;
  stop(): Promise<void>;
}

export async function startCloudLab(): Promise<CloudLab> {
  const [s3, ddb] = await Promise.all([startS3({ local: true }), startDynamo()]);
  const bucket = uniqueBucketName('faults');
  await s3.createBucket(bucket);
  const table = await ddb.createTable();
  registerS3(s3.client);
  const deps: CloudDeps = {
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
    leaseMs: LEASE_MS,
  };
  const data = lcgVolume(JOB.shape, 21);
  await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/input.zarr' }), {
    data,
    shape: [...JOB.shape],
    chunkShape: [8, 16, 16],
  });
  await deps.bucketStore.set(
    `/models/${JOB.model}`,
    new Uint8Array(readFileSync(join(FIXTURE_MODELS, JOB.model))),
  );
  const refs = new Map<string, Promise<Float32Array>>();
  return {
    s3,
    ddb,
    bucket,
    table,
    deps,
    reference(blend = JOB.blend) {
      let r = refs.get(blend);
      if (!r) {
        r = referenceFor({
          data,
          shape: JOB.shape,
          model: join(FIXTURE_MODELS, JOB.model),
          patchShape: JOB.patch,
          overlap: JOB.overlap,
          blend,
          outputChannels: JOB.channels,
        });
        refs.set(blend, r);
      }
      return r;
    },
    async stop() {
      await Promise.allSettled([s3.stop(), ddb.stop()]);
    },
  };
}

export function manifestFor(
  lab: CloudLab,
  name: string,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    version: 1,
    name,
    input: { url: `s3://${lab.bucket}/data/input.zarr` },
    output: {
      url: `s3://${lab.bucket}/outputs/${name}.zarr`,
      dtype: 'float32',
      blockShape: JOB.block,
    },
    model: {
      url: `s3://${lab.bucket}/models/${JOB.model}`,
      patchShape: JOB.patch,
      outputChannels: JOB.channels,
    },
    overlap: JOB.overlap,
    blend: JOB.blend,
    chunkShape: JOB.chunk,
    compute: { device: 'cpu', maxWorkers: 4, spot: true },
    maxAttempts: 3,
    ...extra,
  };
}

/** Uploads a manifest object; returns where it is (with the ETag a notification carries). */
export async function uploadManifest(
  lab: CloudLab,
  key: string,
  body: unknown,
): Promise<ManifestLocation & { eTag: string }> {
  const r = await lab.s3.client.send(
    new PutObjectCommand({ Bucket: lab.bucket, Key: key, Body: JSON.stringify(body) }),
  );
  return {
    bucket: lab.bucket,
    key,
    eTag: (r.ETag ?? '').replaceAll('"', ''),
    ...(r.VersionId ? { versionId: r.VersionId } : {}),
  };
}

export interface SubmittedJob {
  jobId: string;
  name: string;
  chunks: number;
  seamBlocks: number;
  blendItemsKey: string;
}

/** Uploads a manifest and runs the Plan step on it (what the state machine's first task does). */
export async function submitJob(
  lab: CloudLab,
  name: string,
  extra: Record<string, unknown> = {},
): Promise<SubmittedJob> {
  const loc = await uploadManifest(lab, `manifests/${name}.json`, manifestFor(lab, name, extra));
  const planned = await planFromManifest(lab.deps, loc);
  if (planned.kind !== 'planned') throw new Error(`not planned: ${planned.error.message}`);
  const r = planned.result;
  return {
    jobId: r.jobId,
    name,
    chunks: r.chunks,
    seamBlocks: r.seamBlocks,
    blendItemsKey: r.blendItemsKey,
  };
}

/** One JSON log line of `tessera worker`. */
export interface WorkerLine {
  type?: string;
  chunkId?: string;
  message?: string;
  level?: string;
  [k: string]: unknown;
}

export interface WorkerProc {
  readonly name: string;
  readonly child: ChildProcess;
  readonly lines: WorkerLine[];
  /** Raw stdout + stderr, for the secrets check and for diagnosing a failed scenario. */
  readonly raw: () => string;
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly proxies: FaultProxy[];
  onLine(cb: (l: WorkerLine) => void): void;
  kill(signal: NodeJS.Signals): void;
  alive(): boolean;
}

export interface SpawnOptions {
  name: string;
  /** Per-worker fault proxies (omit for direct connections). */
  s3?: Omit<ProxyOptions, 'service' | 'upstream'>;
  dynamodb?: Omit<ProxyOptions, 'service' | 'upstream'>;
  env?: NodeJS.ProcessEnv;
}

export function workerEnv(lab: CloudLab, s3: string, ddb: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    ...lab.ddb.childEnv,
    AWS_ENDPOINT_URL_DYNAMODB: ddb,
    AWS_ENDPOINT_URL_S3: s3,
    AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
    AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
    AWS_REGION: 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
    TESSERA_TABLE: lab.table,
    TESSERA_BUCKET: lab.bucket,
  };
}

export async function spawnWorker(
  lab: CloudLab,
  jobId: string,
  o: SpawnOptions,
): Promise<WorkerProc> {
  const proxies: FaultProxy[] = [];
  let s3 = lab.s3.endpoint;
  let ddb = lab.ddb.endpoint;
  if (o.s3) {
    const p = new FaultProxy({ ...o.s3, service: 's3', upstream: lab.s3.endpoint });
    s3 = await p.start();
    proxies.push(p);
  }
  if (o.dynamodb) {
    const p = new FaultProxy({ ...o.dynamodb, service: 'dynamodb', upstream: lab.ddb.endpoint });
    ddb = await p.start();
    proxies.push(p);
  }
  const child = spawn(
    process.execPath,
    [BIN, 'worker', '--job', jobId, '--threads', '1', '--batch', '2'],
    { env: { ...workerEnv(lab, s3, ddb), ...o.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const lines: WorkerLine[] = [];
  const listeners: ((l: WorkerLine) => void)[] = [];
  let raw = '';
  let partial = '';
  child.stdout!.on('data', (b: Buffer) => {
    const text = b.toString();
    raw += text;
    partial += text;
    const parts = partial.split('\n');
    partial = parts.pop() ?? '';
    for (const p of parts) {
      if (p.trim() === '') continue;
      let line: WorkerLine;
      try {
        line = JSON.parse(p) as WorkerLine;
      } catch (e) {
        if (!(e instanceof SyntaxError)) throw e;
        line = { type: 'text', message: p };
      }
      lines.push(line);
      for (const l of listeners) l(line);
    }
  });
  child.stderr!.on('data', (b: Buffer) => {
    raw += b.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => {
      for (const p of proxies) p.dropHeld();
      resolve({ code, signal });
    }),
  );
  return {
    name: o.name,
    child,
    lines,
    raw: () => raw,
    exit,
    proxies,
    onLine: (cb) => listeners.push(cb),
    kill: (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
    alive: () => child.exitCode === null && child.signalCode === null,
  };
}

/** Waits for the workers to exit (killing them after `ms`), then closes their proxies. */
export async function reap(workers: WorkerProc[], ms = 120_000): Promise<void> {
  const timer = setTimeout(() => {
    for (const w of workers) w.kill('SIGKILL');
  }, ms);
  await Promise.all(workers.map((w) => w.exit));
  clearTimeout(timer);
  await Promise.all(workers.flatMap((w) => w.proxies.map((p) => p.stop())));
}

export interface JobOutcome {
  /** SUCCEEDED, or what stopped it (verify FAILED/INCOMPLETE, an error of blend/finalize). */
  outcome: string;
  rows: ChunkRow[];
  chunks: ChunkVerdict[];
  /** Chunks not DONE at the end, or DONE with output that was never written. */
  lost: number;
  /** Chunks whose output differs from the reference (> 1e-5). */
  divergent: number;
  /** Chunks claimed more than once (the fencing token counts claims). */
  reclaimed: number;
  equal: boolean;
}

/** Verify, blend every item, finalize: the state machine's tail, in-process and fault-free. */
export async function finishJob(
  lab: CloudLab,
  job: SubmittedJob,
  deps: CloudDeps = lab.deps,
): Promise<string> {
  const verify = await verifyStep(deps, { jobId: job.jobId, round: 1 });
  if (verify.status !== 'COMPLETE') return `verify ${verify.status}: ${verify.reason ?? ''}`;
  const items = JSON.parse(
    new TextDecoder().decode(await deps.bucketStore.get(`/${job.blendItemsKey}`)),
  ) as BlendItem[];
  for (const item of items) await blendStep(deps, item);
  const fin = await finalizeStep(deps, { jobId: job.jobId });
  return fin.status;
}

export async function checkJob(
  lab: CloudLab,
  job: SubmittedJob,
  outcome: string,
  blend: 'gaussian' | 'bump' | 'constant' = JOB.blend,
): Promise<JobOutcome> {
  const rows: ChunkRow[] = [];
  for await (const r of lab.deps.ledger.list(job.jobId)) rows.push(r);
  const ctx = await loadCloudJob(lab.deps, job.jobId);
  const out = await openOutputVolume(
    new S3Store({ client: lab.s3.client, bucket: lab.bucket, prefix: `outputs/${job.name}.zarr` }),
  );
  const got = await out.readBox(Box.ofShape(JOB.shape));
  const chunks = compareChunks({
    plan: ctx.plan,
    rows,
    got: Float32Array.from(got.data),
    expected: await lab.reference(blend),
    channels: JOB.channels,
  });
  const lost = chunks.filter((c) => c.verdict === 'lost').length;
  const divergent = chunks.filter((c) => c.verdict === 'divergent').length;
  return {
    outcome,
    rows,
    chunks,
    lost,
    divergent,
    reclaimed: rows.filter((r) => r.token > 1).length,
    equal: lost === 0 && divergent === 0 && outcome === 'SUCCEEDED',
  };
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when `pred` holds (polled), or rejects after `ms`. */
export async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const t0 = Date.now();
  while (!pred()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(20);
  }
}
