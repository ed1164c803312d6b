// Plan: check that the job can run at all (checkJobFits: the model's signature against
// the manifest, each worker's peak memory against the budget; deterministic problems that
// would otherwise fail every chunk), claim the job's output location, then create the
// job's chunk rows (both idempotent). A job too large for one planner call (the cloud's
// Plan task past PLAN_RANGE_ROWS chunks) only opens a range plan here: its spec is
// recorded and no row is written; PlanRange tasks write the rows and completePlan makes
// them claimable (core/cloud/plan-ranges.ts). The output array is created by the writers
// (ensureOutput, idempotent), so the planner needs no write access to outputs.

import {
  type JobSpec,
  type Ledger,
  OutputClaimedError,
  type RangePlanner,
} from '../ledger/index.ts';
// The pure half of the model module: the planner Lambda imports this file and must not
// carry the inference runtime (readModelSignature, which opens a session, is the caller's).
import { checkModelAgainstManifest, type ModelIo, type ReadSignature } from '../model/signature.ts';
import { outputPresence } from '../volume/index.ts';
import type { JobContext } from './context.ts';
import { writeJobDescription } from './job-description.ts';
import {
  checkWorkerMemory,
  type MemoryBudget,
  machineMemory,
  type WorkerMemory,
  workerMemory,
} from './memory-estimate.ts';

export interface PlanJobOptions {
  leaseMs?: number;
  now?: number;
  /**
   * Whether a job is over (succeeded, or failed for good): only such a job's output claim
   * may be taken over, and only once its output is gone. Default: the ledger has no
   * PENDING or RUNNING chunk of it (or no such job).
   */
  isJobOver?: (jobId: string) => Promise<boolean>;
  /**
   * Plan in ranges: instead of createJob, only record the job's spec on this RangePlanner
   * (the ledger itself, narrowed by rangePlannerOf) and write no chunk row. The rows are
   * the PlanRange tasks' to write (each range with this same spec, jobSpecOf) and the job
   * is claimable once completePlan has run. Absent: createJob writes every row here.
   */
  inRanges?: RangePlanner;
}

export const DEFAULT_LEASE_MS = 60_000;

export interface PlannedJob {
  /**
   * The job's rows were made claimable by this call (false: they existed, the job resumes;
   * always false in ranges, where completePlan makes them claimable).
   */
  created: boolean;
  /** The spec written (or found, when createJob found the job). */
  job: JobSpec;
  /** The rows were left to the PlanRange tasks (inRanges given). */
  inRanges: boolean;
}

/**
 * The ledger spec of a job: the one function both planJob and every PlanRange task
 * (core/cloud/plan-ranges.ts, as rangeJobSpec) build it with, so the two cannot drift.
 */
export function jobSpecOf(
  ctx: Pick<JobContext, 'jobId' | 'plan' | 'manifest'>,
  o: Pick<PlanJobOptions, 'leaseMs' | 'now'> = {},
): JobSpec {
  return {
    jobId: ctx.jobId,
    chunkCount: ctx.plan.counts.chunks,
    maxAttempts: ctx.manifest.maxAttempts,
    leaseMs: o.leaseMs ?? DEFAULT_LEASE_MS,
    createdAt: o.now ?? Date.now(),
    attributes: { name: ctx.manifest.name, output: ctx.manifest.output.url },
  };
}

/** The empty range a range plan is opened with: it records the spec and writes no row. */
export const OPENING_RANGE = { from: 0, to: 0 } as const;

export async function planJob(
  ctx: JobContext,
  ledger: Ledger,
  o: PlanJobOptions = {},
): Promise<PlannedJob> {
  const { plan } = ctx;
  await claimJobOutput(ctx, ledger, o.isJobOver ?? ((id) => ledgerSaysOver(ledger, id)));
  const spec = jobSpecOf(ctx, o);
  // Frozen before the rows exist: a worker that finds a row finds the description too.
  await writeJobDescription(ctx.work, ctx.description);
  if (o.inRanges) {
    // Idempotent: a retried Plan finds the spec recorded (or the job complete) and the
    // ranges keep the first spec, so every range adopts one createdAt.
    await o.inRanges.planRange(spec, OPENING_RANGE, []);
    return { created: false, job: spec, inRanges: true };
  }
  const chunks = (function* () {
    for (let i = 0; i < plan.counts.chunks; i++)
      yield { chunkId: plan.chunkId(plan.chunkCoordAt(i)), index: i };
  })();
  const { created, job } = await ledger.createJob(spec, chunks);
  return { created, job, inRanges: false };
}

/**
 * Claims output.url for the job in the ledger: two jobs never write one output. Another
 * job's claim is taken over only when that job is over and its output is gone (deleted,
 * or never written; or already this job's, as a local run creates it before planning);
 * otherwise the holder's OutputClaimedError stands, naming it and what to do.
 */
async function claimJobOutput(
  ctx: JobContext,
  ledger: Ledger,
  isJobOver: (jobId: string) => Promise<boolean>,
): Promise<void> {
  try {
    await ledger.claimOutput(ctx.outputUrl, ctx.jobId);
  } catch (error) {
    if (!(error instanceof OutputClaimedError)) throw error;
    const there = await outputPresence(ctx.outputStore);
    if (there.exists && there.owner !== ctx.jobId) throw error;
    if (!(await isJobOver(error.holder))) throw error;
    await ledger.claimOutput(ctx.outputUrl, ctx.jobId, { replacing: error.holder });
  }
}

async function ledgerSaysOver(ledger: Ledger, jobId: string): Promise<boolean> {
  if ((await ledger.getJob(jobId)) === undefined) return true;
  const c = await ledger.counts(jobId);
  return c.PENDING + c.RUNNING === 0;
}

export interface JobFitOptions {
  /** The memory the workers share: --memory; default machineMemory() (this machine). */
  memory?: MemoryBudget | undefined;
  /** Worker processes sharing that memory (a local run's --workers; clamped to the chunks). */
  workers?: number | undefined;
  /** Patches per model call (the workers' --batch); default 4, as the workers'. */
  batchSize?: number | undefined;
  /**
   * The model's signature, read from model.url (readModelSignature, or readJobModel in
   * cli/plan-cost.ts); 'skip' where the model is out of reach (the planner Lambda): its
   * signature is then checked when the workers load it, and its size is not counted.
   */
  model: ReadSignature | 'skip';
}

export interface JobFit {
  memory: WorkerMemory;
  budget: MemoryBudget;
  workers: number;
  /** Undefined when the model was skipped. */
  model?: { signature: ReadSignature; io: ModelIo };
  /** Things that run but are likely mistakes (a patch larger than the region). */
  warnings: string[];
}

export const DEFAULT_BATCH_SIZE = 4;

/**
 * Refuses, once and before any worker starts, a job every chunk of which would fail the
 * same way: a model whose declared inputs/outputs do not fit the manifest
 * (ModelSignatureError, ModelLoadError), or workers that cannot fit in the memory they
 * will share (WorkerMemoryError). Returns the figures for a plan summary.
 */
export function checkJobFits(ctx: JobContext, o: JobFitOptions): JobFit {
  const { manifest, plan, input } = ctx;
  const batchSize = o.batchSize ?? DEFAULT_BATCH_SIZE;
  const workers = Math.max(1, Math.min(o.workers ?? 1, plan.counts.chunks));
  const read = o.model === 'skip' ? undefined : o.model;
  const io = read
    ? checkModelAgainstManifest(read.model, read.signature, manifest, {
        inputChannels: input.channels,
        batchSize,
      })
    : undefined;
  const memory = workerMemory(plan, manifest, {
    batchSize,
    modelBytes: read?.bytes,
    input: { channels: input.channels, dtype: input.dtype, chunkShape: input.chunkShape },
  });
  const budget = o.memory ?? machineMemory();
  checkWorkerMemory(memory, manifest, budget, workers);
  return {
    memory,
    budget,
    workers,
    ...(read && io ? { model: { signature: read, io } } : {}),
    warnings: patchWarnings(ctx),
  };
}

/** A patch larger than the region on an axis is mostly zero padding: say so. */
function patchWarnings(ctx: JobContext): string[] {
  const { plan } = ctx;
  const region = plan.region.shape;
  const patch = plan.inputPatchShape;
  const over = [0, 1, 2].filter((a) => patch[a]! > region[a]!);
  if (over.length === 0) return [];
  const axes = over.map((a) => 'zyx'[a]).join(', ');
  return [
    `the model's input patch [${patch.join(', ')}] is larger than the region [${region.join(', ')}] on ${axes}: ` +
      'each patch is mostly zero padding, inferred and held in memory; use a smaller model.patchShape if the model allows',
  ];
}
