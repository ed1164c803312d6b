// MarkFailed: a job's (or a manifest's) status document says FAILED with the reason
// the state machine caught, beside the manifest's own status; a REJECTED manifest keeps
// its field-by-field errors.

import type { ManifestLocation, MarkFailedEvent } from '../../contracts/cloud.ts';
import { KEYS } from '../../contracts/cloud.ts';
import { MAX_MANIFEST_BYTES } from '../manifest/index.ts';
import type { CloudDeps } from './deps.ts';
import { cloudJobId, locationProblem, rejectedName } from './manifest-intake.ts';
import { bucketKey as key, readStatusAt, tryJson, writeStatus } from './status.ts';

export async function markFailedStep(
  deps: CloudDeps,
  e: MarkFailedEvent,
): Promise<{ jobId: string; reason: string }> {
  const reason = e.reason ?? causeMessage(e.error) ?? 'the pipeline failed (no reason given)';
  // A Plan failure has no job id yet: derive it from the manifest as the planner would,
  // so the failure lands beside the manifest's own status (a REJECTED one keeps its errors).
  // A manifest that never became a job gets its status in the rejected namespace, never
  // under jobs/<name>/, which could be another job's.
  const ref: StatusRef = e.jobId
    ? jobStatusRef(e.jobId)
    : e.manifest
      ? await failedStatusRef(deps, e.manifest)
      : rejectedStatusRef('unknown');
  const jobId = ref.id;
  const status = await readStatusAt(deps, ref.key);
  // A rejected manifest's execution fails for the reason already recorded, field by field.
  if (status?.status === 'REJECTED') return { jobId, reason: status.reason ?? reason };
  await writeStatus(
    deps,
    {
      jobId,
      status: 'FAILED',
      manifest: status?.manifest ?? e.manifest ?? { bucket: deps.bucket, key: '' },
      reason,
      ...(status?.errors ? { errors: status.errors } : {}),
      ...(status?.output ? { output: status.output } : {}),
      ...(status?.executionArn ? { executionArn: status.executionArn } : {}),
      ...(status?.workerFailures ? { workerFailures: status.workerFailures } : {}),
    },
    ref.key,
  );
  return { jobId, reason };
}

/** A status document's place: a job's, or the rejected namespace's for a manifest's name. */
interface StatusRef {
  id: string;
  key: string;
}
const jobStatusRef = (jobId: string): StatusRef => ({ id: jobId, key: KEYS.status(jobId) });
const rejectedStatusRef = (name: string): StatusRef => ({
  id: name,
  key: KEYS.rejectedStatus(name),
});

async function failedStatusRef(deps: CloudDeps, loc: ManifestLocation): Promise<StatusRef> {
  try {
    return await statusRefForLocation(deps, loc);
  } catch (error) {
    // The manifest itself may be gone (or unreadable): name the status after its key.
    if (!(error instanceof Error)) throw error;
    return rejectedStatusRef(rejectedName(loc.key));
  }
}

/** The job a manifest object maps to, or its rejected-status name when it never became one. */
async function statusRefForLocation(deps: CloudDeps, loc: ManifestLocation): Promise<StatusRef> {
  if (locationProblem(deps, loc) !== undefined) return rejectedStatusRef(rejectedName(loc.key));
  const fetched = await deps.fetchManifest(loc, { maxBytes: MAX_MANIFEST_BYTES });
  if (!('bytes' in fetched) || fetched.bytes.byteLength > MAX_MANIFEST_BYTES)
    return rejectedStatusRef(rejectedName(loc.key));
  const { bytes, version } = fetched;
  const parsed = tryJson(new TextDecoder().decode(bytes)) as { name?: unknown } | undefined;
  const name = rejectedName(loc.key, bytes);
  if (parsed?.name !== name) return rejectedStatusRef(name);
  // Accepted manifests have a frozen copy under their job id; rejected ones only a status by name.
  const jobId = cloudJobId(name, loc, version);
  return (await deps.bucketStore.get(key(KEYS.jobManifest(jobId)))) !== undefined
    ? jobStatusRef(jobId)
    : rejectedStatusRef(name);
}

/** A Lambda or Batch failure's Cause is often JSON ({errorMessage} or a Batch job description). */
function causeMessage(error: MarkFailedEvent['error']): string | undefined {
  if (!error) return undefined;
  const cause = error.Cause;
  if (cause) {
    const parsed = tryJson(cause) as { errorMessage?: string; StatusReason?: string } | undefined;
    const msg = parsed?.errorMessage ?? parsed?.StatusReason ?? (parsed ? undefined : cause);
    if (msg) return `${error.Error ?? 'Error'}: ${msg}`;
  }
  return error.Error;
}
