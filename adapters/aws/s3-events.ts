// S3 notification events → manifest locations. The event is untrusted input (anything
// that may invoke the planner can send one): its shape is checked field by field and a
// bad payload is an S3EventError naming the record and field, never a TypeError.

import type { S3Event } from 'aws-lambda';
import type { ManifestLocation } from '../../contracts/cloud.ts';
import { S3EventError } from './errors.ts';

/**
 * What invoked the planner: an S3 notification (has Records) or a Plan task (has a
 * manifest location). Anything else is an S3EventError, not a TypeError in the handler.
 */
export function plannerEvent(
  event: unknown,
): { kind: 's3'; event: S3Event } | { kind: 'task'; manifest: ManifestLocation } {
  if (isObject(event) && 'Records' in event)
    return { kind: 's3', event: event as unknown as S3Event };
  const manifest = isObject(event) ? event.manifest : undefined;
  if (
    isObject(manifest) &&
    typeof manifest.bucket === 'string' &&
    manifest.bucket.length > 0 &&
    typeof manifest.key === 'string' &&
    manifest.key.length > 0
  ) {
    // The version the trigger accepted (and named the execution after): planning the
    // latest instead would plan a re-upload under the older version's execution.
    const versionId = manifest.versionId;
    if (versionId !== undefined && versionId !== null && typeof versionId !== 'string')
      throw new S3EventError(
        'manifest.versionId',
        undefined,
        `must be a string when present, got ${kind(versionId)}`,
      );
    return {
      kind: 'task',
      manifest: {
        bucket: manifest.bucket,
        key: manifest.key,
        ...(typeof versionId === 'string' && versionId !== '' ? { versionId } : {}),
      },
    };
  }
  throw new S3EventError(
    isObject(event) && 'manifest' in event ? 'manifest' : 'Records',
    undefined,
    `the payload is neither a notification nor a Plan task (got ${kind(event)})`,
  );
}

/** Keys arrive URL-encoded with spaces as '+'; only ObjectCreated records count. */
export function manifestLocations(event: S3Event): ManifestLocation[] {
  const records: unknown = isObject(event) ? event.Records : undefined;
  if (!Array.isArray(records))
    throw new S3EventError(
      'Records',
      undefined,
      `must be an array of records, got ${kind(records)}`,
    );
  const locations: ManifestLocation[] = [];
  for (const [i, record] of records.entries()) {
    const at = `Records[${i}]`;
    if (!isObject(record)) throw new S3EventError(at, i, `must be an object, got ${kind(record)}`);
    const eventName = record.eventName;
    if (typeof eventName !== 'string')
      throw new S3EventError(`${at}.eventName`, i, `must be a string, got ${kind(eventName)}`);
    if (!eventName.startsWith('ObjectCreated')) continue;
    const s3 = isObject(record.s3) ? record.s3 : undefined;
    const bucket = isObject(s3?.bucket) ? s3.bucket.name : undefined;
    const object = isObject(s3?.object) ? s3.object : undefined;
    if (typeof bucket !== 'string' || bucket === '')
      throw new S3EventError(
        `${at}.s3.bucket.name`,
        i,
        `must be a bucket name, got ${kind(bucket)}`,
      );
    const rawKey = object?.key;
    if (typeof rawKey !== 'string' || rawKey === '')
      throw new S3EventError(
        `${at}.s3.object.key`,
        i,
        `must be an object key, got ${kind(rawKey)}`,
      );
    const versionId = object?.versionId;
    if (versionId !== undefined && versionId !== null && typeof versionId !== 'string')
      throw new S3EventError(
        `${at}.s3.object.versionId`,
        i,
        `must be a string when present, got ${kind(versionId)}`,
      );
    locations.push({
      bucket,
      key: decodeKey(rawKey, `${at}.s3.object.key`, i),
      ...(typeof versionId === 'string' && versionId !== '' ? { versionId } : {}),
    });
  }
  return locations;
}

function decodeKey(raw: string, field: string, record: number): string {
  try {
    return decodeURIComponent(raw.replace(/\+/g, ' '));
  } catch (error) {
    if (!(error instanceof URIError)) throw error;
    throw new S3EventError(
      field,
      record,
      `${JSON.stringify(raw.slice(0, 200))} is not valid URL encoding (S3 sends keys percent-encoded)`,
      { cause: error },
    );
  }
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function kind(x: unknown): string {
  if (x === null) return 'null';
  if (Array.isArray(x)) return 'an array';
  if (x === undefined) return 'nothing';
  return typeof x === 'string' ? JSON.stringify(x.slice(0, 100)) : `a ${typeof x}`;
}
