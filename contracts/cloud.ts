// The payloads between the pipeline's state machine and its Lambda handlers and Batch
// workers. The CDK state machine (cdk/) and the handlers (functions/) both import these
// types, so a renamed field fails to compile on both sides.
//
//   S3 ObjectCreated manifests/*.json ──► planner (S3 event) ──► StartExecution(name = jobId)
//   StartExecution {manifest:{bucket,key,versionId?}} (from the trigger or another team's pipeline)
//     ──► Plan (planner, idempotent) ──► Work (Batch array job, .sync) ──► Verify
//         Verify INCOMPLETE (rounds left) ──► Work again;  FAILED ──► MarkFailed ──► Fail
//         COMPLETE ──► Blend (Distributed Map over jobs/<jobId>/blend-items.json) ──► Pyramid
//         (per level: level task, Map of range tasks) ──► Finalize (metadata and report only)
//     any error ──► MarkFailed (status.json FAILED with the reason) ──► Fail

import { JOB_ID_SHAPE } from './job-id.ts';

/** Where a manifest lives: the state machine's input. */
export interface ManifestLocation {
  bucket: string;
  key: string;
  versionId?: string;
}

/** Input of an execution: what other teams' pipelines send (startExecution.sync:2). */
export interface PipelineInput {
  manifest: ManifestLocation;
}

/** Plan task (planner Lambda invoked by the state machine). */
export interface PlanTaskEvent {
  manifest: ManifestLocation;
}
export interface PlanTaskResult {
  jobId: string;
  /** Batch array size: workers to start, min(chunks, maxWorkers, 10,000); 1 means a non-array job. */
  arraySize: number;
  chunks: number;
  seamBlocks: number;
  /** Key of the JSON array of BlendItem the Distributed Map reads (in the stack's bucket). */
  blendItemsKey: string;
  blendItemCount: number;
  /** Device the manifest asks for: which Batch queue the Work step uses. */
  device: 'cpu' | 'gpu';
  /**
   * Rows per PlanRange task when the Plan task left the job's rows to the PlanRanges Map
   * (a job of more than PLAN_RANGE_ROWS chunks); 0 when it wrote them itself. The
   * PlanInRanges? choice and the Map follow it, so the Plan task alone decides.
   */
  rangeRows: number;
}

/**
 * Rows one PlanRange task writes; a job of more chunks is planned in ranges. At the
 * 1,000 rows/s a planner keeps even against a throttling table: 250 s of Lambda's 900 s.
 */
export const PLAN_RANGE_ROWS = 250_000;
/** PlanRange tasks at once (the PlanRanges Map's MaxConcurrency). */
export const PLAN_RANGES_IN_FLIGHT = 16;

/**
 * PlanRange task (plan-range Lambda), one item of the PlanRanges Map: writes the ledger
 * rows of chunks from..from+rows-1 (clamped to the job) of a job too large for the Plan
 * task alone. The state machine makes the items (States.ArrayRange over $.plan.chunks).
 */
export interface PlanRangeTaskEvent {
  step: 'range';
  jobId: string;
  from: number;
  rows: number;
}
export interface PlanRangeTaskResult {
  jobId: string;
  from: number;
  to: number;
  /** Rows written (0 when the job was already complete). */
  written: number;
  /** The job was already complete (its rows claimable): nothing was written. */
  complete: boolean;
}
/** CompletePlan task (plan-range Lambda), after every PlanRange item succeeded. */
export interface CompletePlanTaskEvent {
  step: 'complete';
  jobId: string;
}

/** Verify task. */
export interface VerifyTaskEvent {
  jobId: string;
  /** Work rounds done so far (the state machine counts). */
  round: number;
  /**
   * The Work task's result (`$.batch`): `{JobId, Status}` when the Batch job succeeded,
   * the States.TaskFailed catch's `{Error, Cause}` when it failed (Cause: the Batch job
   * description as a JSON string, holding JobId). Absent before any Work round.
   */
  batch?: WorkBatchResult;
}
export interface WorkBatchResult {
  JobId?: string;
  Status?: string;
  Error?: string;
  Cause?: string;
}
export interface VerifyTaskResult {
  jobId: string;
  status: 'COMPLETE' | 'INCOMPLETE' | 'FAILED';
  round: number;
  /** True when INCOMPLETE and another Work round is allowed. */
  redrive: boolean;
  remaining: number;
  /**
   * The next Work round's fleet: max(1, min(compute.maxWorkers, 10,000, unfinished chunks)),
   * so a re-drive for 3 leftover chunks starts 3 workers, not the whole array again.
   */
  arraySize: number;
  /** Poison chunks, when FAILED: "chunk <id>: failed <n> attempt(s); last error: ..." lines. */
  reason?: string;
  /**
   * When COMPLETE: items in the job's blend-items.json now, the seam blocks no worker
   * blended (their last contributor died between completing and blending); usually 0, and
   * then the Blend Map is skipped.
   */
  blendItemCount?: number;
}

/**
 * One Distributed Map item: a range of the plan's seam-block enumeration (the planner's),
 * or the keys of seam blocks left unblended (Verify's).
 */
export type BlendItem =
  | { jobId: string; from: number; to: number }
  | { jobId: string; keys: string[] };
export interface BlendTaskResult {
  jobId: string;
  blocks: number;
}

/**
 * Pyramid step (pyramid Lambda), after Blend: per level l = 1, 2, ... a `level` call
 * creates level l's array and returns its tasks' first blocks (computed from the output's
 * block grid: ≤ PYRAMID_TASKS_PER_LEVEL starts); the PyramidTasks Map runs one `range`
 * call per start; then the next level. `done` once the pyramid has no level l.
 */
export interface PyramidLevelEvent {
  step: 'level';
  jobId: string;
  level: number;
}
export interface PyramidLevelResult {
  jobId: string;
  level: number;
  done: boolean;
  /** Level blocks per range task. */
  blocksPerTask: number;
  /** First block of each range task (z-major block index); empty when done. */
  starts: number[];
}
/** One PyramidTasks Map item: level blocks from..from+blocks-1, from level - 1. */
export interface PyramidRangeEvent {
  step: 'range';
  jobId: string;
  level: number;
  from: number;
  blocks: number;
}
export interface PyramidRangeResult {
  jobId: string;
  level: number;
  written: number;
}
export type PyramidTaskEvent = PyramidLevelEvent | PyramidRangeEvent;

/** Finalize task. */
export interface FinalizeTaskEvent {
  jobId: string;
}
export interface FinalizeTaskResult {
  jobId: string;
  status: 'SUCCEEDED';
  output: string;
  reportKey: string;
}

/** MarkFailed task: every failure path ends here before the Fail state. */
export interface MarkFailedEvent {
  jobId?: string;
  manifest?: ManifestLocation;
  /** States.ALL catch output: { Error, Cause }. */
  error?: { Error?: string; Cause?: string };
  reason?: string;
}

/**
 * jobs/<jobId>/status.json in the bucket; a manifest that never became a job (rejected, or
 * a Plan that failed before accepting it) has KEYS.rejectedStatus(<name>) instead,
 * where `jobId` holds that name.
 */
export interface JobStatusDocument {
  jobId: string;
  status: 'REJECTED' | 'SUBMITTED' | 'PLANNED' | 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  manifest: ManifestLocation;
  updatedAt: string;
  reason?: string;
  errors?: { path: string; message: string }[];
  output?: string;
  executionArn?: string;
  /**
   * Batch workers that failed (newest rounds kept, at most WORKER_FAILURES_KEPT), as
   * Verify read them from AWS Batch after each Work round that did not succeed.
   */
  workerFailures?: WorkerFailure[];
  /**
   * Set by the stall watchdog while the job has unfinished chunks and no chunk finished
   * for TESSERA_STALL_MINUTES (since: when the finished count last moved, or the
   * execution's start); removed once a chunk finishes.
   */
  stalled?: { since: string; minutes: number };
  /**
   * Set by the Plan task for a job whose chunk rows the PlanRanges Map writes: until
   * CompletePlan runs the ledger has no visible job, and `tessera status` says it is
   * being planned rather than not found.
   */
  plannedInRanges?: { chunks: number; ranges: number; rows: number };
}

/** One failed Batch worker (an array child, or the single job) of a Work round. */
export interface WorkerFailure {
  /** The Work round (VerifyTaskEvent.round) whose Batch job it belonged to. */
  round: number;
  /** The child's job id (`<parent>:<index>` for array children). */
  batchJobId: string;
  /** Array index of the child; absent for a non-array job. */
  index?: number;
  /** Batch's statusReason ("Essential container in task exited", "CannotPullContainerError: ..."). */
  statusReason: string;
  exitCode?: number;
  /** The container's reason ("OutOfMemoryError: Container killed due to memory usage"). */
  reason?: string;
  /** CloudWatch Logs stream of the container (log group /aws/batch/job). */
  logStream?: string;
}

/** How many WorkerFailure entries status.json keeps (the newest). */
export const WORKER_FAILURES_KEPT = 20;

/** Environment of every Lambda and worker container (set by the stack). */
export const ENV = {
  table: 'TESSERA_TABLE',
  bucket: 'TESSERA_BUCKET',
  /** Comma-separated extra buckets manifests may read from / write to. */
  allowedBuckets: 'TESSERA_ALLOWED_BUCKETS',
  stateMachineArn: 'TESSERA_STATE_MACHINE_ARN',
  maxChunks: 'TESSERA_MAX_CHUNKS',
  maxRounds: 'TESSERA_MAX_ROUNDS',
  /** Largest model file (bytes) a worker loads; default DEFAULT_MAX_MODEL_BYTES. */
  maxModelBytes: 'TESSERA_MAX_MODEL_BYTES',
  /** Minutes without a finished chunk before the stall watchdog counts a job as stalled. */
  stallMinutes: 'TESSERA_STALL_MINUTES',
  /**
   * "off": a worker writes every seam partial and blends none, leaving every seam block
   * to the Blend step (as if each died between completing and blending); default on.
   */
  seamBlend: 'TESSERA_SEAM_BLEND',
} as const;

/** Lambda entry files, relative to the repo root (the stack bundles these). */
export const HANDLERS = {
  planner: 'functions/planner.ts',
  /** PlanRange and CompletePlan tasks: a large plan's rows, one index range a call. */
  planRange: 'functions/plan-range.ts',
  verify: 'functions/verify.ts',
  blend: 'functions/blend.ts',
  /** Pyramid level and range tasks (after Blend, before Finalize). */
  pyramid: 'functions/pyramid.ts',
  finalize: 'functions/finalize.ts',
  markFailed: 'functions/mark-failed.ts',
  /** Scheduled (EventBridge): publishes STALL_METRIC and marks stalled jobs' status. */
  watchdog: 'functions/watchdog.ts',
} as const;

/** Keys in the bucket. */
export const KEYS = {
  manifestPrefix: 'manifests/',
  /** Parent of every job's folder (the bucket lifecycle and IAM grants scope to it). */
  jobsPrefix: 'jobs/',
  job: (jobId: string) => `jobs/${jobId}/`,
  jobManifest: (jobId: string) => `jobs/${jobId}/manifest.json`,
  /**
   * The job's frozen description (core/pipeline/job-description.ts, JOB_DESCRIPTION_KEY
   * under the job's folder): input shape and dtype, plan parameters, chunk count. Written
   * once by Plan; every later step checks what it opens against it.
   */
  jobDescription: (jobId: string) => `jobs/${jobId}/job.json`,
  status: (jobId: string) => `jobs/${jobId}/status.json`,
  blendItems: (jobId: string) => `jobs/${jobId}/blend-items.json`,
  partialsPrefix: (jobId: string) => `jobs/${jobId}/partials/`,
  /** Where the blend Distributed Map's ResultWriter puts its children's results. */
  blendResults: (jobId: string) => `jobs/${jobId}/blend-results/`,
  /** The stall watchdog's memory of when the job's finished count last moved. */
  progress: (jobId: string) => `jobs/${jobId}/progress.json`,
  /**
   * Status documents of manifests that never became jobs, by manifest name. A job id is
   * always `<name>-<10 hex>`, never "rejected", so a rejected manifest that takes another
   * job's id as its name cannot overwrite that job's status.
   */
  rejectedPrefix: 'jobs/rejected/',
  /**
   * Where a manifest that never became a job records why: jobs/<name>/status.json, as for a
   * job. Job ids have a shape no valid name has (JOB_ID_SHAPE), so no rejection can land on
   * a job's status; a rejected manifest whose name has that shape goes to jobs/rejected/.
   */
  rejectedStatus: (name: string) =>
    JOB_ID_SHAPE.test(name) ? `jobs/rejected/${name}/status.json` : `jobs/${name}/status.json`,
} as const;

/**
 * S3 object tag every seam partial (under KEYS.partialsPrefix) must carry when written:
 * lifecycle prefixes cannot hold wildcards (jobs/<jobId>/partials/), so the bucket's
 * expiry rule for abandoned partials matches this tag under KEYS.jobsPrefix instead.
 */
export const PARTIAL_TAG = { key: 'tessera-kind', value: 'partial' } as const;

/**
 * Exit codes of `tessera worker` that AWS Batch tells apart (the job definitions' retry
 * strategy retries exactly these): 0 = no work left, anything else not listed = a real
 * failure (the attempt ends; the ledger and Verify decide what happens to its chunks).
 */
export const WORKER_EXIT = {
  /** SIGTERM or a spot interruption notice: chunks released unspent; run me again. */
  interrupted: 75,
  /** An inference made no progress within its bound: chunk abandoned to be re-claimed. */
  hung: 76,
} as const;

/** The metric the stall watchdog publishes (EMF) and the "no progress" alarm watches. */
export const STALL_METRIC = {
  namespace: 'Tessera',
  name: 'StalledJobs',
  /** Powertools' default dimension (serviceName). */
  dimensions: { service: 'tessera' },
} as const;
