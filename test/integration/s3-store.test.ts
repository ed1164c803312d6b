// S3Store against real S3 semantics: s3rver on loopback, or the endpoint named by
// AWS_ENDPOINT_URL (LocalStack, a real account). Then the faults an emulator does not
// produce: dropped connections, bodies cut off mid-stream, SlowDown and AccessDenied
// come from a TCP proxy in front of s3rver, so the SDK's real retry middleware is what
// is tested. aws-sdk-client-mock is used only for the error mapping, because it stubs
// `client.send` and so bypasses the retry middleware altogether.

import { randomBytes } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import {
  GetObjectCommand,
  NoSuchBucket,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeS3Client, registerS3 } from '../../adapters/aws/clients.ts';
import { S3ClientConfigError, StoreIoError } from '../../adapters/aws/errors.ts';
import { S3Store, type S3StoreOptions } from '../../adapters/aws/s3-store.ts';
import { Box, points, type Vec3 } from '../../core/geometry/index.ts';
import {
  type AbsolutePath,
  InvalidStoreUrlError,
  openStoreForUrl,
  unregisterStoreScheme,
} from '../../core/store/index.ts';
import { createOutputVolume, openInputVolume, openOutputVolume } from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import {
  emulatorClient,
  type S3Emulator,
  startS3,
  uniqueBucketName,
} from '../helpers/s3-emulator.ts';

const MiB = 1024 * 1024;

let s3: S3Emulator;
let bucket: string;
beforeAll(async () => {
  s3 = await startS3();
  bucket = uniqueBucketName('store');
  await s3.createBucket(bucket);
});
afterAll(async () => {
  await s3?.stop();
});

let seq = 0;
/** A store under a fresh prefix of the test bucket, so cases never see each other's keys. */
function freshStore(options: Partial<S3StoreOptions> = {}): S3Store {
  return new S3Store({ client: s3.client, bucket, prefix: `case-${seq++}`, ...options });
}

const bytes = (n: number, seed = 0): Uint8Array => {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 7 + seed) % 251;
  return out;
};

async function collect(keys: AsyncIterable<AbsolutePath>): Promise<AbsolutePath[]> {
  const out: AbsolutePath[] = [];
  for await (const key of keys) out.push(key);
  return out.sort();
}

async function inBatches<T>(items: T[], size: number, fn: (item: T) => Promise<void>) {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(fn));
}

describe('S3Store', () => {
  it('maps keys under its prefix, round-trips bytes, and answers undefined for missing keys', async () => {
    const store = freshStore();
    expect(store.location).toBe(`s3://${bucket}/${store.prefix}`);
    expect(store.objectKey('/a/b.json')).toBe(`${store.prefix}/a/b.json`);

    // A view into a larger buffer (zarrita hands these out) must store just the view.
    const backing = bytes(100, 3);
    await store.set('/a/b.json', backing.subarray(10, 30));
    expect(await store.get('/a/b.json')).toEqual(backing.slice(10, 30));
    const raw = await s3.client.send(
      new GetObjectCommand({ Bucket: bucket, Key: `${store.prefix}/a/b.json` }),
    );
    expect(await raw.Body?.transformToByteArray()).toEqual(backing.slice(10, 30));

    await store.set('/a/b.json', bytes(5, 9));
    expect(await store.get('/a/b.json')).toEqual(bytes(5, 9));
    await store.set('/empty', new Uint8Array(0));
    expect(await store.get('/empty')).toEqual(new Uint8Array(0));

    expect(await store.get('/missing')).toBeUndefined();
    expect(await store.getRange('/missing', { offset: 0, length: 4 })).toBeUndefined();
    expect(await store.getRange('/missing', { suffixLength: 4 })).toBeUndefined();
    await store.delete('/a/b.json');
    await store.delete('/a/b.json'); // deleting a missing key is not an error
    expect(await store.get('/a/b.json')).toBeUndefined();

    const root = new S3Store({ client: s3.client, bucket });
    expect(root.location).toBe(`s3://${bucket}`);
    expect(await root.get(`/${store.prefix}/empty` as AbsolutePath)).toEqual(new Uint8Array(0));
    expect(() => store.objectKey('/a/../b' as AbsolutePath)).toThrow(/"\.\." segment/);
  });

  it('reads byte ranges as offset+length (bytes=o-e) and as suffix (bytes=-n), clipped like HTTP', async () => {
    const store = freshStore();
    const data = bytes(1000, 1);
    await store.set('/blob', data);
    expect(await store.getRange('/blob', { offset: 0, length: 1 })).toEqual(data.slice(0, 1));
    expect(await store.getRange('/blob', { offset: 123, length: 456 })).toEqual(
      data.slice(123, 579),
    );
    expect(await store.getRange('/blob', { suffixLength: 16 })).toEqual(data.slice(984));
    expect(await store.getRange('/blob', { offset: 990, length: 50 })).toEqual(data.slice(990));
    expect(await store.getRange('/blob', { suffixLength: 5000 })).toEqual(data);
    expect(await store.getRange('/blob', { offset: 1000, length: 10 })).toEqual(new Uint8Array(0));
    expect(await store.getRange('/blob', { offset: 10, length: 0 })).toEqual(new Uint8Array(0));
    expect(await store.getRange('/blob', { suffixLength: 0 })).toEqual(new Uint8Array(0));
  });

  it('lists keys relative to its prefix across many small pages, and only under its prefix', async () => {
    const store = freshStore({ listPageSize: 7 });
    const sibling = new S3Store({ client: s3.client, bucket, prefix: `${store.prefix}-sibling` });
    const a = Array.from({ length: 40 }, (_, i) => `/a/${String(i).padStart(2, '0')}` as const);
    const b: AbsolutePath[] = ['/b/x', '/b/y/z'];
    await inBatches([...a, ...b], 16, (key) => store.set(key, bytes(1, 0)));
    await sibling.set('/a/intruder', bytes(1));

    expect(await collect(store.list(''))).toEqual([...a, ...b].sort());
    expect(await collect(store.list('/a/'))).toEqual(a);
    expect(await collect(store.list('a/'))).toEqual(a);
    expect(await collect(store.list('/a/1'))).toEqual(a.filter((k) => k.startsWith('/a/1')));
    expect(await collect(store.list('/nothing'))).toEqual([]);
  });

  it('lists more than 1000 keys (S3 caps a page at 1000) with the default page size', async () => {
    const store = freshStore();
    const keys = Array.from({ length: 1003 }, (_, i) => `/k/${i}` as AbsolutePath);
    await inBatches(keys, 32, (key) => store.set(key, new Uint8Array(0)));
    const listed = await collect(store.list('/'));
    expect(listed).toHaveLength(1003);
    expect(listed).toEqual([...keys].sort());
  });

  it('uploads a 20 MiB object in parts (threshold 16 MiB) and reads it back whole and in ranges', async () => {
    const store = freshStore();
    const commands: string[] = [];
    s3.client.middlewareStack.add(
      (next, context) => (args) => {
        commands.push(String(context.commandName));
        return next(args);
      },
      { step: 'initialize', name: 'countCommands' },
    );
    const data = bytes(20 * MiB, 5);
    try {
      await store.set('/big', data);
      await store.set('/small', bytes(10));
    } finally {
      s3.client.middlewareStack.remove('countCommands');
    }
    // 20 MiB in 8 MiB parts: 3 parts; the small object is one PutObject.
    expect(commands.filter((c) => c === 'UploadPartCommand')).toHaveLength(3);
    expect(commands.filter((c) => c === 'CompleteMultipartUploadCommand')).toHaveLength(1);
    expect(commands.filter((c) => c === 'PutObjectCommand')).toHaveLength(1);

    const back = await store.get('/big');
    expect(back?.length).toBe(data.length);
    expect(Buffer.compare(Buffer.from(back!), Buffer.from(data))).toBe(0);
    const mid = 8 * MiB - 10;
    expect(await store.getRange('/big', { offset: mid, length: 20 })).toEqual(
      data.slice(mid, mid + 20),
    );
  });

  it('holds an input Zarr array written with writeZarrArray and read with openInputVolume', async () => {
    const store = freshStore();
    const shape: Vec3 = [9, 14, 11];
    const data = new Uint16Array(shape[0] * shape[1] * shape[2]);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 60_000;
    await writeZarrArray(store, { path: 'raw', data, shape: [...shape], chunkShape: [4, 5, 6] });

    const volume = await openInputVolume(store, 'raw');
    expect(volume.location).toBe(store.location);
    expect(volume.shape).toEqual(shape);
    expect(volume.dtype).toBe('uint16');
    const whole = await volume.readBox(Box.ofShape(shape));
    expect(Array.from(whole.data)).toEqual(Array.from(data));

    // A box straddling the volume's corner reads zeros outside.
    const box = new Box([6, 10, -2], [12, 16, 3]);
    const part = await volume.readBox(box);
    const want: number[] = [];
    for (const [z, y, x] of points(box)) {
      const inside = z < shape[0] && y < shape[1] && x >= 0 && x < shape[2];
      want.push(inside ? data[(z * shape[1] + y) * shape[2] + x]! : 0);
    }
    expect(Array.from(part.data)).toEqual(want);
  });

  it('holds an output volume written block by block and reopened', async () => {
    const store = freshStore();
    const shape: Vec3 = [10, 12, 7];
    const value = (c: number, [z, y, x]: Vec3) => c * 1000 + z * 100 + y * 10 + x + 0.5;
    const out = await createOutputVolume(store, {
      shape,
      channels: 2,
      dtype: 'float32',
      blockShape: [4, 5, 4],
    });
    for (const coord of points(Box.ofShape(out.blockGrid))) {
      const box = out.blockBox(coord);
      const data = new Float32Array(2 * box.size);
      let i = 0;
      for (let c = 0; c < 2; c++) for (const p of points(box)) data[i++] = value(c, p);
      await out.writeBlock(coord, { box, channels: 2, data });
    }
    expect(await out.blockExists([0, 0, 0])).toBe(true);

    const reopened = await openOutputVolume(store);
    expect(reopened.blockGrid).toEqual([3, 3, 2]);
    const read = await reopened.readBox(Box.ofShape(shape));
    const want: number[] = [];
    for (let c = 0; c < 2; c++) for (const p of points(Box.ofShape(shape))) want.push(value(c, p));
    expect(Array.from(read.data)).toEqual(want);
    const blockKeys = await collect(store.list('/0/c/'));
    expect(blockKeys).toHaveLength(18);
    expect(blockKeys).toContain(out.blockKey([2, 2, 1]));
  });

  it('replaces an object atomically: concurrent writes of one key leave one whole body, and readers see whole bodies', async () => {
    // Status documents are rewritten by concurrent steps (duplicate S3 events, retried
    // tasks); S3 guarantees last-writer-wins with no torn objects, and so must the emulator.
    const store = freshStore();
    const body = (writer: number): Uint8Array => bytes(4000 - 300 * writer, writer + 1);
    const whole = (b: Uint8Array | undefined, bodies: Uint8Array[]): boolean =>
      b === undefined || bodies.some((w) => w.length === b.length && w.every((v, i) => v === b[i]));
    const bodies = Array.from({ length: 8 }, (_, w) => body(w));
    for (let round = 0; round < 12; round++) {
      const key = `/status-${round % 3}.json` as AbsolutePath;
      const seen = await Promise.all([
        ...bodies.map((b) => store.set(key, b).then(() => undefined)),
        ...Array.from({ length: 4 }, () => store.get(key)),
      ]);
      for (const b of seen) expect(whole(b, bodies)).toBe(true);
      const final = await store.get(key);
      expect(final).toBeDefined();
      expect(whole(final, bodies)).toBe(true);
    }
  });

  it('is what openStoreForUrl returns for s3:// URLs once registerS3 has run', async () => {
    registerS3(s3.client);
    try {
      const store = openStoreForUrl(`s3://${bucket}/via-url/out.zarr/`);
      expect(store).toBeInstanceOf(S3Store);
      expect(store.location).toBe(`s3://${bucket}/via-url/out.zarr`);
      await store.set('/zarr.json', bytes(3));
      const direct = new S3Store({ client: s3.client, bucket, prefix: 'via-url' });
      expect(await direct.get('/out.zarr/zarr.json')).toEqual(bytes(3));
      expect(() => openStoreForUrl('s3://Not_A_Bucket/x')).toThrow(InvalidStoreUrlError);
      expect(() => openStoreForUrl(`s3://${bucket}/a//b`)).toThrow(InvalidStoreUrlError);
    } finally {
      unregisterStoreScheme('s3');
    }
  });
});

// Fault injection needs a local server to stand between client and S3, so this part
// always runs against s3rver, also when the suite targets another endpoint.
describe('S3 on the local emulator', () => {
  let local: S3Emulator;
  let localBucket: string;
  beforeAll(async () => {
    local = s3.emulated ? s3 : await startS3({ local: true });
    localBucket = uniqueBucketName('faults');
    await local.createBucket(localBucket);
  });
  const closers: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const close of closers.splice(0)) await close();
    if (local !== s3) await local?.stop();
  });

  it('forwards object-created events as S3 notifications, keys URL-encoded', async () => {
    const seen: { key: string; name: string; bucket: string; arn: string }[] = [];
    const unsubscribe = local.onObjectCreated((event) => {
      for (const r of event.Records)
        seen.push({
          key: r.s3.object.key,
          name: r.eventName,
          bucket: r.s3.bucket.name,
          arn: r.s3.bucket.arn,
        });
    });
    try {
      const store = new S3Store({ client: local.client, bucket: localBucket, prefix: 'jobs' });
      await store.set('/in box/manifest+1.json', bytes(4));
      await store.delete('/in box/manifest+1.json'); // removals are not forwarded
      await local.eventsSettled();
    } finally {
      unsubscribe();
    }
    expect(seen).toEqual([
      {
        key: 'jobs/in+box/manifest%2B1.json',
        name: 'ObjectCreated:Put',
        bucket: localBucket,
        arn: `arn:aws:s3:::${localBucket}`,
      },
    ]);
    const key = decodeURIComponent(seen[0]!.key.replace(/\+/g, ' '));
    expect(key).toBe('jobs/in box/manifest+1.json');
  });

  it('reports what an onObjectCreated callback threw', async () => {
    const unsubscribe = local.onObjectCreated(() => {
      throw new Error('handler failed');
    });
    try {
      await new S3Store({ client: local.client, bucket: localBucket }).set('/x', bytes(1));
      await expect(local.eventsSettled()).rejects.toThrow(/1 onObjectCreated callback/);
    } finally {
      unsubscribe();
    }
  });

  /** A store that reaches s3rver through a fault proxy; proxy and client close after the suite. */
  async function throughProxy(
    faults: Fault[],
    env: NodeJS.ProcessEnv = {},
  ): Promise<{ store: S3Store; proxy: FaultProxy; client: S3Client }> {
    const proxy = await startFaultProxy(local.endpoint, faults);
    const client = emulatorClient(proxy.endpoint, env);
    const store = new S3Store({ client, bucket: localBucket, prefix: `proxied-${seq++}` });
    closers.push(async () => {
      client.destroy();
      await proxy.close();
    });
    return { store, proxy, client };
  }

  it('retries a request whose connection is dropped before any response (socket hang up)', async () => {
    // Without retries the fault is real and visible: this is what the retry hides.
    const bare = await throughProxy(['drop'], { AWS_MAX_ATTEMPTS: '1' });
    const failure = await bare.store.set('/a', bytes(10)).catch((e: unknown) => e);
    expect(failure).toBeInstanceOf(StoreIoError);
    expect((failure as StoreIoError).code).toMatch(/ECONNRESET|EPIPE/);

    const { store, proxy } = await throughProxy(['drop', 'drop']);
    await store.set('/a', bytes(10));
    expect(await store.get('/a')).toEqual(bytes(10));
    expect(proxy.seen.slice(0, 3)).toEqual(['drop', 'drop', 'pass']);
  });

  it('re-reads an object whose body is cut off after the headers arrived', async () => {
    const data = bytes(512 * 1024, 2);
    const { store, proxy } = await throughProxy([{ cutResponseAfter: 64 * 1024 }]);
    await new S3Store({ client: local.client, bucket: localBucket, prefix: store.prefix }).set(
      '/blob',
      data,
    );
    const back = await store.get('/blob');
    expect(Buffer.compare(Buffer.from(back!), Buffer.from(data))).toBe(0);
    expect(proxy.seen).toEqual(['cut', 'pass']);
  });

  it('retries SlowDown (503) and succeeds', async () => {
    const { store, proxy } = await throughProxy([
      { status: 503, code: 'SlowDown' },
      { status: 503, code: 'SlowDown' },
    ]);
    await new S3Store({ client: local.client, bucket: localBucket, prefix: store.prefix }).set(
      '/x',
      bytes(7),
    );
    expect(await store.get('/x')).toEqual(bytes(7));
    expect(proxy.seen).toEqual(['503 SlowDown', '503 SlowDown', 'pass']);
  });

  it('fails on 403 AccessDenied at once with a StoreIoError naming bucket, key and what to check', async () => {
    const denied = { status: 403, code: 'AccessDenied' };
    const { store, proxy } = await throughProxy(Array.from({ length: 10 }, () => denied));
    const error = await store.get('/secret/0/zarr.json').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreIoError);
    const e = error as StoreIoError;
    expect(e.name).toBe('StoreIoError');
    expect(e.code).toBe('AccessDenied');
    expect(e.status).toBe(403);
    expect(e.bucket).toBe(localBucket);
    expect(e.key).toBe(`${store.prefix}/secret/0/zarr.json`);
    expect(e.message).toContain(`s3://${localBucket}/${store.prefix}/secret/0/zarr.json`);
    expect(e.message).toMatch(/credentials/);
    expect(e.message).toMatch(/bucket polic/);
    expect(e.message).toMatch(/s3:GetObject/);
    expect(e.cause).toBeInstanceOf(S3ServiceException);
    expect(proxy.seen).toEqual(['403 AccessDenied']);
  });
});

describe('S3Store error mapping (aws-sdk-client-mock)', () => {
  const client = new S3Client({ region: 'us-east-1' });
  const mock = mockClient(client);
  const store = new S3Store({ client, bucket: 'tessera-mocked', prefix: 'p' });
  const meta = (status: number, attempts = 1) => ({ httpStatusCode: status, attempts });
  afterAll(() => mock.restore());

  it('reads NoSuchKey as undefined but fails loudly on NoSuchBucket', async () => {
    mock.reset();
    mock
      .on(GetObjectCommand)
      .rejects(
        new NoSuchKey({ message: 'The specified key does not exist.', $metadata: meta(404) }),
      );
    expect(await store.get('/k')).toBeUndefined();

    mock.reset();
    mock
      .on(GetObjectCommand)
      .rejects(
        new NoSuchBucket({ message: 'The specified bucket does not exist', $metadata: meta(404) }),
      );
    const error = await store.get('/k').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreIoError);
    expect((error as Error).message).toMatch(/s3:\/\/tessera-mocked\/p\/k.*bucket name/s);
  });

  it('wraps AccessDenied on a write once, naming the IAM action', async () => {
    mock.reset();
    mock.on(PutObjectCommand).rejects(
      new S3ServiceException({
        name: 'AccessDenied',
        $fault: 'client',
        $metadata: meta(403),
        message: 'Access Denied',
      }),
    );
    const error = await store.set('/out/0/c/0/0/0/0', bytes(4)).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreIoError);
    expect((error as StoreIoError).operation).toBe('set');
    expect((error as Error).message).toMatch(/s3:PutObject/);
    expect(mock.commandCalls(PutObjectCommand)).toHaveLength(1);
  });

  it('says what to do when throttling outlasts every retry', async () => {
    mock.reset();
    mock.on(GetObjectCommand).rejects(
      new S3ServiceException({
        name: 'SlowDown',
        $fault: 'server',
        $metadata: meta(503, 8),
        message: 'Please reduce your request rate.',
      }),
    );
    const error = await store.getRange('/k', { suffixLength: 8 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreIoError);
    expect((error as Error).message).toMatch(/after 8 attempts.*AWS_MAX_ATTEMPTS/s);
  });
});

describe('makeS3Client', () => {
  it('reads region, endpoint and retries from the given environment', async () => {
    const plain = makeS3Client({});
    expect(await plain.config.region()).toBe('us-east-1');
    expect(await plain.config.maxAttempts()).toBe(8);
    expect(plain.config.retryMode).toBe('adaptive');
    expect(plain.config.forcePathStyle).toBeFalsy();
    plain.destroy();

    const emulated = makeS3Client({
      AWS_DEFAULT_REGION: 'eu-west-1',
      AWS_ENDPOINT_URL: 'http://localhost:4566',
      AWS_MAX_ATTEMPTS: '3',
      AWS_RETRY_MODE: 'standard',
    });
    expect(await emulated.config.region()).toBe('eu-west-1');
    expect(emulated.config.forcePathStyle).toBe(true);
    expect(await emulated.config.maxAttempts()).toBe(3);
    expect(emulated.config.retryMode).toBe('standard');
    emulated.destroy();

    expect(() => makeS3Client({ AWS_MAX_ATTEMPTS: 'many' })).toThrow(S3ClientConfigError);
    expect(() => makeS3Client({ AWS_ENDPOINT_URL_S3: 'localhost:4566' })).toThrow(
      /AWS_ENDPOINT_URL_S3 must be an http/,
    );
  });
});

// --- a TCP proxy that injects faults, one per new connection, then passes through ---

type Fault =
  | 'drop'
  | { readonly cutResponseAfter: number }
  | { readonly status: number; readonly code: string };

interface FaultProxy {
  readonly endpoint: string;
  /** What each connection got, in order: 'pass', 'drop', 'cut' or '<status> <code>'. */
  readonly seen: string[];
  close(): Promise<void>;
}

async function startFaultProxy(target: string, faults: Fault[]): Promise<FaultProxy> {
  const upstream = new URL(target);
  const queue = [...faults];
  const seen: string[] = [];
  const sockets = new Set<Socket>();
  const track = (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    // Sockets are destroyed on purpose here; their errors are the injected fault.
    socket.on('error', () => socket.destroy());
  };

  const server: Server = createServer((client) => {
    track(client);
    const fault = queue.shift();
    if (fault === 'drop') {
      seen.push('drop');
      client.once('data', () => client.destroy());
      return;
    }
    if (fault !== undefined && 'status' in fault) {
      seen.push(`${fault.status} ${fault.code}`);
      client.once('data', () => client.end(errorResponse(fault.status, fault.code)));
      return;
    }
    seen.push(fault === undefined ? 'pass' : 'cut');
    const server = connect(Number(upstream.port), upstream.hostname);
    track(server);
    client.pipe(server);
    if (fault === undefined) {
      server.pipe(client);
      return;
    }
    let sent = 0;
    server.on('data', (chunk: Buffer) => {
      const room = fault.cutResponseAfter - sent;
      if (chunk.length < room) {
        client.write(chunk);
        sent += chunk.length;
        return;
      }
      client.write(chunk.subarray(0, room), () => {
        client.destroy();
        server.destroy();
      });
      sent = fault.cutResponseAfter;
      server.pause();
    });
    server.on('end', () => client.end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('proxy has no port');
  return {
    endpoint: `http://127.0.0.1:${address.port}`,
    seen,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

function errorResponse(status: number, code: string): string {
  const body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>injected by the test proxy</Message><RequestId>${randomBytes(8).toString('hex')}</RequestId></Error>`;
  return [
    `HTTP/1.1 ${status} ${code}`,
    'Content-Type: application/xml',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Connection: close',
    '',
    body,
  ].join('\r\n');
}
