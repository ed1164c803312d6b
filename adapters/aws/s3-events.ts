// S3 notification events → manifest locations.

import type { S3Event } from 'aws-lambda';
import type { ManifestLocation } from '../../functions/contracts.ts';

/** Keys arrive URL-encoded with spaces as '+'; only ObjectCreated records count. */
export function manifestLocations(event: S3Event): ManifestLocation[] {
  return event.Records.filter((r) => r.eventName.startsWith('ObjectCreated')).map((r) => ({
    bucket: r.s3.bucket.name,
    key: decodeURIComponent(r.s3.object.key.replace(/\+/g, ' ')),
    ...(r.s3.object.versionId ? { versionId: r.s3.object.versionId } : {}),
  }));
}
