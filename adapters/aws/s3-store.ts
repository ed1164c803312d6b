// The Store port over one S3 bucket and key prefix: store key '/0/zarr.json' of
// `s3://bucket/out.zarr` is object 'out.zarr/0/zarr.json'.
//
// Retries of throttling (SlowDown, 503), 5xx and dropped connections belong to the
// client's retry strategy (clients.ts). The store adds only what that strategy cannot
// see: a response body cut off after the headers arrived (the SDK has already handed
// over a successful response; the stream fails later), and a ranged answer that is not
// the range asked for. Both would otherwise surface as errors or, worse, wrong bytes.

import {
  DeleteObjectCommand,
  GetObjectCommand,
  type GetObjectCommandOutput,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  PutObjectCommand,
  type S3Client,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import {
  type AbsolutePath,
  checkKey,
  type ListedObject,
  type RangeQuery,
  type Store,
} from '../../core/store/index.ts';
import { normalizePrefix, sliceRange } from '../../core/store/keys.ts';
import { type S3Operation, StoreIoError } from './errors.ts';

const MiB = 1024 * 1024;

export interface S3StoreOptions {
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix inside the bucket ('' or omitted: the bucket root); slashes at either end are ignored. */
  readonly prefix?: string;
  /** Objects of at least this many bytes go up as multipart uploads (default 16 MiB). */
  readonly multipartThreshold?: number;
  /** Part size of multipart uploads (default 8 MiB; S3's minimum is 5 MiB). */
  readonly partSize?: number;
  /** Keys per ListObjectsV2 page (default 1000, S3's maximum); tests use small pages. */
  readonly listPageSize?: number;
  /** Attempts at reading a response body that breaks off mid-stream (default 3). */
  readonly bodyAttempts?: number;
  /**
   * Object tags (URL query form, "k=v&k2=v2") per object key, or undefined for none. The
   * stack's lifecycle rule expires seam partials by tag, since lifecycle prefixes cannot
   * hold wildcards like jobs/*​/partials/.
   */
  readonly tagging?: (objectKey: string) => string | undefined;
}

export class S3Store implements Store {
  readonly client: S3Client;
  readonly bucket: string;
  /** The prefix without leading or trailing slash; '' is the bucket root. */
  readonly prefix: string;
  readonly location: string;
  private readonly multipartThreshold: number;
  private readonly partSize: number;
  private readonly listPageSize: number;
  private readonly bodyAttempts: number;
  private readonly tagging: ((objectKey: string) => string | undefined) | undefined;

  constructor(o: S3StoreOptions) {
    this.client = o.client;
    this.bucket = o.bucket;
    this.prefix = normalizePrefix(o.prefix ?? '');
    this.location = this.prefix === '' ? `s3://${o.bucket}` : `s3://${o.bucket}/${this.prefix}`;
    this.multipartThreshold = o.multipartThreshold ?? 16 * MiB;
    this.partSize = o.partSize ?? 8 * MiB;
    this.listPageSize = o.listPageSize ?? 1000;
    this.bodyAttempts = o.bodyAttempts ?? 3;
    this.tagging = o.tagging;
  }

  /** The S3 object key that store key `key` maps to. */
  objectKey(key: AbsolutePath): string {
    checkKey(key);
    return this.prefix === '' ? key.slice(1) : `${this.prefix}${key}`;
  }

  async get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    return (await this.fetch('get', this.objectKey(key), undefined))?.body;
  }

  async getRange(key: AbsolutePath, range: RangeQuery): Promise<Uint8Array | undefined> {
    const Key = this.objectKey(key);
    let header = rangeHeader(range);
    // A server may answer another range than asked (HTTP lets it send the whole object;
    // s3rver ignores suffix ranges and sends the head). Taking its bytes as asked-for
    // would be silent corruption, so the answer is checked against Content-Range and,
    // now that the size is known, asked again with explicit offsets.
    for (let ask = 1; ; ask++) {
      const answer = await this.fetch('getRange', Key, header);
      if (answer === undefined) return undefined;
      if (answer.status === 416) return new Uint8Array(0);
      const span = parseContentRange(answer.contentRange);
      if (span === undefined) {
        if (answer.status === 206)
          throw this.failure('getRange', Key, new Error('a 206 answer without Content-Range'));
        return sliceRange(answer.body, range);
      }
      const want = wantedSpan(range, span.total);
      if (want.end <= want.start) return new Uint8Array(0);
      if (span.start <= want.start && want.end <= span.end)
        return answer.body.subarray(want.start - span.start, want.end - span.start);
      if (ask === 2)
        throw this.failure(
          'getRange',
          Key,
          new Error(
            `asked for ${header}, the server answered "${answer.contentRange}" twice; it does not serve byte ranges correctly`,
          ),
        );
      header = `bytes=${want.start}-${want.end - 1}`;
    }
  }

  async set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    const Key = this.objectKey(key);
    const Tagging = this.tagging?.(Key);
    try {
      if (value.byteLength >= this.multipartThreshold) {
        // lib-storage aborts the multipart upload on failure, so no orphaned parts are billed.
        const upload = new Upload({
          client: this.client,
          params: { Bucket: this.bucket, Key, Body: value, ...(Tagging ? { Tagging } : {}) },
          partSize: this.partSize,
        });
        await upload.done();
      } else {
        await this.client.send(
          new PutObjectCommand({
            Bucket: this.bucket,
            Key,
            Body: value,
            ...(Tagging ? { Tagging } : {}),
          }),
        );
      }
    } catch (error) {
      throw this.failure('set', Key, error);
    }
  }

  async delete(key: AbsolutePath): Promise<void> {
    const Key = this.objectKey(key);
    try {
      // S3 answers 204 for a missing key too, which is what the port asks for.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }));
    } catch (error) {
      throw this.failure('delete', Key, error);
    }
  }

  async *list(prefix: string): AsyncIterable<AbsolutePath> {
    for await (const o of this.listWithSizes(prefix)) yield o.key;
  }

  /** The listing's own sizes (ListObjectsV2 returns Size with each key): no HEAD per object. */
  async *listWithSizes(prefix: string): AsyncIterable<ListedObject> {
    const relative = prefix.startsWith('/') ? prefix.slice(1) : prefix;
    const Prefix = this.prefix === '' ? relative : `${this.prefix}/${relative}`;
    const strip = this.prefix === '' ? 0 : this.prefix.length + 1;
    let token: string | undefined;
    do {
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.listPage(Prefix, token);
      } catch (error) {
        throw this.failure('list', Prefix, error);
      }
      for (const object of page.Contents ?? []) {
        // A key ending in '/' is a console "folder" placeholder, not an object of the store.
        if (object.Key === undefined || object.Key.endsWith('/')) continue;
        if (object.Size === undefined)
          throw this.failure(
            'list',
            Prefix,
            new Error(`the listing gave no size for ${object.Key}`),
          );
        yield { key: `/${object.Key.slice(strip)}` as AbsolutePath, size: object.Size };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  private listPage(
    Prefix: string,
    ContinuationToken: string | undefined,
  ): Promise<ListObjectsV2CommandOutput> {
    return this.client.send(
      new ListObjectsV2Command({
        Bucket: this.bucket,
        Prefix,
        ContinuationToken,
        MaxKeys: this.listPageSize,
      }),
    );
  }

  /** One GET, body read whole; undefined for a missing key. */
  private async fetch(
    operation: 'get' | 'getRange',
    Key: string,
    Range: string | undefined,
  ): Promise<{ body: Uint8Array; contentRange: string | undefined; status: number } | undefined> {
    for (let attempt = 1; ; attempt++) {
      let response: GetObjectCommandOutput;
      try {
        response = await this.client.send(
          new GetObjectCommand({ Bucket: this.bucket, Key, Range }),
        );
      } catch (error) {
        if (isMissingKey(error)) return undefined;
        // A range that starts past the end: the caller answers an empty slice, as the
        // other stores do.
        if (Range !== undefined && statusOf(error) === 416)
          return { body: new Uint8Array(0), contentRange: undefined, status: 416 };
        throw this.failure(operation, Key, error);
      }
      try {
        const body = await readBody(response.Body, response.ContentLength);
        const status = response.$metadata.httpStatusCode ?? 200;
        return { body, contentRange: response.ContentRange, status };
      } catch (error) {
        if (attempt >= this.bodyAttempts) throw this.failure(operation, Key, error);
      }
    }
  }

  private failure(operation: S3Operation, key: string, cause: unknown): StoreIoError {
    return new StoreIoError(operation, this.bucket, key, { cause });
  }
}

function rangeHeader(range: RangeQuery): string {
  // HTTP cannot ask for zero bytes; ask for one so a missing key still reads as missing.
  if ('suffixLength' in range) return `bytes=-${Math.max(1, range.suffixLength)}`;
  return `bytes=${range.offset}-${range.offset + Math.max(1, range.length) - 1}`;
}

/** The half-open byte span [start, end) that `range` means in an object of `total` bytes. */
function wantedSpan(range: RangeQuery, total: number): { start: number; end: number } {
  if ('suffixLength' in range)
    return { start: Math.max(0, total - range.suffixLength), end: total };
  return { start: range.offset, end: Math.min(total, range.offset + range.length) };
}

/** `bytes 10-19/100` as the half-open span [10, 20) of 100 bytes. */
function parseContentRange(
  header: string | undefined,
): { start: number; end: number; total: number } | undefined {
  const match = header === undefined ? null : /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  if (match === null) return undefined;
  return { start: Number(match[1]), end: Number(match[2]) + 1, total: Number(match[3]) };
}

/** The body as one Uint8Array, allocated once when the length is known. */
async function readBody(body: unknown, contentLength: number | undefined): Promise<Uint8Array> {
  if (body === undefined || body === null) return new Uint8Array(0);
  if (!isAsyncIterable(body)) {
    // Not Node's IncomingMessage (a custom request handler): use the SDK's own reader.
    return (body as { transformToByteArray(): Promise<Uint8Array> }).transformToByteArray();
  }
  if (contentLength === undefined) {
    const chunks: Uint8Array[] = [];
    for await (const chunk of body) chunks.push(chunk);
    const whole = Buffer.concat(chunks);
    return new Uint8Array(whole.buffer, whole.byteOffset, whole.byteLength);
  }
  const out = new Uint8Array(contentLength);
  let filled = 0;
  for await (const chunk of body) {
    if (filled + chunk.byteLength > contentLength)
      throw new Error(`response body is longer than its Content-Length ${contentLength}`);
    out.set(chunk, filled);
    filled += chunk.byteLength;
  }
  // Node ends some cut-off bodies without an error; the length is the only witness.
  if (filled !== contentLength)
    throw new Error(`response body ended after ${filled} of ${contentLength} bytes`);
  return out;
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

function statusOf(error: unknown): number | undefined {
  if (typeof error !== 'object' || error === null || !('$metadata' in error)) return undefined;
  const status = (error.$metadata as { httpStatusCode?: unknown } | undefined)?.httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

// NoSuchBucket is a 404 too, but a mistyped bucket must fail loudly, not read as an
// empty volume of fill values.
function isMissingKey(error: unknown): boolean {
  const name = error instanceof Error ? error.name : undefined;
  return name === 'NoSuchKey' || (statusOf(error) === 404 && name !== 'NoSuchBucket');
}
