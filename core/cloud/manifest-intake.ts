// Manifest intake: a manifest object becomes a job (an id from its object version, a
// frozen copy every later step reads) or a REJECTED status document naming every
// problem; nothing else is written for a rejected one.

import { createHash } from 'node:crypto';
import { KEYS, type ManifestLocation } from '../../contracts/cloud.ts';
import {
  checkCloudPolicy,
  cloudPolicyIssues,
  MAX_MANIFEST_BYTES,
  type Manifest,
  ManifestError,
  type ManifestUrls,
  manifestTooLargeIssue,
  parseManifest,
  parseManifestText,
} from '../manifest/index.ts';
import { type JobContext, openJob } from '../pipeline/index.ts';
import { PrefixedStore } from '../store/index.ts';
import type { CloudDeps } from './deps.ts';
import { encodeJson as enc, bucketKey as key, tryJson, writeStatus } from './status.ts';

export interface FrozenManifest {
  jobId: string;
  source: ManifestLocation;
  version: string;
  manifest: Manifest;
}

/**
 * A job id per manifest object version: a duplicate event or a re-upload of the same
 * version maps to the same job; a new version is a new job.
 */
export function cloudJobId(name: string, loc: ManifestLocation, version: string): string {
  const digest = createHash('sha256').update(`${loc.bucket}/${loc.key}#${version}`).digest('hex');
  return `${name}-${digest.slice(0, 10)}`;
}

export type AcceptOutcome =
  | { kind: 'accepted'; jobId: string; manifest: Manifest; source: ManifestLocation }
  | { kind: 'rejected'; statusKey: string; error: ManifestError };

/**
 * Validates a manifest object and fixes its job: the job id (from the object version)
 * and a frozen copy of the manifest that every later step reads, so a re-upload cannot
 * change a running job. Writes no ledger rows.
 *
 * A rejected manifest is no job: its one REJECTED status document goes under
 * KEYS.rejectedStatus(<name>): jobs/<name>/, which no job id can reach (ids have a shape
 * names may not have), or jobs/rejected/<name>/ for a name of that shape, so a manifest that
 * takes another job's id as its name cannot overwrite that job's status.
 */
export async function acceptManifest(
  deps: CloudDeps,
  loc: ManifestLocation,
): Promise<AcceptOutcome> {
  const source = `s3://${loc.bucket}/${loc.key}`;
  // Checked before anything is fetched: the planner reads only buckets the stack allows.
  const where = locationProblem(deps, loc);
  if (where !== undefined)
    return rejectManifest(deps, loc, new ManifestError([{ path: '', message: where }], { source }));
  const fetched = await deps.fetchManifest(loc, { maxBytes: MAX_MANIFEST_BYTES });
  // Refused by size before a byte of it is decoded or parsed.
  if (!('bytes' in fetched) || fetched.bytes.byteLength > MAX_MANIFEST_BYTES) {
    const size = 'bytes' in fetched ? fetched.bytes.byteLength : fetched.oversize;
    return rejectManifest(deps, loc, new ManifestError([manifestTooLargeIssue(size)], { source }));
  }
  const { bytes, version } = fetched;
  let manifest: Manifest;
  try {
    manifest = parseManifestText(new TextDecoder().decode(bytes), source);
    checkCloudPolicy(manifest, deps.policy, source);
  } catch (e) {
    if (!(e instanceof ManifestError)) throw e;
    // Rejected: one status document, no job rows, nothing started. The URL policy is
    // checked on the raw document too, so the sender sees every problem at once.
    const raw = tryJson(new TextDecoder().decode(bytes));
    const extra =
      e.issues.some((i) => i.path === '') || typeof raw !== 'object' || raw === null
        ? []
        : cloudPolicyIssues(raw as ManifestUrls, deps.policy).filter(
            (p) => !e.issues.some((i) => i.path === p.path),
          );
    const error = extra.length > 0 ? new ManifestError([...e.issues, ...extra], { source }) : e;
    return rejectManifest(deps, loc, error, bytes);
  }
  const jobId = cloudJobId(manifest.name, loc, version);
  // Pinned only by a real VersionId (events from a versioned bucket carry one); an ETag is
  // no version id to ask S3 for.
  const pinned: ManifestLocation = loc;
  if ((await deps.bucketStore.get(key(KEYS.jobManifest(jobId)))) === undefined) {
    const frozen: FrozenManifest = { jobId, source: pinned, version, manifest };
    await deps.bucketStore.set(key(KEYS.jobManifest(jobId)), enc(frozen));
    await writeStatus(deps, {
      jobId,
      status: 'SUBMITTED',
      manifest: pinned,
      output: manifest.output.url,
    });
  }
  return { kind: 'accepted', jobId, manifest, source: pinned };
}

/** Writes the REJECTED status of a manifest that never became a job (see acceptManifest). */
export async function rejectManifest(
  deps: CloudDeps,
  loc: ManifestLocation,
  error: ManifestError,
  bytes?: Uint8Array,
): Promise<Extract<AcceptOutcome, { kind: 'rejected' }>> {
  const name = rejectedName(loc.key, bytes);
  const statusKey = KEYS.rejectedStatus(name);
  await writeStatus(
    deps,
    {
      jobId: name,
      status: 'REJECTED',
      manifest: loc,
      reason: error.message,
      errors: [...error.issues],
    },
    statusKey,
  );
  return { kind: 'rejected', statusKey, error };
}

/** Why the planner will not read `loc` at all, or undefined when it may. */
export function locationProblem(deps: CloudDeps, loc: ManifestLocation): string | undefined {
  const buckets = [deps.policy.stackBucket, ...deps.policy.allowedBuckets];
  if (!buckets.includes(loc.bucket))
    return `bucket "${loc.bucket}" is not one this stack reads manifests from (${buckets.join(', ')}); put the manifest in one of those (ask the operator to add the bucket to allowedBuckets)`;
  if (loc.key === '' || loc.key.endsWith('/'))
    return `"${loc.key}" names no manifest object; give the key of a .json file`;
  return undefined;
}

/**
 * Why an S3 event's object is not a manifest this stack's trigger may plan: only uploads
 * under manifests/ of the stack bucket start jobs (what the bucket notification filters
 * on). Anything else reaching the trigger (a misrouted notification, a forged event) is
 * refused without being read.
 */
export function triggerLocationProblem(deps: CloudDeps, loc: ManifestLocation): string | undefined {
  if (loc.bucket === deps.bucket && loc.key.startsWith(KEYS.manifestPrefix)) return undefined;
  return (
    `s3://${loc.bucket}/${loc.key} is not under s3://${deps.bucket}/${KEYS.manifestPrefix}, the only place an upload starts a job; ` +
    `upload the manifest there, or start the state machine with {"manifest": {"bucket": ..., "key": ...}} for one kept elsewhere ` +
    `(if this event was not yours, check the bucket notifications that invoke the planner)`
  );
}

export async function loadCloudJob(deps: CloudDeps, jobId: string): Promise<JobContext> {
  return contextFor(deps, jobId, await frozenManifest(deps, jobId));
}

/** The manifest the Plan task froze for `jobId` (what every later step reads). */
export async function frozenManifest(deps: CloudDeps, jobId: string): Promise<Manifest> {
  const bytes = await deps.bucketStore.get(key(KEYS.jobManifest(jobId)));
  if (!bytes) {
    throw new Error(
      `job ${jobId} has no ${KEYS.jobManifest(jobId)} in s3://${deps.bucket}; it was never planned (drop its manifest into manifests/ first)`,
    );
  }
  const frozen = JSON.parse(new TextDecoder().decode(bytes)) as FrozenManifest;
  return parseManifest(frozen.manifest);
}

export function contextFor(
  deps: CloudDeps,
  jobId: string,
  manifest: Manifest,
): Promise<JobContext> {
  return openJob(manifest, {
    jobId,
    work: new PrefixedStore(deps.bucketStore, `jobs/${jobId}`),
    ...(deps.limits ? { limits: deps.limits } : {}),
    // Cloud outputs are sharded at the chunk pitch unless the manifest says otherwise:
    // a few objects per chunk instead of one per block (see shard-handoff.ts).
    defaultSharding: true,
  });
}

/**
 * A status name for a rejected manifest: its "name" when usable, else the key's basename
 * (always the basename without the bytes, or when they are over the size limit).
 */
export function rejectedName(objectKey: string, bytes?: Uint8Array): string {
  const parsed =
    bytes === undefined || bytes.byteLength > MAX_MANIFEST_BYTES
      ? undefined
      : (tryJson(new TextDecoder().decode(bytes)) as { name?: unknown } | undefined);
  const name = parsed?.name;
  if (typeof name === 'string' && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) && name.length <= 63)
    return name;
  const base =
    objectKey
      .split('/')
      .pop()
      ?.replace(/\.json$/i, '') ?? 'manifest';
  return (
    base
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '')
      .slice(0, 63) || 'manifest'
  );
}
