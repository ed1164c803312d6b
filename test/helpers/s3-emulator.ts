// S3 for integration tests: s3rver on a loopback port, or the endpoint named by
// AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL (LocalStack, a real account).
//
// s3rver runs in a child process started with --openssl-legacy-provider, not in the
// test process: it signs ListObjectsV2 continuation tokens with DES, which OpenSSL 3
// (Node 17+) only offers through the legacy provider. Without it every listing that
// needs a second page fails with 500 InternalError, and the flag can only be given
// when a process starts (vitest's workers are not started with it). The child
// forwards s3rver's in-process events over IPC, since s3rver delivers no bucket
// notifications.

import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AbortMultipartUploadCommand,
  type BucketLocationConstraint,
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteObjectsCommand,
  ListMultipartUploadsCommand,
  type ListMultipartUploadsCommandOutput,
  ListObjectsV2Command,
  type S3Client,
} from '@aws-sdk/client-s3';
import type { S3Event, S3EventRecord } from 'aws-lambda';
import { makeS3Client } from '../../adapters/aws/clients.ts';

export interface S3Emulator {
  readonly endpoint: string;
  /** A client for this endpoint, configured as in production (retries, keep-alive). */
  readonly client: S3Client;
  /** True for the local s3rver; false for an endpoint given in the environment. */
  readonly emulated: boolean;
  createBucket(name: string): Promise<void>;
  /**
   * Calls `cb` with an S3 notification event for each object created from now on (keys
   * URL-encoded, as S3 sends them). Only the emulator has these events: against another
   * endpoint this throws. Returns a function that unsubscribes.
   */
  onObjectCreated(cb: (event: S3Event) => unknown): () => void;
  /**
   * Resolves once every event of a request that has already completed was delivered and
   * its callbacks settled (including events of writes those callbacks made); throws
   * what the callbacks threw.
   */
  eventsSettled(): Promise<void>;
  /** Stops s3rver and deletes its directory; against an endpoint, deletes only the buckets created here. */
  stop(): Promise<void>;
}

/** Credentials s3rver accepts; given to emulator clients only, never put in process.env. */
export const EMULATOR_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** A production-configured client for an emulator at `endpoint`, with fake credentials. */
export function emulatorClient(endpoint: string, env: NodeJS.ProcessEnv = {}): S3Client {
  return makeS3Client(
    { AWS_REGION: 'us-east-1', ...env, AWS_ENDPOINT_URL_S3: endpoint },
    { credentials: EMULATOR_CREDENTIALS },
  );
}

/** A bucket name unlikely to exist, even in a shared account (names are global). */
export function uniqueBucketName(label: string): string {
  return `tessera-test-${label}-${randomBytes(5).toString('hex')}`.toLowerCase().slice(0, 63);
}

/**
 * Starts S3 for a test file. `local: true` starts s3rver even when an endpoint is
 * configured (for tests of client behaviour that need to inject faults locally).
 */
export async function startS3(options: { local?: boolean } = {}): Promise<S3Emulator> {
  const endpoint = process.env.AWS_ENDPOINT_URL_S3 || process.env.AWS_ENDPOINT_URL;
  return endpoint && !options.local ? useEndpoint(endpoint) : startS3rver();
}

async function useEndpoint(endpoint: string): Promise<S3Emulator> {
  const client = makeS3Client(process.env);
  const created: string[] = [];
  return {
    endpoint,
    client,
    emulated: false,
    async createBucket(name) {
      await createBucket(client, name);
      created.push(name);
    },
    onObjectCreated() {
      throw new Error(
        `onObjectCreated needs the local s3rver: ${endpoint} delivers S3 events through bucket notifications, not in-process. Start S3 with startS3({ local: true }) for this test.`,
      );
    },
    async eventsSettled() {},
    async stop() {
      try {
        for (const name of created.splice(0)) await deleteBucket(client, name);
      } finally {
        client.destroy();
      }
    },
  };
}

async function startS3rver(): Promise<S3Emulator> {
  const directory = await mkdtemp(join(tmpdir(), 'tessera-s3rver-'));
  const modulePath = createRequire(import.meta.url).resolve('s3rver');
  const child = spawn(
    process.execPath,
    ['--openssl-legacy-provider', '-e', CHILD_SOURCE, modulePath, directory],
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'] },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });

  let port: number;
  try {
    port = await waitForReady(child, () => stderr);
  } catch (error) {
    child.kill('SIGKILL');
    await rm(directory, { recursive: true, force: true });
    throw error;
  }
  const endpoint = `http://127.0.0.1:${port}`;
  const client = emulatorClient(endpoint);
  const events = new EventRelay(child);

  return {
    endpoint,
    client,
    emulated: true,
    createBucket: (name) => createBucket(client, name),
    onObjectCreated: (cb) => events.subscribe(cb),
    eventsSettled: () => events.settled(),
    async stop() {
      client.destroy();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      await rm(directory, { recursive: true, force: true });
      events.throwFailures();
    },
  };
}

// Runs in the child (CommonJS, plain Node): argv is [s3rver module path, directory].
const CHILD_SOURCE = `
const [modulePath, directory] = process.argv.slice(1);
const send = (message) => process.send(message);
const die = (message) => process.send({ type: 'fatal', message }, () => process.exit(1));
function desAvailable() {
  try {
    require('node:crypto').createCipheriv('des', Buffer.alloc(8), Buffer.alloc(8));
    return true;
  } catch (error) {
    die('DES is unavailable (' + error.message + ') although this Node was started with --openssl-legacy-provider, so s3rver cannot page listings. Use a Node build whose OpenSSL ships the legacy provider.');
    return false;
  }
}
// S3 replaces an object atomically (a reader gets the old bytes or the new, never a mix);
// s3rver writes an object and its metadata in place, so two PUTs of one key can
// interleave into bytes neither client sent, and a reader can catch a file mid-write.
// Here each file is written beside its target and renamed over it.
function atomicWrites(lib) {
  const fsp = require('node:fs/promises');
  const { dirname, join } = require('node:path');
  const { createHash } = require('node:crypto');
  const Store = require(join(lib, 'stores', 'filesystem.js'));
  const { ALLOWED_METADATA } = require(join(lib, 'models', 'object.js'));
  let seq = 0;
  async function replace(target, data) {
    const temp = target + '.tessera-tmp-' + process.pid + '-' + seq++;
    await fsp.writeFile(temp, data);
    await fsp.rename(temp, target);
  }
  Store.prototype.putMetadata = async function (bucket, key, metadata, md5) {
    const json = {};
    for (const [name, value] of Object.entries(metadata))
      if (ALLOWED_METADATA.includes(name) || name.startsWith('x-amz-meta-')) json[name] = value;
    if (md5) await replace(this.getResourcePath(bucket, key, 'object.md5'), md5);
    await replace(this.getResourcePath(bucket, key, 'metadata.json'), JSON.stringify(json, null, 2));
  };
  Store.prototype.putObject = async function (object) {
    const objectPath = this.getResourcePath(object.bucket, object.key, 'object');
    await fsp.mkdir(dirname(objectPath), { recursive: true });
    let content = object.content;
    if (!Buffer.isBuffer(content)) {
      const parts = [];
      for await (const part of content) parts.push(part);
      content = Buffer.concat(parts);
    }
    const md5 = createHash('md5').update(content).digest('hex');
    await this.putMetadata(object.bucket, object.key, object.metadata, md5);
    await replace(objectPath, content);
    return { size: content.length, md5 };
  };
}
if (desAvailable()) {
  const S3rver = require(modulePath);
  atomicWrites(require('node:path').dirname(modulePath));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
  server.on('event', (event) => send({ type: 'event', event }));
  server.run().then(
    (address) => send({ type: 'ready', port: address.port }),
    (error) => die(String((error && error.stack) || error)),
  );
}
process.on('message', (message) => {
  if (message.type === 'ping') send({ type: 'pong', id: message.id });
});
process.on('disconnect', () => process.exit(0));
`;

type ChildMessage =
  | { type: 'ready'; port: number }
  | { type: 'fatal'; message: string }
  | { type: 'pong'; id: number }
  | { type: 'event'; event: { Records: S3EventRecord[] } };

function waitForReady(child: ChildProcess, stderr: () => string): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail('it did not start within 30 s'), 30_000);
    const onMessage = (message: ChildMessage) => {
      if (message.type === 'ready') done(() => resolve(message.port));
      else if (message.type === 'fatal') fail(message.message);
    };
    // 'close', not 'exit': by then stderr has been read to the end for the message.
    const onExit = (code: number | null, signal: string | null) =>
      fail(`it exited during startup (code ${code}, signal ${signal})`);
    const onError = (error: Error) => fail(error.message);
    function done(then: () => void) {
      clearTimeout(timer);
      child.off('message', onMessage).off('close', onExit).off('error', onError);
      then();
    }
    function fail(reason: string) {
      const output = stderr().trim();
      done(() =>
        reject(
          new Error(
            `s3rver (node --openssl-legacy-provider) failed: ${reason}${output === '' ? '' : `\n${output}`}`,
          ),
        ),
      );
    }
    child.on('message', onMessage).on('close', onExit).on('error', onError);
  });
}

/** Turns s3rver's events into the notifications S3 would send and hands them to subscribers. */
class EventRelay {
  private readonly listeners = new Set<(event: S3Event) => unknown>();
  private readonly pending = new Set<Promise<void>>();
  private readonly failures: unknown[] = [];
  private readonly pongs = new Map<number, () => void>();
  private nextPing = 0;

  constructor(private readonly child: ChildProcess) {
    child.on('message', (message: ChildMessage) => {
      if (message.type === 'pong') this.pongs.get(message.id)?.();
      else if (message.type === 'event') this.dispatch(message.event.Records);
    });
  }

  subscribe(cb: (event: S3Event) => unknown): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  async settled(): Promise<void> {
    // s3rver emits an event before it answers the request, and IPC keeps order, so a
    // pong proves that every event of an answered request has been dispatched.
    for (;;) {
      await this.ping();
      if (this.pending.size === 0) break;
      await Promise.all(this.pending);
    }
    this.throwFailures();
  }

  throwFailures(): void {
    const failures = this.failures.splice(0);
    if (failures.length > 0)
      throw new AggregateError(failures, `${failures.length} onObjectCreated callback(s) threw`);
  }

  private ping(): Promise<void> {
    const id = this.nextPing++;
    return new Promise((resolve, reject) => {
      if (!this.child.connected) {
        reject(new Error('s3rver is not running'));
        return;
      }
      this.pongs.set(id, () => {
        this.pongs.delete(id);
        resolve();
      });
      this.child.send({ type: 'ping', id });
    });
  }

  private dispatch(records: S3EventRecord[]): void {
    const created = records.filter((r) => r.eventName.startsWith('ObjectCreated:'));
    if (created.length === 0) return;
    const event: S3Event = { Records: created.map(asNotification) };
    for (const listener of this.listeners) {
      const run = Promise.resolve()
        .then(() => listener(structuredClone(event)))
        .then(
          () => undefined,
          (error: unknown) => void this.failures.push(error),
        )
        .finally(() => this.pending.delete(run));
      this.pending.add(run);
    }
  }
}

// Where s3rver's records differ from S3's: S3 URL-encodes the key (space as '+') and
// writes the bucket ARN without spaces.
function asNotification(record: S3EventRecord): S3EventRecord {
  const key = record.s3.object.key
    .split('/')
    .map((segment) => encodeURIComponent(segment).replace(/%20/g, '+'))
    .join('/');
  return {
    ...record,
    s3: {
      ...record.s3,
      bucket: { ...record.s3.bucket, arn: `arn:aws:s3:::${record.s3.bucket.name}` },
      object: { ...record.s3.object, key },
    },
  };
}

async function createBucket(client: S3Client, name: string): Promise<void> {
  const region = await client.config.region();
  // us-east-1 is the one region that refuses an explicit LocationConstraint.
  const configuration =
    region === 'us-east-1'
      ? {}
      : { CreateBucketConfiguration: { LocationConstraint: region as BucketLocationConstraint } };
  await client.send(new CreateBucketCommand({ Bucket: name, ...configuration }));
}

async function deleteBucket(client: S3Client, Bucket: string): Promise<void> {
  let token: string | undefined;
  do {
    const page = await client.send(new ListObjectsV2Command({ Bucket, ContinuationToken: token }));
    const objects = (page.Contents ?? []).flatMap((o) => (o.Key ? [{ Key: o.Key }] : []));
    if (objects.length > 0)
      await client.send(new DeleteObjectsCommand({ Bucket, Delete: { Objects: objects } }));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token !== undefined);
  await abortUploads(client, Bucket);
  await client.send(new DeleteBucketCommand({ Bucket }));
}

// A bucket with unfinished multipart uploads cannot be deleted. Some emulators (s3rver
// itself, when used as the "remote" endpoint) do not implement the listing; they also
// cannot hold such a bucket back, so there is nothing to abort.
async function abortUploads(client: S3Client, Bucket: string): Promise<void> {
  let uploads: ListMultipartUploadsCommandOutput;
  try {
    uploads = await client.send(new ListMultipartUploadsCommand({ Bucket }));
  } catch (error) {
    if (error instanceof Error && error.name === 'NotImplemented') return;
    throw error;
  }
  for (const u of uploads.Uploads ?? [])
    await client.send(
      new AbortMultipartUploadCommand({ Bucket, Key: u.Key, UploadId: u.UploadId }),
    );
}
