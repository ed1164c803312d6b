// `tessera submit` against S3 (s3rver on loopback, or AWS_ENDPOINT_URL): validation
// that names fields and uploads nothing, the content-addressed model upload, the
// manifest upload, and a job id equal to the one the planner derives from the object
// it reads back.

import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { type SubmitOptions, submit, submitCommand } from '../../cli/submit-command.ts';
import { cloudJobId } from '../../core/cloud/index.ts';
import { ManifestError } from '../../core/manifest/index.ts';
import { NEUROGLANCER } from '../../core/pipeline/viewer.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { FIXTURE_MODELS } from '../helpers/job-dir.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

let s3: S3Emulator;
let dir: string;
const stack = uniqueBucketName('stack');
const data = uniqueBucketName('data');

beforeAll(async () => {
  s3 = await startS3();
  await s3.createBucket(stack);
  await s3.createBucket(data);
  await writeZarrArray(new S3Store({ client: s3.client, bucket: data, prefix: 'raw.zarr' }), {
    data: new Uint8Array(16 * 32 * 32).fill(7),
    shape: [16, 32, 32],
    chunkShape: [8, 16, 16],
  });
  dir = mkdtempSync(join(tmpdir(), 'tessera-submit-'));
  copyFileSync(join(FIXTURE_MODELS, 'tiny.onnx'), join(dir, 'model.onnx'));
});
afterAll(async () => {
  rmSync(dir, { recursive: true, force: true });
  await s3?.stop();
});

const manifest = (over: Record<string, unknown> = {}) => ({
  version: 1,
  name: 'cells-v1',
  input: { url: `s3://${data}/raw.zarr` },
  output: { url: `s3://${stack}/outputs/cells.zarr`, dtype: 'float32' },
  model: { url: 'model.onnx', patchShape: [8, 16, 16], outputChannels: 1 },
  overlap: [2, 4, 4],
  chunkShape: [8, 16, 16],
  ...over,
});

let n = 0;
function write(doc: unknown): string {
  const path = join(dir, `m${n++}.json`);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

const opts = (path: string, o: Partial<SubmitOptions> = {}): SubmitOptions => ({
  path,
  bucket: stack,
  allowedBuckets: [data],
  s3: s3.client,
  modelUpload: true,
  ...o,
});

async function keys(prefix: string): Promise<string[]> {
  const r = await s3.client.send(new ListObjectsV2Command({ Bucket: stack, Prefix: prefix }));
  return (r.Contents ?? []).map((c) => c.Key!).sort();
}

async function issuesOf(p: Promise<unknown>): Promise<{ path: string; message: string }[]> {
  const error = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(ManifestError);
  return [...(error as ManifestError).issues];
}

describe('tessera submit', () => {
  it('rejects what the planner would reject, naming the field, and uploads nothing', async () => {
    const bad = [
      // schema
      [manifest({ overlap: [2, 4, 40] }), 'overlap[2]'],
      // bucket policy
      [manifest({ input: { url: 's3://someone-elses-bucket/raw.zarr' } }), 'input.url'],
      [manifest({ output: { url: `s3://${stack}/jobs/x.zarr`, dtype: 'float32' } }), 'output.url'],
      // the input volume itself
      [manifest({ region: { start: [0, 0, 0], stop: [16, 32, 99] } }), 'region.stop[2]'],
    ] as const;
    for (const [doc, field] of bad) {
      const issues = await issuesOf(submit(opts(write(doc))));
      expect(issues.map((i) => i.path)).toContain(field);
    }
    // Outputs only under outputs/ (the workers write nowhere else), naming the allowed prefixes.
    const raw = await issuesOf(
      submit(
        opts(write(manifest({ output: { url: `s3://${data}/raw2.zarr`, dtype: 'float32' } }))),
      ),
    );
    expect(raw).toEqual([
      expect.objectContaining({
        path: 'output.url',
        message: expect.stringContaining(`s3://${stack}/outputs/, s3://${data}/outputs/`),
      }),
    ]);
    // Over the 1 MiB manifest limit: refused by its size, as the planner would.
    const padded = join(dir, 'padded.json');
    writeFileSync(padded, JSON.stringify(manifest()).replace('{', `{${' '.repeat(1024 * 1024)}`));
    expect(await issuesOf(submit(opts(padded)))).toEqual([
      { path: '', message: expect.stringMatching(/over the 1048576-byte \(1 MiB\) limit/) },
    ]);
    // A local model without --model-upload: the message says how to fix it.
    const local = await issuesOf(submit(opts(write(manifest()), { modelUpload: false })));
    expect(local).toEqual([
      expect.objectContaining({
        path: 'model.url',
        message: expect.stringContaining('--model-upload'),
      }),
    ]);
    // A declared hash that does not match the file.
    const hash = await issuesOf(
      submit(opts(write(manifest({ model: { ...manifest().model, sha256: 'a'.repeat(64) } })))),
    );
    expect(hash.map((i) => i.path)).toEqual(['model.sha256']);
    expect(await keys('')).toEqual([]);
  });

  it('uploads the model by content and the manifest; the job id is the one the planner derives', async () => {
    const now = new Date('2031-02-03T04:05:06.789Z');
    const r = await submit(opts(write(manifest()), { now }));
    const bytes = await readFile(join(dir, 'model.onnx'));
    const sha = createHash('sha256').update(bytes).digest('hex');
    expect(r.key).toBe('manifests/cells-v1-20310203T040506Z.json');
    expect(r.model).toEqual({
      url: `s3://${stack}/models/${sha}.onnx`,
      sha256: sha,
      uploaded: true,
    });
    expect(await keys('')).toEqual([r.key, `models/${sha}.onnx`].sort());

    // What the planner fetches: the rewritten manifest, and VersionId or ETag as version.
    const got = await s3.client.send(new GetObjectCommand({ Bucket: stack, Key: r.key }));
    const uploaded = JSON.parse(await got.Body!.transformToString());
    expect(uploaded.model).toMatchObject({ url: r.model!.url, sha256: sha });
    const version =
      got.VersionId && got.VersionId !== 'null'
        ? got.VersionId
        : (got.ETag ?? '').replaceAll('"', '');
    expect(r.jobId).toBe(cloudJobId('cells-v1', { bucket: stack, key: r.key }, version));
    expect(r.statusCommand).toBe(`tessera status ${r.jobId} --cloud --bucket ${stack} --watch`);
    expect(r.rejectedStatus).toBe(`s3://${stack}/jobs/cells-v1/status.json`);
    const model = await s3.client.send(
      new GetObjectCommand({ Bucket: stack, Key: `models/${sha}.onnx` }),
    );
    expect(Buffer.from(await model.Body!.transformToByteArray()).equals(bytes)).toBe(true);

    // The output is on S3: a neuroglancer link to it (and the input) comes back.
    const state = JSON.parse(decodeURIComponent(r.neuroglancer!.slice(NEUROGLANCER.length)));
    expect(state.layers.map((l: { source: string }) => l.source)).toEqual([
      `zarr://s3://${data}/raw.zarr`,
      `zarr3://s3://${stack}/outputs/cells.zarr`,
    ]);

    // Submitting again: the model is already there; a new manifest object, a new job.
    const again = await submit(opts(write(manifest()), { now: new Date(now.getTime() + 1000) }));
    expect(again.model?.uploaded).toBe(false);
    expect(again.jobId).not.toBe(r.jobId);
  });

  it('the command reads the bucket from cdk outputs; --dry-run uploads nothing', async () => {
    const outputs = join(dir, 'cdk-outputs.json');
    writeFileSync(outputs, JSON.stringify({ Tessera: { BucketName: stack, TableName: 't' } }));
    const before = await keys('');
    const write0 = process.stdout.write.bind(process.stdout);
    let out = '';
    process.stdout.write = ((c: string) => {
      out += c;
      return true;
    }) as typeof process.stdout.write;
    let code: number;
    try {
      code = await submitCommand([
        write(manifest()),
        '--stack-outputs',
        outputs,
        '--allowed',
        data,
        '--model-upload',
        '--skip-input-check',
        '--dry-run',
        '--json',
      ]);
    } finally {
      process.stdout.write = write0;
    }
    expect(code).toBe(0);
    const r = JSON.parse(out);
    expect(r).toMatchObject({ bucket: stack, dryRun: true });
    expect(r.key).toMatch(/^manifests\/cells-v1-\d{8}T\d{6}Z\.json$/);
    expect(r.jobId).toBeUndefined();
    expect(await keys('')).toEqual(before);
  });
});
