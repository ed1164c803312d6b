// Whose fault is an error: the table of classifyFault over real error objects. The fs
// errors come from the kernel (a full and a read-only tmpfs where this process may mount
// one, /dev/full, /proc, /sys), the network error from a refused connection on loopback,
// the service errors are the SDK's own exception classes, constructed as its
// deserializers construct them.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConditionalCheckFailedException,
  DynamoDBServiceException,
  ProvisionedThroughputExceededException,
} from '@aws-sdk/client-dynamodb';
import { NoSuchKey, S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreIoError } from '../../adapters/aws/errors.ts';
import { Box } from '../../core/geometry/index.ts';
import {
  LeaseLostError,
  LedgerClosedError,
  LedgerIpcError,
  LedgerWriteError,
  RemoteLedgerError,
} from '../../core/ledger/index.ts';
import { ChunkFailure, classifyFault } from '../../core/pipeline/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { VolumeReadError, VolumeWriteError } from '../../core/volume/index.ts';

/** The error `fn` throws (the test fails if it throws none). */
async function thrown(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

interface Mount {
  dir: string;
  unmount: () => void;
}

/** A tmpfs at a new directory, or why it could not be mounted. */
function mountTmpfs(options: string): Mount | { why: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-fault-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmdirSync(dir);
    return { why: String((error as { stderr?: Buffer }).stderr ?? error).trim() };
  }
  return {
    dir,
    unmount: () => {
      execFileSync('umount', ['-l', dir]);
      rmdirSync(dir);
    },
  };
}

const mounts: Mount[] = [];
afterAll(() => {
  for (const m of mounts) m.unmount();
});

/** A real ENOSPC: a LocalStore write into a full 1 MiB tmpfs (or /dev/full without mount). */
let enospc: unknown;
let fullDir: string;
/** A real EROFS: a LocalStore write into a read-only tmpfs (injected without mount). */
let erofs: unknown;
let readOnlyDir: string;

beforeAll(async () => {
  const full = mountTmpfs('size=1m');
  if ('why' in full) {
    console.warn(`tmpfs not mountable (${full.why}): ENOSPC from /dev/full instead`);
    fullDir = '/dev';
    enospc = await thrown(() => writeFileSync('/dev/full', 'x'));
  } else {
    mounts.push(full);
    fullDir = full.dir;
    await thrown(() => writeFileSync(join(full.dir, 'filler'), Buffer.alloc(2 << 20)));
    enospc = await thrown(() =>
      new LocalStore(full.dir, { fsync: false }).set('/0/c/0/0/0', new Uint8Array(64 << 10)),
    );
  }
  const ro = mountTmpfs('size=64k,ro');
  if ('why' in ro) {
    console.warn(`tmpfs not mountable (${ro.why}): EROFS injected instead`);
    readOnlyDir = '/read-only';
    erofs = Object.assign(new Error(`EROFS: read-only file system, mkdir '${readOnlyDir}/0'`), {
      code: 'EROFS',
      syscall: 'mkdir',
      path: `${readOnlyDir}/0`,
    });
  } else {
    mounts.push(ro);
    readOnlyDir = ro.dir;
    erofs = await thrown(() => new LocalStore(ro.dir).set('/zarr.json', new Uint8Array(4)));
  }
});

/** A refused TCP connection on loopback: a port that was just listening and is closed. */
async function refusedConnection(): Promise<unknown> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.on('error', resolve);
  });
}

const slowDown = () =>
  new S3ServiceException({
    name: 'SlowDown',
    $fault: 'server',
    $metadata: { httpStatusCode: 503, attempts: 3 },
    message: 'Please reduce your request rate.',
  });

describe('classifyFault: the environment', () => {
  it('a full disk (ENOSPC from the kernel) names the directory the step wrote into', () => {
    expect((enospc as { code?: string }).code).toBe('ENOSPC');
    const f = classifyFault(enospc, fullDir);
    expect(f).toMatchObject({ kind: 'environment', code: 'ENOSPC', place: fullDir });
    expect(f.kind === 'environment' && f.message).toContain(`the filesystem of ${fullDir} is full`);
  });

  it('the place defaults to the directory of the file the error names', () => {
    const f = classifyFault(erofs);
    expect(f).toMatchObject({ kind: 'environment', code: 'EROFS' });
    expect(f.kind === 'environment' && f.place?.startsWith(readOnlyDir)).toBe(true);
    expect(f.kind === 'environment' && f.message).toContain('read-only filesystem');
  });

  it('an I/O error and a permission error from the kernel', async () => {
    const eio = await thrown(() => writeFileSync('/proc/version', 'x'));
    expect((eio as { code?: string }).code).toBe('EIO');
    expect(classifyFault(eio, '/data')).toMatchObject({ kind: 'environment', code: 'EIO' });
    const eacces = await thrown(() => writeFileSync('/sys/tessera-test', 'x'));
    expect((eacces as { code?: string }).code).toBe('EACCES');
    const f = classifyFault(eacces, '/out');
    expect(f).toMatchObject({ kind: 'environment', code: 'EACCES', place: '/out' });
    expect(f.kind === 'environment' && f.message).toContain('may not write in /out');
  });

  it('walks cause chains: an output block write that failed on a full disk', () => {
    const wrapped = new VolumeWriteError(fullDir, '/0/c/0/0/0', 'no space', { cause: enospc });
    expect(classifyFault(wrapped, fullDir)).toMatchObject({
      kind: 'environment',
      code: 'ENOSPC',
      place: fullDir,
    });
  });

  it('a refused connection (ECONNREFUSED from the kernel)', async () => {
    const e = await refusedConnection();
    expect((e as { code?: string }).code).toBe('ECONNREFUSED');
    expect(classifyFault(e, 's3://bucket/in.zarr')).toMatchObject({
      kind: 'environment',
      code: 'ECONNREFUSED',
      place: 's3://bucket/in.zarr',
    });
  });

  it("S3 throttling that outlived the SDK's retries, wrapped by the S3 store: names bucket and key", () => {
    const e = new StoreIoError('set', 'bucket', 'jobs/j/partials/a', { cause: slowDown() });
    const f = classifyFault(e);
    expect(f).toMatchObject({
      kind: 'environment',
      code: 'SlowDown',
      place: 's3://bucket/jobs/j/partials/a',
    });
    expect(f.kind === 'environment' && f.message).toContain('throttled or unavailable');
  });

  it('service errors by status, by $retryable, by name', () => {
    const internal = new S3ServiceException({
      name: 'InternalError',
      $fault: 'server',
      $metadata: { httpStatusCode: 500 },
    });
    expect(classifyFault(internal).kind).toBe('environment');
    const tooMany = new S3ServiceException({
      name: 'Whatever',
      $fault: 'client',
      $metadata: { httpStatusCode: 429 },
    });
    expect(classifyFault(tooMany).kind).toBe('environment');
    const retryable = new DynamoDBServiceException({
      name: 'SomethingNew',
      $fault: 'client',
      $metadata: { httpStatusCode: 400 },
    });
    retryable.$retryable = { throttling: true };
    expect(classifyFault(retryable).kind).toBe('environment');
    const throughput = new ProvisionedThroughputExceededException({
      $metadata: { httpStatusCode: 400 },
      message: 'The level of configured provisioned throughput for the table was exceeded.',
    });
    expect(classifyFault(throughput)).toMatchObject({
      kind: 'environment',
      code: 'ProvisionedThroughputExceededException',
    });
    const timeout = Object.assign(new Error('Connection timed out after 1000 ms'), {
      name: 'TimeoutError',
    });
    expect(classifyFault(timeout).kind).toBe('environment');
  });

  it('access denied: the same for every chunk, so not the chunk fault', () => {
    const denied = new S3ServiceException({
      name: 'AccessDenied',
      $fault: 'client',
      $metadata: { httpStatusCode: 403 },
      message: 'Access Denied',
    });
    const f = classifyFault(new StoreIoError('get', 'b', 'in.zarr/c/0/0/0', { cause: denied }));
    expect(f).toMatchObject({ kind: 'environment', code: 'AccessDenied' });
    expect(f.kind === 'environment' && f.message).toContain('credentials');
  });

  it('a ledger that cannot record, or whose process is gone', () => {
    const write = new LedgerWriteError('/state', 'ENOSPC', 'appending to ledger.jsonl', {
      cause: enospc,
    });
    const f = classifyFault(write, 'the ledger');
    expect(f).toMatchObject({ kind: 'environment', code: 'ENOSPC', place: '/state' });
    expect(f.kind === 'environment' && f.message).toBe(
      'ledger state directory /state: appending to ledger.jsonl failed (ENOSPC); ' +
        'the filesystem of /state is full: free space there',
    );
    expect(classifyFault(new LedgerIpcError('channel closed')).kind).toBe('environment');
    expect(classifyFault(new LedgerClosedError('/state')).kind).toBe('environment');
    // As a LedgerClosedError thrown in the coordinator reaches a worker over IPC.
    const closed = new LedgerClosedError('/state');
    expect(classifyFault(new RemoteLedgerError(closed.name, closed.message)).kind).toBe(
      'environment',
    );
    expect(classifyFault(new RemoteLedgerError('TypeError', 'x is undefined'))).toEqual({
      kind: 'chunk',
    });
  });
});

describe("classifyFault: the chunk's own", () => {
  it('NaN from the model, a corrupt input chunk, a model error, anything unknown', async () => {
    expect(classifyFault(new ChunkFailure('chunk 0_0_0: the model returned NaN', '0_0_0'))).toEqual(
      {
        kind: 'chunk',
      },
    );
    const corrupt = new VolumeReadError(
      '/in.zarr',
      '0',
      new Box([0, 0, 0], [8, 8, 8]),
      'corrupt-chunk',
      'chunk c/0/0/0 is corrupt (invalid zstd frame)',
      { cause: new Error('invalid zstd frame') },
    );
    expect(classifyFault(corrupt)).toEqual({ kind: 'chunk' });
    expect(classifyFault(new Error('[ONNXRuntimeError] : 2 : INVALID_ARGUMENT'))).toEqual({
      kind: 'chunk',
    });
    expect(classifyFault('a string')).toEqual({ kind: 'chunk' });
    expect(classifyFault(undefined)).toEqual({ kind: 'chunk' });
  });

  it('a missing file (ENOENT) is not a place fault', async () => {
    const e = await thrown(() => readFileSync(join(tmpdir(), 'tessera-no-such-file')));
    expect((e as { code?: string }).code).toBe('ENOENT');
    expect(classifyFault(e)).toEqual({ kind: 'chunk' });
  });

  it('client-side service errors that are no throttling', () => {
    const missing = new NoSuchKey({ $metadata: { httpStatusCode: 404 }, message: 'gone' });
    expect(classifyFault(missing)).toEqual({ kind: 'chunk' });
    const condition = new ConditionalCheckFailedException({
      $metadata: { httpStatusCode: 400 },
      message: 'The conditional request failed',
    });
    expect(classifyFault(condition)).toEqual({ kind: 'chunk' });
  });

  it('a lost lease is handled as such, not as a place fault', () => {
    const claim = {
      jobId: 'j',
      chunkId: '0_0_0',
      index: 0,
      owner: 'w',
      token: 1,
      attempt: 1,
      leaseExpiresAt: 0,
    };
    const e = new LeaseLostError('complete', claim, {
      ...claim,
      status: 'RUNNING',
      owner: 'other',
      token: 2,
      attempts: 2,
      updatedAt: 0,
    });
    expect(classifyFault(e)).toEqual({ kind: 'chunk' });
  });

  it('a cause chain that loops ends', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    (a as { cause?: unknown }).cause = b;
    expect(classifyFault(a)).toEqual({ kind: 'chunk' });
  });
});
