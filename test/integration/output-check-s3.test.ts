// The output check over S3 (s3rver on loopback, or AWS_ENDPOINT_URL): the cloud Verify
// step runs it with scope 'owned'. Sizes come from ListObjectsV2 (listWithSizes), paged.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { checkOutput } from '../../core/pipeline/output-check.ts';
import { writeFinishedOutput } from '../helpers/output-check-fixture.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

let s3: S3Emulator;
let bucket: string;
beforeAll(async () => {
  s3 = await startS3();
  bucket = uniqueBucketName('check');
  await s3.createBucket(bucket);
});
afterAll(async () => {
  await s3?.stop();
});

let seq = 0;
// Pages of 2 keys: every slab listing of the check takes several pages.
const freshStore = () =>
  new S3Store({ client: s3.client, bucket, prefix: `out-${seq++}.zarr`, listPageSize: 2 });

describe('checkOutput over S3', () => {
  it('listWithSizes gives ListObjectsV2 sizes across pages', async () => {
    const store = freshStore();
    await store.set('/0/c/0/0/0/0', new Uint8Array(7));
    await store.set('/0/c/0/0/0/1', new Uint8Array(0));
    await store.set('/0/c/0/0/1/0', new Uint8Array(3));
    await store.set('/1/zarr.json', new Uint8Array(1));
    const got = [];
    for await (const o of store.listWithSizes('/0/c/0/0/')) got.push(o);
    got.sort((a, b) => (a.key < b.key ? -1 : 1));
    expect(got).toEqual([
      { key: '/0/c/0/0/0/0', size: 7 },
      { key: '/0/c/0/0/0/1', size: 0 },
      { key: '/0/c/0/0/1/0', size: 3 },
    ]);
  });

  it('names a deleted owned block, a truncated seam block and a truncated pyramid block', async () => {
    const store = freshStore();
    const ctx = await writeFinishedOutput(store);
    await store.delete('/0/c/0/0/0/1');
    const seam = (await store.get('/0/c/0/0/1/2'))!;
    await store.set('/0/c/0/0/1/2', seam.subarray(0, seam.length - 3));
    const level1 = (await store.get('/1/c/0/0/0/0'))!;
    await store.set('/1/c/0/0/0/0', level1.subarray(0, 4));
    const r = await checkOutput(ctx);
    expect(r.damaged.map((d) => [d.key, d.problem])).toEqual([
      ['/0/c/0/0/0/1', 'missing'],
      ['/0/c/0/0/1/2', 'truncated'],
      ['/1/c/0/0/0/0', 'truncated'],
    ]);
    // Depth listing: the listing's sizes alone see the 4-byte object, not the cut seam block.
    const listing = await checkOutput(ctx, { depth: 'listing' });
    expect(listing.damaged.map((d) => [d.key, d.problem])).toEqual([
      ['/0/c/0/0/0/1', 'missing'],
      ['/1/c/0/0/0/0', 'truncated'],
    ]);
  });

  it("scope 'owned' at Verify time: seam blocks and the pyramid are not there yet", async () => {
    const store = freshStore();
    const ctx = await writeFinishedOutput(store, { pyramid: 0 });
    for (const key of ['/0/c/0/0/1/2', '/0/c/0/0/2/3', '/zarr.json'] as const)
      await store.delete(key);
    expect((await checkOutput(ctx, { scope: 'owned' })).damaged).toEqual([]);
    await store.delete('/0/c/0/0/0/5');
    expect(
      (await checkOutput(ctx, { scope: 'owned' })).damaged.map((d) => [d.key, d.problem]),
    ).toEqual([['/0/c/0/0/0/5', 'missing']]);
  });
});
