// Planner Lambda: an S3 ObjectCreated event on manifests/*.json plans the job and starts
// the pipeline; invoked by the state machine's Plan task, it plans (idempotently) and
// returns the plan summary.

import type { S3Event } from 'aws-lambda';
import { handleManifestCreated, planFromManifest } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { ManifestLocation, PlanTaskEvent, PlanTaskResult } from './contracts.ts';

const deps = cloudDepsFromEnv();

export async function handler(event: S3Event | PlanTaskEvent): Promise<PlanTaskResult | { planned: string[]; rejected: string[] }> {
  if ('Records' in event) {
    const outcomes = await handleManifestCreated(deps, manifestLocations(event));
    return {
      planned: outcomes.flatMap((o) => (o.kind === 'planned' ? [o.result.jobId] : [])),
      rejected: outcomes.flatMap((o) => (o.kind === 'rejected' ? [o.statusKey] : [])),
    };
  }
  const outcome = await planFromManifest(deps, event.manifest);
  if (outcome.kind === 'rejected') throw outcome.error;
  return outcome.result;
}

/** S3 event records → manifest locations (keys arrive URL-encoded, spaces as '+'). */
export function manifestLocations(event: S3Event): ManifestLocation[] {
  return event.Records.filter((r) => r.eventName.startsWith('ObjectCreated')).map((r) => ({
    bucket: r.s3.bucket.name,
    key: decodeURIComponent(r.s3.object.key.replace(/\+/g, ' ')),
    ...(r.s3.object.versionId ? { versionId: r.s3.object.versionId } : {}),
  }));
}
