// Planner Lambda: an S3 ObjectCreated event on manifests/*.json plans the job and starts
// the pipeline; invoked by the state machine's Plan task, it plans (idempotently) and
// returns the plan summary.

import type { S3Event } from 'aws-lambda';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import { manifestLocations, plannerEvent } from '../adapters/aws/s3-events.ts';
import type { PlanTaskEvent, PlanTaskResult } from '../contracts/cloud.ts';
import { handleManifestCreated, planFromManifest } from '../core/cloud/index.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

type PlannerResult = PlanTaskResult | { planned: string[]; rejected: string[] };

async function plan(event: S3Event | PlanTaskEvent): Promise<PlannerResult> {
  const e = plannerEvent(event);
  if (e.kind === 's3') {
    const outcomes = await handleManifestCreated(deps, manifestLocations(e.event));
    return {
      planned: outcomes.flatMap((o) => (o.kind === 'planned' ? [o.result.jobId] : [])),
      rejected: outcomes.flatMap((o) => (o.kind === 'rejected' ? [o.statusKey] : [])),
    };
  }
  const outcome = await planFromManifest(deps, e.manifest);
  // From the state machine, a rejected manifest is a failed execution (MarkFailed records why).
  if (outcome.kind === 'rejected') throw outcome.error;
  return outcome.result;
}

export const handler = observe('Plan', plan, (event) => {
  // Log context only; a malformed payload is refused (and named) by plan() itself.
  const records: unknown = (event as { Records?: unknown } | null)?.Records;
  const manifest = (event as { manifest?: { bucket?: unknown; key?: unknown } } | null)?.manifest;
  return Array.isArray(records)
    ? { records: records.length }
    : { manifest: `s3://${String(manifest?.bucket)}/${String(manifest?.key)}` };
});
