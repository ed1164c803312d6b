// The pipeline's cloud steps, written against ports (a bucket Store, a Ledger, and two
// small functions for what only S3 and Step Functions do). The Lambda handlers in
// functions/ are one-liners over these; the tests drive them against emulators.

import { createHash } from 'node:crypto';
import type {
  BlendItem,
  BlendTaskResult,
  FinalizeTaskResult,
  JobStatusDocument,
  ManifestLocation,
  MarkFailedEvent,
  PipelineInput,
  PlanTaskResult,
  VerifyTaskEvent,
  VerifyTaskResult,
  WorkBatchResult,
  WorkerFailure,
} from '../../contracts/cloud.ts';
import { KEYS, WORKER_FAILURES_KEPT } from '../../contracts/cloud.ts';
import type { Ledger } from '../../core/ledger/index.ts';
import {
  type CloudPolicy,
  checkCloudPolicy,
  cloudPolicyIssues,
  MAX_MANIFEST_BYTES,
  type Manifest,
  ManifestError,
  type ManifestUrls,
  manifestTooLargeIssue,
  parseManifest,
  parseManifestText,
} from '../../core/manifest/index.ts';
import {
  checkJobFits,
  type DamagedObject,
  type JobContext,
  openJob,
  type PlanLimits,
  planJob,
  REPORT_KEY,
} from '../../core/pipeline/index.ts';
import { CLOUD_WORKER_MEMORY_MIB } from '../../core/pipeline/memory-estimate.ts';
import {
  blendRange,
  finalizeFinished,
  missingOwnedBlocks,
  nextArraySize,
  verifyRound,
} from '../../core/pipeline/steps.ts';
import { PrefixedStore, type Store } from '../../core/store/index.ts';
import { BatchJobNotFoundError, BatchReadError } from './errors.ts';

export interface CloudDeps {
  /** The stack's bucket name and a store over its root. */
  bucket: string;
  bucketStore: Store;
  ledger: Ledger;
  policy: CloudPolicy;
  limits?: PlanLimits;
  leaseMs?: number;
  maxRounds: number;
  /** Seam blocks per blend Map item (a range of the region's block grid holds about this many). */
  blocksPerBlendItem?: number;
  /**
   * Reads a manifest object; `version` is its VersionId (versioned buckets) or ETag. An
   * object over `maxBytes` may come back unread, as its size only (the S3 adapter stops at
   * the response headers); one read whole anyway is refused by size before it is parsed.
   */
  fetchManifest(loc: ManifestLocation, o: { maxBytes: number }): Promise<FetchedManifest>;
  /** StartExecution with a deterministic name; an existing execution is success. */
  startExecution?(
    name: string,
    input: PipelineInput,
  ): Promise<{ executionArn?: string; alreadyExists: boolean }>;
  /**
   * Failed workers of a Work round's Batch job: its failed array children (the first
   * `limit` described), or the job itself when it is not an array. Throws BatchReadError
   * or BatchJobNotFoundError when Batch cannot say. Absent: Verify reads no Batch state.
   */
  workFailures?(batchJobId: string, o: { limit: number }): Promise<WorkFailures>;
  /**
   * The owned level-0 blocks of a job missing from its output (cloudDeps: one listing
   * with sizes, S3 writes being whole or absent). Verify re-runs the chunks that own them
   * before it calls a job COMPLETE. Absent: Verify trusts the ledger (unit tests of its
   * other decisions, over jobs that have no input).
   */
  ownedOutputDamage?(ctx: JobContext): Promise<readonly DamagedObject[]>;
  /** Operational warnings (a Lambda's log); default: one JSON line on stderr. */
  warn?(message: string, fields: Record<string, unknown>): void;
  now?: () => Date;
}

/** What Batch says about a Work round's failed workers. */
export interface WorkFailures {
  /** Failed workers in all (the parent's status summary), described or not. */
  failed: number;
  described: Omit<WorkerFailure, 'round'>[];
}

export type FetchedManifest =
  | { bytes: Uint8Array; version: string }
  /** Over the limit asked for: its size in bytes, body not read. */
  | { oversize: number; version: string };

interface FrozenManifest {
  jobId: string;
  source: ManifestLocation;
  version: string;
  manifest: Manifest;
}

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);
const key = (k: string): `/${string}` => `/${k}`;

/**
 * A job id per manifest object version: a duplicate event or a re-upload of the same
 * version maps to the same job; a new version is a new job.
 */
export function cloudJobId(name: string, loc: ManifestLocation, version: string): string {
  const digest = createHash('sha256').update(`${loc.bucket}/${loc.key}#${version}`).digest('hex');
  return `${name}-${digest.slice(0, 10)}`;
}

/** What reading and writing status documents needs (the watchdog has no more). */
export type StatusDeps = Pick<CloudDeps, 'bucketStore' | 'now'>;

export async function writeStatus(
  deps: StatusDeps,
  doc: Omit<JobStatusDocument, 'updatedAt'>,
  statusKey = KEYS.status(doc.jobId),
): Promise<void> {
  const full: JobStatusDocument = { ...doc, updatedAt: (deps.now?.() ?? new Date()).toISOString() };
  await deps.bucketStore.set(key(statusKey), enc(full));
}

export function readStatus(
  deps: StatusDeps,
  jobId: string,
): Promise<JobStatusDocument | undefined> {
  return readStatusAt(deps, KEYS.status(jobId));
}

/** The status document at `statusKey` (a job's, or KEYS.rejectedStatus of a manifest's name). */
export async function readStatusAt(
  deps: StatusDeps,
  statusKey: string,
): Promise<JobStatusDocument | undefined> {
  // S3 PUTs are atomic, but emulators (s3rver) can hand a reader a half-written object
  // while another step rewrites the status: read again rather than fail the step.
  for (let attempt = 1; ; attempt++) {
    const bytes = await deps.bucketStore.get(key(statusKey));
    if (!bytes) return undefined;
    const doc = tryJson(new TextDecoder().decode(bytes));
    if (doc !== undefined) return doc as JobStatusDocument;
    if (attempt >= 5) {
      throw new Error(
        `${statusKey} is not valid JSON after ${attempt} reads; delete it, the next step rewrites it`,
      );
    }
    await new Promise((r) => setTimeout(r, 20 * attempt));
  }
}

export type AcceptOutcome =
  | { kind: 'accepted'; jobId: string; manifest: Manifest; source: ManifestLocation }
  | { kind: 'rejected'; statusKey: string; error: ManifestError };

export type PlanOutcome =
  | { kind: 'planned'; result: PlanTaskResult; created: boolean }
  | Extract<AcceptOutcome, { kind: 'rejected' }>;

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
async function rejectManifest(
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
function locationProblem(deps: CloudDeps, loc: ManifestLocation): string | undefined {
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
function triggerLocationProblem(deps: CloudDeps, loc: ManifestLocation): string | undefined {
  if (loc.bucket === deps.bucket && loc.key.startsWith(KEYS.manifestPrefix)) return undefined;
  return (
    `s3://${loc.bucket}/${loc.key} is not under s3://${deps.bucket}/${KEYS.manifestPrefix}, the only place an upload starts a job; ` +
    `upload the manifest there, or start the state machine with {"manifest": {"bucket": ..., "key": ...}} for one kept elsewhere ` +
    `(if this event was not yours, check the bucket notifications that invoke the planner)`
  );
}

/** The Plan task: accept, then create the ledger rows, output array and blend items (idempotent). */
export async function planFromManifest(
  deps: CloudDeps,
  loc: ManifestLocation,
): Promise<PlanOutcome> {
  const accepted = await acceptManifest(deps, loc);
  if (accepted.kind === 'rejected') return accepted;
  const { jobId, manifest } = accepted;
  const ctx = await contextFor(deps, jobId, manifest);
  // Workers that cannot fit in the stack's job definition would fail every chunk: refused
  // here, before any row exists. The model is not read in a Lambda (up to 2 GiB, and no
  // inference runtime in the bundle): each worker checks its signature once, at load.
  const device = manifest.compute.device;
  checkJobFits(ctx, {
    model: 'skip',
    workers: 1,
    memory: {
      bytes: CLOUD_WORKER_MEMORY_MIB[device] * 2 ** 20,
      source: `the stack's ${device.toUpperCase()} worker job definition (${CLOUD_WORKER_MEMORY_MIB[device]} MiB)`,
    },
  });
  const { created } = await planJob(ctx, deps.ledger, {
    leaseMs: deps.leaseMs,
    // A job holding this output.url may hand it over (once its output is deleted) only
    // when its status says it ended: a planned job's workers may not have started yet.
    isJobOver: async (id) => {
      const s = await readStatus(deps, id);
      return s === undefined || s.status === 'SUCCEEDED' || s.status === 'FAILED';
    },
  });
  const items = blendItems(ctx, deps.blocksPerBlendItem ?? 64);
  await deps.bucketStore.set(key(KEYS.blendItems(jobId)), enc(items));
  const status = await readStatus(deps, jobId);
  if (!status || status.status === 'SUBMITTED') {
    await writeStatus(deps, {
      ...(status ?? {}),
      jobId,
      status: 'PLANNED',
      manifest: accepted.source,
      output: manifest.output.url,
    });
  }
  const { plan } = ctx;
  return {
    kind: 'planned',
    created,
    result: {
      jobId,
      arraySize: nextArraySize(manifest.compute.maxWorkers, plan.counts.chunks),
      chunks: plan.counts.chunks,
      seamBlocks: plan.counts.seamBlocks,
      blendItemsKey: KEYS.blendItems(jobId),
      blendItemCount: items.length,
      device: manifest.compute.device,
    },
  };
}

/** Ranges of the region's block grid holding about `perItem` seam blocks each. */
export function blendItems(ctx: JobContext, perItem: number): BlendItem[] {
  const { plan } = ctx;
  if (plan.counts.seamBlocks === 0) return [];
  const items = Math.max(1, Math.ceil(plan.counts.seamBlocks / perItem));
  const span = Math.ceil(plan.counts.blocks / items);
  const out: BlendItem[] = [];
  for (let from = 0; from < plan.counts.blocks; from += span) {
    out.push({ jobId: ctx.jobId, from, to: Math.min(plan.counts.blocks, from + span) });
  }
  return out;
}

/**
 * The S3-trigger path: validate, then start the execution named by the job id. Duplicate
 * or replayed events start nothing new (the name is taken), and only the execution's
 * Plan task writes ledger rows, so two planners never race over one job. Without a
 * state machine (a bare data plane, tests) it plans inline instead.
 */
export async function handleManifestCreated(
  deps: CloudDeps,
  locs: ManifestLocation[],
): Promise<(AcceptOutcome | PlanOutcome)[]> {
  const outcomes: (AcceptOutcome | PlanOutcome)[] = [];
  for (const loc of locs) {
    const foreign = triggerLocationProblem(deps, loc);
    if (foreign !== undefined) {
      const source = `s3://${loc.bucket}/${loc.key}`;
      outcomes.push(
        await rejectManifest(
          deps,
          loc,
          new ManifestError([{ path: '', message: foreign }], { source }),
        ),
      );
      continue;
    }
    if (!deps.startExecution) {
      outcomes.push(await planFromManifest(deps, loc));
      continue;
    }
    const accepted = await acceptManifest(deps, loc);
    outcomes.push(accepted);
    if (accepted.kind === 'rejected') continue;
    const input: PipelineInput = { manifest: accepted.source };
    const { executionArn } = await deps.startExecution(accepted.jobId, input);
    if (executionArn) {
      const status = await readStatus(deps, accepted.jobId);
      if (status && !status.executionArn) await writeStatus(deps, { ...status, executionArn });
    }
  }
  return outcomes;
}

export async function loadCloudJob(deps: CloudDeps, jobId: string): Promise<JobContext> {
  return contextFor(deps, jobId, await frozenManifest(deps, jobId));
}

/** The manifest the Plan task froze for `jobId` (what every later step reads). */
async function frozenManifest(deps: CloudDeps, jobId: string): Promise<Manifest> {
  const bytes = await deps.bucketStore.get(key(KEYS.jobManifest(jobId)));
  if (!bytes) {
    throw new Error(
      `job ${jobId} has no ${KEYS.jobManifest(jobId)} in s3://${deps.bucket}; it was never planned (drop its manifest into manifests/ first)`,
    );
  }
  const frozen = JSON.parse(new TextDecoder().decode(bytes)) as FrozenManifest;
  return parseManifest(frozen.manifest);
}

function contextFor(deps: CloudDeps, jobId: string, manifest: Manifest): Promise<JobContext> {
  return openJob(manifest, {
    jobId,
    work: new PrefixedStore(deps.bucketStore, `jobs/${jobId}`),
    ...(deps.limits ? { limits: deps.limits } : {}),
  });
}

export async function verifyStep(deps: CloudDeps, e: VerifyTaskEvent): Promise<VerifyTaskResult> {
  const manifest = await frozenManifest(deps, e.jobId);
  const verdict = await verifyRound(deps.ledger, e.jobId, {
    roundsDone: e.round,
    maxRounds: deps.maxRounds,
    maxWorkers: manifest.compute.maxWorkers,
    ...(deps.ownedOutputDamage
      ? {
          job: () => contextFor(deps, e.jobId, manifest),
          ownedOutputDamage: deps.ownedOutputDamage,
        }
      : {}),
  });
  if (verdict.rearmed)
    (deps.warn ?? warnToStderr)('output blocks of DONE chunks are missing; re-running them', {
      jobId: e.jobId,
      damaged: verdict.rearmed.damaged.length,
      first: verdict.rearmed.damaged[0]?.key,
      chunks: verdict.rearmed.chunks,
    });
  const read = await readWorkFailures(deps, e);
  const status = await readStatus(deps, e.jobId);
  const workerFailures =
    read.entries.length > 0
      ? keepFailures(status?.workerFailures ?? [], e.round, read.entries)
      : status?.workerFailures;
  const batch =
    workerFailures && workerFailures.length > 0
      ? summarizeFailures(workerFailures, read.undescribed)
      : undefined;
  // Poison lines stay one chunk per line; the Batch summary is a line of its own.
  const reason =
    verdict.reason === undefined
      ? undefined
      : `${verdict.reason}${batch ? `${verdict.status === 'FAILED' ? '\n' : '; '}${batch}` : ''}`;
  if (status) {
    // PLANNED → RUNNING once workers ran; a FAILED verdict is MarkFailed's to write.
    const next: JobStatusDocument = {
      ...status,
      ...(verdict.status !== 'FAILED' && status.status === 'PLANNED' ? { status: 'RUNNING' } : {}),
      ...(workerFailures ? { workerFailures } : {}),
    };
    if (next.status !== status.status || read.entries.length > 0) await writeStatus(deps, next);
  }
  return {
    jobId: e.jobId,
    status: verdict.status,
    round: e.round,
    redrive: verdict.redrive,
    remaining: verdict.remaining,
    arraySize: verdict.workers,
    ...(reason ? { reason } : {}),
  };
}

export { missingOwnedBlocks, nextArraySize };

/**
 * The failed workers of the round that just ended, when its Batch job did not succeed.
 * Never throws for Batch's sake: a Batch that cannot be read, or a Cause that is no job
 * description, is recorded as such (the ledger, not Batch, decides the verdict).
 */
async function readWorkFailures(
  deps: CloudDeps,
  e: VerifyTaskEvent,
): Promise<{ entries: WorkerFailure[]; undescribed: number }> {
  const none = { entries: [], undescribed: 0 };
  const b = e.batch;
  if (!b || (b.Error === undefined && b.Status !== 'FAILED')) return none;
  const round = e.round;
  const ref = batchJobRef(b);
  if (ref.kind === 'malformed')
    return { entries: [{ round, batchJobId: '?', statusReason: ref.problem }], undescribed: 0 };
  if (!deps.workFailures) return { entries: [ref.fallback(round)], undescribed: 0 };
  try {
    const r = await deps.workFailures(ref.jobId, { limit: WORKER_FAILURES_KEPT });
    // The job failed, yet no child is listed as failed (Batch's listing lags its status):
    // the job's own description is what there is.
    if (r.described.length === 0) return { entries: [ref.fallback(round)], undescribed: 0 };
    return {
      entries: r.described.map((f) => ({ round, ...f })),
      undescribed: Math.max(0, r.failed - r.described.length),
    };
  } catch (error) {
    if (!(error instanceof BatchReadError || error instanceof BatchJobNotFoundError)) throw error;
    (deps.warn ?? warnToStderr)('could not read Batch failures', {
      jobId: e.jobId,
      round,
      batchJobId: ref.jobId,
      error: error.message,
    });
    return {
      entries: [
        {
          round,
          batchJobId: ref.jobId,
          statusReason: `could not read Batch failures: ${error.message}`,
        },
      ],
      undescribed: 0,
    };
  }
}

type BatchJobRef =
  | { kind: 'job'; jobId: string; fallback: (round: number) => WorkerFailure }
  | { kind: 'malformed'; problem: string };

/**
 * The Batch job a Work result names: `JobId` on success, or inside the catch's Cause (the
 * job description as a JSON string). Parsed defensively: anything else is described, not thrown.
 */
export function batchJobRef(b: WorkBatchResult): BatchJobRef {
  const fromCause = b.Cause === undefined ? undefined : tryJson(b.Cause);
  const described = isRecord(fromCause) ? fromCause : undefined;
  const jobId = typeof b.JobId === 'string' && b.JobId !== '' ? b.JobId : described?.JobId;
  if (typeof jobId !== 'string' || jobId === '') {
    const cause =
      b.Cause === undefined ? 'no Cause' : `Cause ${JSON.stringify(b.Cause.slice(0, 300))}`;
    return {
      kind: 'malformed',
      problem: `the Work task failed (${b.Error ?? b.Status ?? 'no Error'}) with no Batch job id: ${cause} is not a Batch job description`,
    };
  }
  const statusReason =
    typeof described?.StatusReason === 'string' && described.StatusReason !== ''
      ? described.StatusReason
      : `the Batch job failed (${b.Error ?? b.Status ?? 'FAILED'})`;
  return {
    kind: 'job',
    jobId,
    fallback: (round) => ({ round, batchJobId: jobId, statusReason }),
  };
}

/** `kept` with `round`'s entries replaced by `entries` (a retried Verify rewrites its round), newest rounds last. */
export function keepFailures(
  kept: readonly WorkerFailure[],
  round: number,
  entries: readonly WorkerFailure[],
  limit = WORKER_FAILURES_KEPT,
): WorkerFailure[] {
  const merged = [...kept.filter((f) => f.round !== round), ...entries];
  // Stable: within a round, Batch's order (by array index) stays.
  merged.sort((a, b) => a.round - b.round);
  return merged.slice(-limit);
}

/**
 * One line for a failure reason: "Batch: 2 worker(s) failed: OutOfMemoryError: Container
 * killed due to memory usage (exit 137, log worker/default/abc)". Up to three distinct
 * reasons, each with its newest example's exit code and log stream.
 */
export function summarizeFailures(failures: readonly WorkerFailure[], undescribed = 0): string {
  const byText = new Map<string, WorkerFailure>();
  for (const f of failures) {
    const text = f.reason ?? f.statusReason;
    byText.delete(text);
    byText.set(text, f);
  }
  const newestFirst = [...byText].reverse();
  const parts = newestFirst.slice(0, 3).map(([text, f]) => {
    const detail = [
      f.exitCode !== undefined ? `exit ${f.exitCode}` : undefined,
      f.logStream ? `log ${f.logStream}` : undefined,
    ].filter(Boolean);
    return `${oneLine(text)}${detail.length > 0 ? ` (${detail.join(', ')})` : ''}`;
  });
  const more = newestFirst.length - parts.length;
  return `Batch: ${failures.length + undescribed} worker(s) failed: ${parts.join('; ')}${
    more > 0 ? `; and ${more} other reason(s)` : ''
  }`;
}

const oneLine = (s: string): string => s.replace(/\s+/g, ' ').trim().slice(0, 300);

function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function warnToStderr(message: string, fields: Record<string, unknown>): void {
  process.stderr.write(`${JSON.stringify({ level: 'WARN', message, ...fields })}\n`);
}

export async function blendStep(deps: CloudDeps, item: BlendItem): Promise<BlendTaskResult> {
  const ctx = await loadCloudJob(deps, item.jobId);
  return { jobId: item.jobId, blocks: await blendRange(ctx, item, { concurrency: 8 }) };
}

export async function finalizeStep(
  deps: CloudDeps,
  e: { jobId: string },
): Promise<FinalizeTaskResult> {
  const ctx = await loadCloudJob(deps, e.jobId);
  await finalizeFinished(ctx, deps.ledger, { fleetSize: ctx.manifest.compute.maxWorkers });
  const status = await readStatus(deps, e.jobId);
  await writeStatus(deps, {
    jobId: e.jobId,
    status: 'SUCCEEDED',
    manifest: status?.manifest ?? { bucket: deps.bucket, key: '' },
    output: ctx.manifest.output.url,
    ...(status?.executionArn ? { executionArn: status.executionArn } : {}),
    // Kept for the record; `stalled` is not: a finished job stalls no more.
    ...(status?.workerFailures ? { workerFailures: status.workerFailures } : {}),
  });
  return {
    jobId: e.jobId,
    status: 'SUCCEEDED',
    output: ctx.manifest.output.url,
    reportKey: `${ctx.manifest.output.url.replace(/\/$/, '')}${REPORT_KEY}`,
  };
}

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

export function tryJson(text: string): unknown {
  if (!/^\s*[[{]/.test(text)) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}

/**
 * A status name for a rejected manifest: its "name" when usable, else the key's basename
 * (always the basename without the bytes, or when they are over the size limit).
 */
function rejectedName(objectKey: string, bytes?: Uint8Array): string {
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
