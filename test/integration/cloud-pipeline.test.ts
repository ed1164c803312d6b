// The cloud data plane end to end against real emulators (s3rver, DynamoDB Local) or,
// with AWS_ENDPOINT_URL set, LocalStack or a real account: manifest uploaded → planner
// handler called with the S3 event → `tessera worker` processes (the container
// command) → verify → blend → finalize; output compared with the reference.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { S3Event } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerS3 } from '../../adapters/aws/clients.ts';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { manifestLocations } from '../../adapters/aws/s3-events.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { type BlendItem, KEYS, type PipelineInput, WORKER_EXIT } from '../../contracts/cloud.ts';
import {
  blendStep,
  type CloudDeps,
  finalizeStep,
  handleManifestCreated,
  loadCloudJob,
  planFromManifest,
  readStatus,
  readStatusAt,
  verifyStep,
} from '../../core/cloud/index.ts';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { openOutputVolume } from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { emulatorChildEnv } from '../helpers/child-env.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume, maxAbsDiff, referenceFor } from '../helpers/job-dir.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const SHAPE: Vec3 = [18, 40, 36];
const PATCH: Vec3 = [8, 12, 12];
const OVERLAP: Vec3 = [2, 4, 4];

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let bucket: string;
let table: string;
let deps: CloudDeps;
const started: { name: string; input: PipelineInput }[] = [];
const data = lcgVolume(SHAPE, 21);

function workerEnv(): NodeJS.ProcessEnv {
  return {
    ...emulatorChildEnv(s3, ddb),
    TESSERA_TABLE: table,
    TESSERA_BUCKET: bucket,
  };
}

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3(), startDynamo()]);
  bucket = uniqueBucketName('pipeline');
  await s3.createBucket(bucket);
  table = await ddb.createTable();
  registerS3(s3.client);
  const names = new Set<string>();
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
    leaseMs: 4000,
    // Step Functions' StartExecution semantics: the name is unique per state machine.
    startExecution: async (name, input) => {
      started.push({ name, input });
      const alreadyExists = names.has(name);
      names.add(name);
      return alreadyExists
        ? { alreadyExists }
        : { executionArn: `arn:aws:states:::execution:tessera:${name}`, alreadyExists };
    },
  };
  const bucketStore = new S3Store({ client: s3.client, bucket });
  await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/input.zarr' }), {
    data,
    shape: [...SHAPE],
    chunkShape: [8, 16, 16],
  });
  await bucketStore.set(
    '/models/realistic.onnx',
    new Uint8Array(readFileSync(join(FIXTURE_MODELS, 'realistic.onnx'))),
  );
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

function manifest(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    version: 1,
    name,
    input: { url: `s3://${bucket}/data/input.zarr` },
    output: {
      url: `s3://${bucket}/outputs/${name}.zarr`,
      dtype: 'float32',
      blockShape: [6, 10, 9],
    },
    model: { url: `s3://${bucket}/models/realistic.onnx`, patchShape: PATCH, outputChannels: 2 },
    overlap: OVERLAP,
    blend: 'gaussian',
    chunkShape: [8, 20, 16],
    compute: { device: 'cpu', maxWorkers: 3, spot: true },
    ...extra,
  };
}

/** Uploads a manifest and returns the S3 event a bucket notification would deliver. */
async function upload(key: string, body: unknown): Promise<S3Event> {
  const bytes = typeof body === 'string' ? body : JSON.stringify(body);
  const r = await s3.client.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: bytes }));
  const record = {
    eventName: 'ObjectCreated:Put',
    s3: {
      bucket: { name: bucket },
      object: {
        key: encodeURIComponent(key).replace(/%2F/g, '/'),
        eTag: (r.ETag ?? '').replaceAll('"', ''),
        ...(r.VersionId ? { versionId: r.VersionId } : {}),
      },
    },
  };
  return { Records: [record] } as unknown as S3Event;
}

function runWorker(
  jobId: string,
  env: NodeJS.ProcessEnv = workerEnv(),
  flags: string[] = [],
): { done: Promise<number | null>; kill: (s: NodeJS.Signals) => void; lines: string[] } {
  const child = spawn(process.execPath, [BIN, 'worker', '--job', jobId, ...flags], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  let err = '';
  child.stdout.on('data', (b: Buffer) => lines.push(...b.toString().split('\n').filter(Boolean)));
  child.stderr.on('data', (b: Buffer) => (err += b));
  return {
    done: new Promise((resolve) =>
      child.on('exit', (code) => {
        if (code !== 0) process.stderr.write(`worker exited ${code}: ${err}\n`);
        resolve(code);
      }),
    ),
    kill: (s) => child.kill(s),
    lines,
  };
}

describe('cloud pipeline on S3 + DynamoDB', () => {
  it('manifest event → plan → workers → verify → blend → finalize equals the reference', async () => {
    const event = await upload('manifests/cells.json', manifest('cells'));
    // The real Lambda module, its clients built at module scope from the environment
    // (no state machine here: it plans without starting an execution).
    for (const [k, v] of Object.entries(workerEnv()))
      if (k.startsWith('AWS_') || k.startsWith('TESSERA_')) vi.stubEnv(k, v as string);
    const { handler } = await import('../../functions/planner.ts');
    const fromHandler = (await handler(event)) as { planned: string[]; rejected: string[] };
    vi.unstubAllEnvs();
    expect(fromHandler.rejected).toEqual([]);
    expect(fromHandler.planned.length).toBe(1);
    // With a state machine, the trigger only starts the execution named by the job id...
    const [accepted] = await handleManifestCreated(deps, manifestLocations(event));
    expect(accepted?.kind === 'accepted' && accepted.jobId).toBe(fromHandler.planned[0]);
    expect(started.map((s) => s.name)).toContain(fromHandler.planned[0]);
    // ...and its Plan task finds the job already planned (idempotent).
    const [loc] = manifestLocations(event);
    const outcome = await planFromManifest(deps, loc!);
    expect(outcome?.kind).toBe('planned');
    if (outcome?.kind !== 'planned') return;
    const { jobId } = outcome.result;
    expect(jobId).toBe(fromHandler.planned[0]);
    expect(outcome.created).toBe(false);
    expect((await readStatus(deps, jobId))?.status).toBe('PLANNED');

    const workers = [runWorker(jobId), runWorker(jobId)];
    expect(await Promise.all(workers.map((w) => w.done))).toEqual([0, 0]);
    const verify = await verifyStep(deps, { jobId, round: 1 });
    expect(verify.status).toBe('COMPLETE');

    // The workers blended every seam block as its last contributor: Verify leaves the
    // Blend Map nothing (it rewrote the items file with the leftovers: none).
    expect(outcome.result.seamBlocks).toBeGreaterThan(0);
    expect(verify.blendItemCount).toBe(0);
    const items = JSON.parse(
      new TextDecoder().decode(await deps.bucketStore.get(`/${outcome.result.blendItemsKey}`)),
    ) as BlendItem[];
    expect(items).toEqual([]);
    const fin = await finalizeStep(deps, { jobId });
    expect(fin.status).toBe('SUCCEEDED');
    expect((await readStatus(deps, jobId))?.status).toBe('SUCCEEDED');

    const out = await openOutputVolume(
      new S3Store({ client: s3.client, bucket, prefix: 'outputs/cells.zarr' }),
    );
    const got = await out.readBox(Box.ofShape(SHAPE));
    const expected = await referenceFor({
      data,
      shape: SHAPE,
      model: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: PATCH,
      overlap: OVERLAP,
      blend: 'gaussian',
      outputChannels: 2,
    });
    expect(maxAbsDiff(Float32Array.from(got.data), expected)).toBeLessThanOrEqual(1e-5);
    const report = JSON.parse(
      new TextDecoder().decode(
        await new S3Store({ client: s3.client, bucket, prefix: 'outputs/cells.zarr' }).get(
          '/report.json',
        ),
      ),
    );
    expect(report.chunks.DONE).toBe(outcome.result.chunks);
    expect(report.patches.inferred).toBe(report.patches.total);
  });

  it('Verify re-runs a DONE chunk whose owned output block has gone missing', async () => {
    const event = await upload(
      'manifests/owned.json',
      manifest('owned', {
        output: {
          url: `s3://${bucket}/outputs/owned.zarr`,
          dtype: 'float32',
          blockShape: [2, 4, 4],
        },
      }),
    );
    const [loc] = manifestLocations(event);
    const outcome = await planFromManifest(deps, loc!);
    if (outcome?.kind !== 'planned') throw new Error(`not planned: ${JSON.stringify(outcome)}`);
    const { jobId } = outcome.result;
    expect(await runWorker(jobId).done).toBe(0);
    expect((await verifyStep(deps, { jobId, round: 1 })).status).toBe('COMPLETE');
    // An owned block of a DONE chunk goes missing (deleted by hand, a lifecycle rule):
    // Verify no longer calls the job COMPLETE; it re-arms the chunk that owns the block.
    const ctx = await loadCloudJob(deps, jobId);
    const victim = [...ctx.plan.chunks()].find((c) => !ctx.plan.ownedBlocks(c).next().done);
    if (!victim) throw new Error('the geometry gives no chunk an owned block');
    const owned = ctx.plan.ownedBlocks(victim).next().value!;
    const output = new S3Store({ client: s3.client, bucket, prefix: 'outputs/owned.zarr' });
    const key = (await openOutputVolume(output)).blockKey(owned.coord);
    const bytes = await output.get(key);
    await output.delete!(key);
    const redrive = await verifyStep(deps, { jobId, round: 1 });
    expect([redrive.status, redrive.remaining, redrive.redrive]).toEqual(['INCOMPLETE', 1, true]);
    expect(await runWorker(jobId).done).toBe(0);
    expect((await verifyStep(deps, { jobId, round: 2 })).status).toBe('COMPLETE');
    expect(Buffer.from((await output.get(key))!).equals(Buffer.from(bytes!))).toBe(true);
  });

  it('shards no worker assembled (--no-seam-blend, as after a death between completing and blending): Verify hands exactly those to Blend, by key', async () => {
    const event = await upload('manifests/leftover.json', manifest('leftover'));
    const [loc] = manifestLocations(event);
    const outcome = await planFromManifest(deps, loc!);
    if (outcome?.kind !== 'planned') throw new Error(`not planned: ${JSON.stringify(outcome)}`);
    const { jobId, seamBlocks } = outcome.result;
    expect(seamBlocks).toBeGreaterThan(0);
    const workers = [0, 1].map(() => runWorker(jobId, workerEnv(), ['--no-seam-blend']));
    expect(await Promise.all(workers.map((w) => w.done))).toEqual([0, 0]);
    const verify = await verifyStep(deps, { jobId, round: 1 });
    expect(verify.status).toBe('COMPLETE');
    const items = JSON.parse(
      new TextDecoder().decode(await deps.bucketStore.get(`/${outcome.result.blendItemsKey}`)),
    ) as BlendItem[];
    expect(verify.blendItemCount).toBe(items.length);
    // Cloud outputs are sharded (at the chunk pitch): the units left are the shards, every
    // one of the whole-volume region's, as no worker assembled any.
    const keys = items.flatMap((i) => ('keys' in i ? i.keys : []));
    const ctx = await loadCloudJob(deps, jobId);
    const shardGrid = ctx.plan.volumeShape.map((v, a) => Math.ceil(v / ctx.shardShape![a]!));
    const expectedKeys: string[] = [];
    for (let z = 0; z < shardGrid[0]!; z++)
      for (let y = 0; y < shardGrid[1]!; y++)
        for (let x = 0; x < shardGrid[2]!; x++) expectedKeys.push(`${z}_${y}_${x}`);
    expect(keys.sort()).toEqual(expectedKeys.sort());
    let blended = 0;
    for (const item of items) blended += (await blendStep(deps, item)).blocks;
    expect(blended).toBe(keys.length);
    // Nothing left now: a second Verify finds every seam block in place.
    expect((await verifyStep(deps, { jobId, round: 1 })).blendItemCount).toBe(0);
    const out = await openOutputVolume(
      new S3Store({ client: s3.client, bucket, prefix: 'outputs/leftover.zarr' }),
    );
    const got = await out.readBox(Box.ofShape(SHAPE));
    const expected = await referenceFor({
      data,
      shape: SHAPE,
      model: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: PATCH,
      overlap: OVERLAP,
      blend: 'gaussian',
      outputChannels: 2,
    });
    expect(maxAbsDiff(Float32Array.from(got.data), expected)).toBeLessThanOrEqual(1e-5);
  });

  it('duplicate S3 events (and a replayed event) create one job and one execution name', async () => {
    const event = await upload('manifests/dup.json', manifest('dup'));
    const before = started.length;
    const outcomes = (
      await Promise.all([
        handleManifestCreated(deps, manifestLocations(event)),
        handleManifestCreated(deps, manifestLocations(event)),
        handleManifestCreated(deps, manifestLocations(event)),
      ])
    ).flat();
    const ids = outcomes.map((o) => (o.kind === 'accepted' ? o.jobId : o.kind));
    expect(new Set(ids).size).toBe(1);
    const names = started.slice(before).map((s) => s.name);
    expect(names.length).toBe(3);
    expect(new Set(names)).toEqual(new Set([ids[0]]));
    // One execution runs one Plan task; a retried Plan creates nothing new.
    const [loc] = manifestLocations(event);
    const plans = [await planFromManifest(deps, loc!), await planFromManifest(deps, loc!)];
    expect(plans.map((p) => p.kind === 'planned' && p.created)).toEqual([true, false]);
    expect(plans.map((p) => p.kind === 'planned' && p.result.jobId)).toEqual([ids[0], ids[0]]);
    // A new version of the object is a new job.
    const v2 = await upload('manifests/dup.json', manifest('dup', { blend: 'bump' }));
    const [second] = await handleManifestCreated(deps, manifestLocations(v2));
    expect(second?.kind === 'accepted' && second.jobId).not.toBe(ids[0]);
  });

  it('an invalid manifest writes REJECTED with every error and starts nothing', async () => {
    const before = started.length;
    const bad = manifest('bad-one', { overlap: [8, 4, 4] });
    (bad.input as Record<string, unknown>).url = 's3://some-other-bucket/in.zarr';
    const event = await upload('manifests/bad.json', bad);
    const [outcome] = await handleManifestCreated(deps, manifestLocations(event));
    expect(outcome?.kind).toBe('rejected');
    expect(started.length).toBe(before);
    const status = JSON.parse(
      new TextDecoder().decode(await deps.bucketStore.get('/jobs/bad-one/status.json')),
    );
    expect(status.status).toBe('REJECTED');
    const paths = (status.errors as { path: string }[]).map((e) => e.path);
    expect(paths).toContain('overlap[0]');
    expect(paths).toContain('input.url');
    const garbage = await upload('manifests/not-json.json', '{ nope');
    const [g] = await handleManifestCreated(deps, manifestLocations(garbage));
    expect(g?.kind).toBe('rejected');
    expect((await readStatusAt(deps, KEYS.rejectedStatus('not-json')))?.status).toBe('REJECTED');
    // At jobs/<name>/ (the contract), which no job id can be: ids end in 10 hex
    // digits, a shape names may not have. A job-id-shaped name goes under jobs/rejected/.
    expect((await readStatus(deps, 'not-json'))?.status).toBe('REJECTED');
    const spoof = await upload('manifests/spoof.json', manifest('bad-one-0123456789', {}));
    const [sp] = await handleManifestCreated(deps, manifestLocations(spoof));
    expect(sp?.kind === 'rejected' && sp.statusKey).toBe(
      'jobs/rejected/bad-one-0123456789/status.json',
    );
    expect(await deps.bucketStore.get('/jobs/bad-one-0123456789/status.json')).toBeUndefined();
  });

  it('a manifest over 1 MiB is refused from its size in the GET headers, unread and unparsed', async () => {
    const before = started.length;
    const big = JSON.stringify(manifest('too-big')).replace('{', `{${' '.repeat(2 * 1024 * 1024)}`);
    const event = await upload('manifests/too-big.json', big);
    const parse = vi.spyOn(JSON, 'parse');
    let outcome: Awaited<ReturnType<typeof handleManifestCreated>>[number] | undefined;
    try {
      [outcome] = await handleManifestCreated(deps, manifestLocations(event));
    } finally {
      parse.mockRestore();
    }
    expect(
      parse.mock.calls.filter(([t]) => typeof t === 'string' && t.length > 1024 * 1024),
    ).toEqual([]);
    expect(outcome?.kind).toBe('rejected');
    expect(started.length).toBe(before);
    // Named by the key (the body was never read for its name), at jobs/<name>/.
    const status = await readStatusAt(deps, KEYS.rejectedStatus('too-big'));
    expect(status?.status).toBe('REJECTED');
    expect(status?.errors?.[0]?.message).toMatch(
      /^is \d+ bytes, over the 1048576-byte \(1 MiB\) limit/,
    );
  });

  it('SIGTERM makes a worker release its chunk at once and exit WORKER_EXIT.interrupted (Batch retries it)', async () => {
    const event = await upload(
      'manifests/term.json',
      manifest('term', { chunkShape: [6, 10, 10] }),
    );
    const outcome = await planFromManifest(deps, manifestLocations(event)[0]!);
    if (outcome?.kind !== 'planned')
      throw new Error(`not planned: ${outcome?.kind === 'rejected' ? outcome.error.message : ''}`);
    const w = runWorker(outcome.result.jobId);
    const t0 = Date.now();
    while (!w.lines.some((l) => l.includes('"claimed"')) && Date.now() - t0 < 60_000)
      await new Promise((r) => setTimeout(r, 20));
    w.kill('SIGTERM');
    const killedAt = Date.now();
    expect(await w.done).toBe(WORKER_EXIT.interrupted);
    expect(Date.now() - killedAt).toBeLessThan(30_000);
    expect(w.lines.some((l) => l.includes('"released"'))).toBe(true);
    const counts = await deps.ledger.counts(outcome.result.jobId);
    expect(counts.RUNNING).toBe(0);
    // Released chunks did not burn an attempt.
    for await (const row of deps.ledger.list(outcome.result.jobId, 'PENDING'))
      expect(row.attempts).toBe(0);
  });

  it('a model missing from the bucket: the worker exits naming it, and hands back the chunk it claimed while the model loaded', async () => {
    const missing = `s3://${bucket}/models/not-uploaded.onnx`;
    const event = await upload(
      'manifests/nomodel.json',
      manifest('nomodel', {
        model: { url: missing, patchShape: PATCH, outputChannels: 2 },
      }),
    );
    const outcome = await planFromManifest(deps, manifestLocations(event)[0]!);
    if (outcome?.kind !== 'planned')
      throw new Error(`not planned: ${outcome?.kind === 'rejected' ? outcome.error.message : ''}`);
    const { jobId } = outcome.result;
    const w = runWorker(jobId);
    expect(await w.done).not.toBe(0);
    const counts = await deps.ledger.counts(jobId);
    expect(counts.RUNNING).toBe(0);
    expect(counts.PENDING).toBe(outcome.result.chunks);
    for await (const row of deps.ledger.list(jobId)) expect(row.attempts, row.chunkId).toBe(0);
  });
});
