// Errors of the S3 adapter. A missing object is not one of them (the store answers
// `undefined`); everything else S3 refuses, or a network failure that outlived the
// SDK's retries, becomes a StoreIoError that says which object and what to check.

import { FleetReadError } from '../../core/cloud/errors.ts';
export type S3Operation = 'get' | 'getRange' | 'set' | 'delete' | 'list';

const IAM_ACTION: Record<S3Operation, string> = {
  get: 's3:GetObject',
  getRange: 's3:GetObject',
  set: 's3:PutObject',
  delete: 's3:DeleteObject',
  list: 's3:ListBucket',
};

/** An S3 request failed for a reason other than a missing key. */
export class StoreIoError extends Error {
  override readonly name = 'StoreIoError';
  /** The S3 error code (`AccessDenied`, `SlowDown`, …) or Node's (`ECONNRESET`), when known. */
  readonly code: string | undefined;
  /** HTTP status of the last attempt; undefined when no response came back. */
  readonly status: number | undefined;

  constructor(
    readonly operation: S3Operation,
    readonly bucket: string,
    /** The object key, or the key prefix for `list`. */
    readonly key: string,
    options: { cause: unknown },
  ) {
    const { code, status, attempts, message } = describeCause(options.cause);
    const what = `${operation} s3://${bucket}/${key}`;
    const how = [code, status === undefined ? undefined : `HTTP ${status}`, message]
      .filter((part) => part !== undefined && part !== '')
      .join(', ');
    const tries = attempts !== undefined && attempts > 1 ? ` after ${attempts} attempts` : '';
    const advice = hint(operation, code, status);
    super(`S3 ${what} failed${tries} (${how}).${advice === '' ? '' : ` ${advice}`}`, options);
    this.code = code;
    this.status = status;
  }
}

/** AWS_MAX_ATTEMPTS, AWS_RETRY_MODE or an endpoint variable holds something unusable. */
export class S3ClientConfigError extends Error {
  override readonly name = 'S3ClientConfigError';
  constructor(
    readonly variable: string,
    readonly value: string,
    expected: string,
  ) {
    super(`environment variable ${variable} must be ${expected}, got ${JSON.stringify(value)}`);
  }
}

function hint(operation: S3Operation, code: string | undefined, status: number | undefined) {
  if (
    status === 403 ||
    code === 'AccessDenied' ||
    code === 'InvalidAccessKeyId' ||
    code === 'SignatureDoesNotMatch' ||
    code === 'ExpiredToken'
  ) {
    const missingAs403 =
      operation === 'get' || operation === 'getRange'
        ? ' (without s3:ListBucket, S3 also answers 403 for an object that does not exist)'
        : '';
    return `Check the credentials (AWS_PROFILE / AWS_ACCESS_KEY_ID, or the task's IAM role) and that the IAM and bucket policies allow ${IAM_ACTION[operation]} on this key${missingAs403}; a KMS-encrypted bucket also needs kms:Decrypt/GenerateDataKey.`;
  }
  if (
    status === 301 ||
    code === 'PermanentRedirect' ||
    code === 'AuthorizationHeaderMalformed' ||
    code === 'IllegalLocationConstraintException'
  ) {
    return "The bucket lives in another region: set AWS_REGION to the bucket's region.";
  }
  if (code === 'NoSuchBucket') {
    return 'Check the bucket name in the URL, and that the bucket exists in this account and region.';
  }
  if (status === undefined && code === undefined) return '';
  if (status === undefined) {
    return 'No response from S3: check the network, the region (AWS_REGION) and any endpoint override (AWS_ENDPOINT_URL / AWS_ENDPOINT_URL_S3).';
  }
  if (status === 429 || status === 503 || code === 'SlowDown' || status >= 500) {
    return 'S3 stayed throttled or unavailable through every retry: spread requests over more key prefixes, lower the concurrency, or raise AWS_MAX_ATTEMPTS.';
  }
  return 'Check the credentials, the bucket policy and the region (AWS_REGION).';
}

function describeCause(cause: unknown): {
  code: string | undefined;
  status: number | undefined;
  attempts: number | undefined;
  message: string | undefined;
} {
  if (typeof cause !== 'object' || cause === null)
    return { code: undefined, status: undefined, attempts: undefined, message: String(cause) };
  const c = cause as {
    name?: unknown;
    code?: unknown;
    message?: unknown;
    $metadata?: { httpStatusCode?: unknown; attempts?: unknown };
  };
  const status = c.$metadata?.httpStatusCode;
  const attempts = c.$metadata?.attempts;
  // SDK service errors carry the S3 code as `name`; Node network errors carry `code`.
  const code =
    typeof c.code === 'string' ? c.code : typeof c.name === 'string' ? c.name : undefined;
  const message = typeof c.message === 'string' ? c.message : undefined;
  return {
    code: code === 'Error' ? undefined : code,
    status: typeof status === 'number' ? status : undefined,
    attempts: typeof attempts === 'number' ? attempts : undefined,
    message: message === code ? undefined : message,
  };
}

/**
 * An S3 notification event the planner cannot read: not the shape S3 sends, or an object
 * key that is not valid URL encoding. `record` is the index in `Records` (undefined for
 * the event as a whole) and `field` the path of the offending value.
 */
export class S3EventError extends Error {
  override readonly name = 'S3EventError';
  constructor(
    readonly field: string,
    readonly record: number | undefined,
    problem: string,
    options?: { cause?: unknown },
  ) {
    super(
      `S3 event ${field}: ${problem}. The planner takes S3 ObjectCreated notifications ` +
        '({"Records": [{"eventName", "s3": {"bucket": {"name"}, "object": {"key"}}}]}) or a ' +
        'Plan task {"manifest": {"bucket", "key", "versionId"?}}; check what invokes it (the bucket ' +
        'notification, or a caller sending another payload).',
      options,
    );
  }
}

/**
 * AWS Batch refused or failed a read Verify makes to learn why workers failed
 * (ListJobs, DescribeJobs). Verify records it and carries on: the ledger, not Batch,
 * decides the job's fate.
 */
export class BatchReadError extends FleetReadError {
  override readonly name = 'BatchReadError';
  readonly code: string | undefined;
  constructor(
    readonly action: 'ListJobs' | 'DescribeJobs',
    batchJobId: string,
    options: { cause: unknown },
  ) {
    const { code, status, message } = describeCause(options.cause);
    const how = [code, status === undefined ? undefined : `HTTP ${status}`, message]
      .filter((part) => part !== undefined && part !== '')
      .join(', ');
    const advice =
      status === 403 || code === 'AccessDeniedException'
        ? ` The verify function's role needs batch:${action} (Resource "*": it supports no resource-level permissions).`
        : status === undefined
          ? ' No response from Batch: check the region (AWS_REGION) and any endpoint override (AWS_ENDPOINT_URL_BATCH / AWS_ENDPOINT_URL).'
          : '';
    super(
      `Batch ${action} for job ${batchJobId} failed (${how || 'unknown error'}).${advice}`,
      batchJobId,
      options,
    );
    this.code = code;
  }
}

/** Batch answered, but knows no job by the id the Work task returned. */
export class BatchJobNotFoundError extends FleetReadError {
  override readonly name = 'BatchJobNotFoundError';
  constructor(batchJobId: string) {
    super(
      `Batch has no job ${batchJobId} (DescribeJobs returned nothing: Batch keeps finished jobs for about 7 days; check the region)`,
      batchJobId,
    );
  }
}

/**
 * The stall watchdog could not check some jobs (the others were checked and the metric
 * published): failing the invocation makes it show in the Lambda's error metric.
 */
export class WatchdogError extends Error {
  override readonly name = 'WatchdogError';
  constructor(readonly failures: { jobId: string; error: Error }[]) {
    super(
      `the stall watchdog could not check ${failures.length} job(s): ${failures
        .slice(0, 5)
        .map((f) => `${f.jobId}: ${f.error.message}`)
        .join(
          '; ',
        )}${failures.length > 5 ? '; ...' : ''}. The others were checked; fix these (the role's ledger read and s3 read/write of jobs/) and the next run retries them`,
      { cause: failures[0]?.error },
    );
  }
}
