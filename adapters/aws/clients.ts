// The S3 client every Tessera component uses, configured from the environment, and the
// `s3://` scheme for core's openStoreForUrl.
//
// Why these settings: a worker reads and writes thousands of objects per chunk, so
// connections are kept alive and pooled (64 sockets: enough to overlap block writes,
// few enough not to trip S3's per-prefix request rate). Pooled sockets that S3 closed
// while idle come back as ECONNRESET, and busy prefixes answer 503 SlowDown, so the
// adaptive retry mode (backoff plus client-side rate limiting after throttling) gets
// 8 attempts instead of the SDK's 3.

import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { InvalidUrlError } from '../../core/manifest/errors.ts';
import { parseS3Url, type S3Location } from '../../core/manifest/url.ts';
import { InvalidStoreUrlError, registerStoreScheme } from '../../core/store/index.ts';
import { S3ClientConfigError } from './errors.ts';
import { S3Store, type S3StoreOptions } from './s3-store.ts';

export const DEFAULT_MAX_ATTEMPTS = 8;
export const MAX_SOCKETS = 64;
const RETRY_MODES = ['standard', 'adaptive'] as const;

/**
 * An S3 client from `env`: region from AWS_REGION / AWS_DEFAULT_REGION (default
 * us-east-1); endpoint from AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL, with path-style
 * addressing (emulators and LocalStack serve no per-bucket host names); retries from
 * AWS_MAX_ATTEMPTS (default 8) and AWS_RETRY_MODE (default adaptive). Credentials come
 * from the SDK's default chain unless `overrides` sets them.
 */
export function makeS3Client(
  env: NodeJS.ProcessEnv = process.env,
  overrides: S3ClientConfig = {},
): S3Client {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1';
  const endpoint = endpointOf(env);
  return new S3Client({
    region,
    maxAttempts: maxAttemptsOf(env),
    retryMode: retryModeOf(env),
    ...(endpoint === undefined ? {} : { endpoint, forcePathStyle: true }),
    requestHandler: {
      connectionTimeout: 5_000,
      // Idle time on an open socket, not total time: a 5 GiB download may take long,
      // a stalled one is cut off and retried.
      socketTimeout: 60_000,
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: MAX_SOCKETS }),
    },
    ...overrides,
  });
}

let defaultClient: S3Client | undefined;

function sharedClient(): S3Client {
  if (defaultClient === undefined) defaultClient = makeS3Client();
  return defaultClient;
}

/**
 * Makes openStoreForUrl('s3://bucket/path/to/array.zarr') return an S3Store. All
 * stores share `client`, or one client made from process.env on first use.
 */
export function registerS3(
  client?: S3Client,
  storeOptions: Omit<S3StoreOptions, 'client' | 'bucket' | 'prefix'> = {},
): void {
  registerStoreScheme('s3', (url) => {
    const { bucket, key } = parseStoreUrl(url);
    return new S3Store({ ...storeOptions, client: client ?? sharedClient(), bucket, prefix: key });
  });
}

function parseStoreUrl(url: string): S3Location {
  try {
    return parseS3Url(url);
  } catch (error) {
    // openStoreForUrl's callers handle one error type for every scheme.
    if (!(error instanceof InvalidUrlError)) throw error;
    throw new InvalidStoreUrlError(url, error.reason, { cause: error });
  }
}

function endpointOf(env: NodeJS.ProcessEnv): string | undefined {
  for (const variable of ['AWS_ENDPOINT_URL_S3', 'AWS_ENDPOINT_URL'] as const) {
    const value = env[variable];
    if (value === undefined || value === '') continue;
    if (!URL.canParse(value) || !/^https?:$/.test(new URL(value).protocol))
      throw new S3ClientConfigError(variable, value, 'an http:// or https:// URL');
    return value;
  }
  return undefined;
}

function maxAttemptsOf(env: NodeJS.ProcessEnv): number {
  const value = env.AWS_MAX_ATTEMPTS;
  if (value === undefined || value === '') return DEFAULT_MAX_ATTEMPTS;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new S3ClientConfigError('AWS_MAX_ATTEMPTS', value, 'a positive integer');
  return n;
}

function retryModeOf(env: NodeJS.ProcessEnv): (typeof RETRY_MODES)[number] {
  const value = env.AWS_RETRY_MODE;
  if (value === undefined || value === '') return 'adaptive';
  const mode = RETRY_MODES.find((m) => m === value);
  if (mode === undefined)
    throw new S3ClientConfigError('AWS_RETRY_MODE', value, `one of ${RETRY_MODES.join(', ')}`);
  return mode;
}
