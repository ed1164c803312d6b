// Precomputed volumes on S3 (s3rver on loopback, or AWS_ENDPOINT_URL): the fixtures of the
// independent Python writer uploaded as they are, read through the S3 Store port (sharded
// ones by ranged GETs), and a precomputed output written there and read back.

import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { Box } from '../../core/geometry/index.ts';
import { parseManifest } from '../../core/manifest/index.ts';
import { planFor } from '../../core/pipeline/context.ts';
import { checkOutput } from '../../core/pipeline/output-check.ts';
import type { AbsolutePath, RangeQuery } from '../../core/store/index.ts';
import { type InputVolume, openInputVolume } from '../../core/volume/input.ts';
import { openOutputVolume } from '../../core/volume/output.ts';
import { createPrecomputedOutput } from '../../core/volume/precomputed/output.ts';
import { valueAt, WRITTEN_CASES, writeAll } from '../helpers/precomputed-written.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/precomputed');
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8'));

let s3: S3Emulator;
let bucket: string;
beforeAll(async () => {
  s3 = await startS3();
  bucket = uniqueBucketName('precomputed');
  await s3.createBucket(bucket);
});
afterAll(async () => {
  await s3?.stop();
});

function* files(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) yield* files(p);
    else yield p;
  }
}

async function upload(volume: string): Promise<S3Store> {
  const store = new S3Store({ client: s3.client, bucket, prefix: `em/${volume}` });
  const root = join(FIXTURES, 'volumes', volume);
  for (const f of files(root))
    await store.set(`/${relative(root, f)}` as AbsolutePath, new Uint8Array(readFileSync(f)));
  return store;
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe('precomputed on S3', () => {
  it.each([
    ['sharded-gzip', 'uint16'],
    ['cseg-uint32', 'uint32'],
    ['gzip-float32', 'float32'],
  ] as const)('%s reads bit-identically through the S3 store', async (name, dtype) => {
    const store = await upload(name);
    const ranges: RangeQuery[] = [];
    const getRange = store.getRange.bind(store);
    store.getRange = (key, range) => {
      ranges.push(range);
      return getRange(key, range);
    };
    const e = expected[`${name}@0`];
    const v = await openInputVolume(store, '', { url: `precomputed://s3://${bucket}/em/${name}` });
    const got = (await v.readBox(Box.ofShape(e.shape))).data;
    const ctor = { uint16: Uint16Array, uint32: Uint32Array, float32: Float32Array }[dtype];
    expect(sha256(new Uint8Array(ctor.from(got).buffer))).toBe(e.sha256);
    // A sharded scale is read by ranges (index entries, minishard indices, chunks), never whole.
    if (name.startsWith('sharded')) expect(ranges.length).toBeGreaterThan(0);
  });

  it('a precomputed output written to S3 reads back', async () => {
    const k = WRITTEN_CASES[1]!; // uint8, gzip files
    const store = new S3Store({ client: s3.client, bucket, prefix: 'outputs/pred' });
    const out = await createPrecomputedOutput(store, {
      shape: k.shape,
      channels: k.channels,
      dtype: k.dtype,
      blockShape: k.blockShape,
      compression: k.compression,
      owner: 'job-s3',
    });
    await writeAll(out, k.dtype);
    const back = await openOutputVolume(store, { owner: 'job-s3' });
    const got = await back.readBox(Box.ofShape(k.shape));
    const [Z, Y, X] = k.shape;
    for (let z = 0; z < Z; z += 3)
      for (let y = 0; y < Y; y += 5)
        for (let x = 0; x < X; x += 4)
          expect(got.data[(z * Y + y) * X + x]).toBe(valueAt('uint8', 0, z, y, x));
  });

  it('the output check lists a precomputed output on S3 slab by slab and names a lost block', async () => {
    const manifest = parseManifest({
      version: 1,
      name: 'check-s3',
      input: { url: 'precomputed://s3://lab-em/in' },
      output: { url: 'precomputed://s3://lab-em/out', dtype: 'float32', blockShape: [8, 10, 12] },
      model: { url: 'm.onnx', patchShape: [8, 12, 12], outputChannels: 2 },
      overlap: [2, 4, 4],
      chunkShape: [12, 16, 16],
    });
    const store = new S3Store({
      client: s3.client,
      bucket,
      prefix: 'outputs/check',
      listPageSize: 4,
    });
    const out = await createPrecomputedOutput(store, {
      shape: [20, 24, 28],
      channels: 2,
      dtype: 'float32',
      blockShape: [8, 10, 12],
    });
    await writeAll(out, 'float32');
    const ctx = {
      plan: planFor(manifest, [20, 24, 28]),
      manifest,
      outputStore: store,
      input: {} as InputVolume,
    };
    expect((await checkOutput(ctx, { depth: 'listing' })).damaged).toEqual([]);
    await store.delete('/0/12-24_10-20_8-16');
    const r = await checkOutput(ctx, { depth: 'listing' });
    expect(r.damaged.map((d) => [d.key, d.problem])).toEqual([['/0/12-24_10-20_8-16', 'missing']]);
    expect(r.checked).toBe(28);
  });
});
