// `tessera run`: the whole pipeline on one machine. The parent process owns the ledger
// (a journal under the state directory); its workers are a LocalFleet (cli/local-fleet.ts:
// forked processes claiming chunks over IPC, replaced when they die) driven by the work-
// round loop the cloud's state machine also follows (core/pipeline/driver.ts, steps.ts).
// A run that is killed resumes from the journal, never re-inferring a DONE chunk.
//
//   refusals (model, memory) ──► earlier run? (report / repair / finalize again)
//     ──► plan (output, rows, frozen description) ──► work rounds ⇄ verify
//     ──► blend what eager blending left ──► finalize ──► spent partials deleted
//
// A FAILED job comes back with `retryFailed` (--retry-failed): its FAILED chunks are
// re-armed, DONE ones kept.

import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LocalLedger } from '../core/ledger/index.ts';
import { PausingLedger } from '../core/ledger/pausing.ts';
import { ModelChecksumError, ModelLoadError, ModelSignatureError } from '../core/model/index.ts';
import {
  checkJobFits,
  type DamagedObject,
  DEFAULT_BATCH_SIZE,
  deleteSpentPartials,
  describePoison,
  ensureOutput,
  finalizeJob,
  finishLeftovers,
  type JobContext,
  leftoverUnits,
  ModelTooLargeError,
  markBlended,
  openJob,
  planStep,
  type RoundVerdict,
  type RunReport,
  runWorkRounds,
  timed,
} from '../core/pipeline/index.ts';
import { describeNormalisation } from '../core/pipeline/input-normalisation.ts';
import { type MemoryBudget, WorkerMemoryError } from '../core/pipeline/memory-estimate.ts';
import { type InputPanels, renderInputPanels } from '../core/pipeline/preview.ts';
import { LocalStore } from '../core/store/index.ts';
import type { OutputVolume } from '../core/volume/index.ts';
import { pyramidLevels } from '../core/volume/pyramid.ts';
import { defaultStateDir, type LoadedManifest, resolveJobId } from './job-files.ts';
import { LocalFleet } from './local-fleet.ts';
import { earlierRun, repairOutput } from './local-repair.ts';
import { checkOutputLocation } from './output-location.ts';
import { readJobModel } from './plan-cost.ts';
import type { Progress } from './progress.ts';

export interface LocalRunOptions {
  workers?: number;
  stateDir?: string;
  leaseMs?: number;
  batchSize?: number;
  /** Rounds of verify → re-drive before giving up on chunks that stay unfinished. */
  maxRounds?: number;
  log?: (line: string) => void;
  progress?: Progress;
  /**
   * Re-arm the job's FAILED chunks (0 attempts, PENDING) before the work rounds, once
   * their cause is fixed; every DONE chunk is kept (--retry-failed).
   */
  retryFailed?: boolean;
  /**
   * The memory the workers share (--memory); default this machine's, or its container's
   * limit. A job whose workers would not fit is refused before any of them starts.
   */
  memory?: MemoryBudget;
  /** Test hook: called with each forked worker. */
  onWorker?: (child: ChildProcess, owner: string) => void;
  signal?: AbortSignal;
}

export interface LocalRunResult {
  status: 'SUCCEEDED' | 'FAILED' | 'INTERRUPTED';
  /** The job's id (an earlier release's, for a state directory it wrote). */
  jobId: string;
  output: string;
  chunks: number;
  seconds: number;
  report?: RunReport;
  /** Chunks this invocation inferred (a resumed run skips what earlier runs finished). */
  inferredThisRun: number;
  /** Largest peak RSS of any worker process of this run. */
  peakWorkerRssBytes: number;
  /**
   * CPU seconds this run used: worker processes in all (inference threads included), their
   * main threads alone (Linux), and this coordinating process (blending, finalize, ledger).
   */
  cpuSeconds?: { workers: number; workerMainThreads: number; coordinator: number };
  message?: string;
}

export async function runLocal(
  loaded: LoadedManifest,
  o: LocalRunOptions = {},
): Promise<LocalRunResult> {
  const run = await openRun(loaded, o);
  const { m, ctx, ledger, served, log, timings } = run;
  try {
    // What would fail every chunk the same way fails here, once, before anything is
    // written: a model that does not fit the manifest, workers that would not fit in memory.
    const fit = await refusal(async () =>
      checkJobFits(ctx, {
        model: await readJobModel(m.manifest, m.baseDir),
        memory: o.memory,
        workers: o.workers ?? 1,
        batchSize: o.batchSize ?? DEFAULT_BATCH_SIZE,
      }),
    );
    if (typeof fit === 'string')
      return run.result({
        status: 'FAILED',
        message: `job ${m.jobId} FAILED before any chunk ran, and no attempt was spent: ${fit}`,
      });
    // A job an earlier run finished: reported as it is, repaired, or finalized again.
    const earlier = await earlierRun(ctx, { stateDir: run.stateDir, log });
    if (earlier.kind === 'intact')
      return run.result({
        status: 'SUCCEEDED',
        report: earlier.report,
        message: `job ${m.jobId} had already succeeded; nothing to do`,
      });
    const { created, workers, output } = await timed(timings, 'plan', async () => {
      // The output first: a job whose rows exist always has somewhere to write.
      const output = await ensureOutput(ctx);
      // The ledger's lock excludes any other run on this state directory, so a job holding
      // the output claim in it is not running: over, for taking its claim over once its
      // output is gone (ensureOutput has just refused it if it is still there).
      const plan = await planStep(ctx, served, {
        fit,
        maxWorkers: o.workers ?? 1,
        leaseMs: o.leaseMs,
        isJobOver: async () => true,
      });
      return { ...plan, output };
    });
    const initial = await resumeRows(run, o);
    const fleet = new LocalFleet({
      manifest: m.manifest,
      baseDir: m.baseDir,
      workDir: run.workDir,
      jobId: m.jobId,
      chunks: ctx.plan.counts.chunks,
      workers,
      batchSize: o.batchSize ?? DEFAULT_BATCH_SIZE,
      ledger,
      served,
      progress: o.progress,
      initiallyDone: initial.DONE + initial.SKIPPED,
      log,
      onWorker: o.onWorker,
      signal: o.signal,
    });
    log(
      created
        ? `planned ${m.jobId}: ${ctx.plan.counts.chunks} chunks, ${ctx.plan.counts.patches} patches`
        : `resuming ${m.jobId}: ${initial.DONE + initial.SKIPPED}/${ctx.plan.counts.chunks} chunks already done`,
    );
    // What the model receives, as frozen in the job description (a resumed job's own rule).
    log(`model input: ${describeNormalisation(ctx.description.normalization, ctx.input.dtype)}`);
    if (earlier.kind === 'damaged') return await repairRun(run, fleet, earlier.damaged, workers);
    // Seam blocks are blended by the workers, each by its last contributor
    // (core/pipeline/seam-handoff.ts); what they left is blended once the work is done.
    // The preview's input column depends on the input alone: draw it now, while the
    // workers start up (a core is free then) and infer, instead of after them.
    const inputPanels: Promise<InputPanels | undefined> = renderInputPanels(
      ctx.input,
      ctx.plan.region,
      pyramidLevels(ctx.plan.volumeShape, m.manifest.output.pyramid ?? 0, ctx.input.voxelSize),
    ).catch(() => undefined);
    const verdict = await runWorkRounds(ledger, m.jobId, fleet, {
      maxRounds: run.maxRounds,
      maxWorkers: workers,
      timings,
      job: async () => ctx,
    });
    if (fleet.setupFailure !== undefined)
      return run.result({
        status: 'FAILED',
        ...ran(fleet),
        message: `job ${m.jobId} FAILED: a worker could not start: ${fleet.setupFailure}`,
      });
    fleet.endProgress();
    const stopped = stopMessage(run, fleet, verdict, o.signal);
    if (stopped !== undefined)
      return run.result({ status: 'INTERRUPTED', ...ran(fleet), message: stopped });
    return await finishRun(run, fleet, verdict, { output, workers, inputPanels });
  } finally {
    await ledger.close();
  }
}

/** One local run's open state: the job, its ledger (and the pausing view workers use). */
interface OpenRun {
  m: LoadedManifest;
  ctx: JobContext;
  stateDir: string;
  workDir: string;
  ledger: LocalLedger;
  served: PausingLedger;
  log: (line: string) => void;
  timings: Record<string, number>;
  startedAt: Date;
  cpuAtStart: NodeJS.CpuUsage;
  maxRounds: number;
  result(r: Pick<LocalRunResult, 'status'> & Partial<LocalRunResult>): LocalRunResult;
}

/**
 * Checks the output location (before anything is written: a wrong output.url must not
 * cost a byte of the user's data), takes the state directory's ledger and opens the job.
 */
async function openRun(loaded: LoadedManifest, o: LocalRunOptions): Promise<OpenRun> {
  const log = o.log ?? (() => {});
  const startedAt = new Date();
  const cpuAtStart = process.cpuUsage();
  const stateDir = o.stateDir ?? defaultStateDir(loaded);
  // A state directory an earlier release wrote keeps its job under the id it gave then.
  const m: LoadedManifest = { ...loaded, jobId: await resolveJobId(loaded, stateDir) };
  checkOutputLocation({
    jobId: m.jobId,
    outputUrl: m.manifest.output.url,
    inputUrl: m.manifest.input.url,
    modelUrl: m.manifest.model.url,
    manifestPath: m.path,
    baseDir: m.baseDir,
    stateDir,
  });
  mkdirSync(stateDir, { recursive: true });
  // The ledger's lock makes this the only run on the state directory (a second one
  // would double-claim): so no worker of an earlier run can be alive.
  const ledger = await LocalLedger.open(join(stateDir, 'ledger'));
  // Every transition goes through `served`: a state directory that cannot be written
  // (disk full, quota, read-only, I/O error) pauses the run, and past the pause stops it
  // cleanly; it never fails a chunk or crashes this process.
  const served = new PausingLedger(ledger, {
    onPause: (e) => log(`paused, retrying for up to 30 s: ${e.message}`),
    onResume: () => log('the ledger state directory is writable again; resuming'),
  });
  const workDir = join(stateDir, 'work', m.jobId);
  let ctx: JobContext;
  try {
    ctx = await openJob(m.manifest, {
      jobId: m.jobId,
      work: new LocalStore(workDir, { fsync: false }),
      baseDir: m.baseDir,
      previewTiles: true,
    });
  } catch (error) {
    await ledger.close();
    throw error;
  }
  return {
    m,
    ctx,
    stateDir,
    workDir,
    ledger,
    served,
    log,
    timings: {},
    startedAt,
    cpuAtStart,
    maxRounds: o.maxRounds ?? 3,
    result: (r) => ({
      jobId: m.jobId,
      output: m.manifest.output.url,
      chunks: ctx.plan.counts.chunks,
      seconds: (Date.now() - startedAt.getTime()) / 1000,
      inferredThisRun: 0,
      peakWorkerRssBytes: 0,
      ...r,
    }),
  };
}

/**
 * Frees the chunks an earlier run's workers held, unspent (the lock says that run is gone
 * as a whole: killed, or stopped by a double Ctrl-C, which says nothing about its
 * chunks), re-arms FAILED ones under --retry-failed, and returns the counts to start from.
 */
async function resumeRows(run: OpenRun, o: LocalRunOptions) {
  const { ledger, served, m, log } = run;
  await served.write(() => ledger.abandonOwners(m.jobId, () => true, { spend: false }));
  if (o.retryFailed) {
    const { rearmed } = await served.write(() => ledger.rearm(m.jobId, { status: 'FAILED' }));
    log(
      rearmed > 0
        ? `--retry-failed: re-armed ${rearmed} FAILED chunk(s) of ${m.jobId}; every DONE chunk is kept`
        : `--retry-failed: ${m.jobId} has no FAILED chunk to re-arm`,
    );
  }
  return ledger.counts(m.jobId);
}

const ran = (
  fleet: LocalFleet,
): Pick<LocalRunResult, 'inferredThisRun' | 'peakWorkerRssBytes'> => ({
  inferredThisRun: fleet.inferred,
  peakWorkerRssBytes: fleet.peakRss,
});

/** A finished job whose output lost objects: the chunks that wrote them run again. */
async function repairRun(
  run: OpenRun,
  fleet: LocalFleet,
  damaged: readonly DamagedObject[],
  workers: number,
): Promise<LocalRunResult> {
  const { ctx, m, timings } = run;
  const outcome = await repairOutput({
    ctx,
    ledger: run.served,
    damaged,
    log: run.log,
    workers,
    device: fleet.device,
    runChunks: () => timed(timings, 'work', () => fleet.runRound(1, workers)),
  });
  if (outcome.status === 'REPAIRED') await deleteSpentPartials(ctx.work, { keepTiles: false });
  return run.result({
    status: outcome.status === 'REPAIRED' ? 'SUCCEEDED' : 'FAILED',
    ...(outcome.report ? { report: outcome.report } : {}),
    ...ran(fleet),
    message:
      outcome.message ??
      `job ${m.jobId}: repaired ${damaged.length} damaged output object(s) by re-running ${outcome.plan.chunkIds.length} chunk(s)`,
  });
}

/**
 * Why the run stops before blending and finalizing (INTERRUPTED: every DONE chunk is
 * kept), or undefined: a fault of the environment, a ledger that stayed unwritable, or
 * an interrupt with chunks left.
 */
function stopMessage(
  run: OpenRun,
  fleet: LocalFleet,
  verdict: RoundVerdict,
  signal: AbortSignal | undefined,
): string | undefined {
  const { counts } = verdict.verify;
  const done = `${counts.DONE + counts.SKIPPED}/${run.ctx.plan.counts.chunks} chunks done`;
  const { failure } = run.served;
  if (fleet.environmentStop !== undefined && failure === undefined)
    return `stopped with ${done}: ${fleet.environmentStop}; every DONE chunk is kept; run the same command again once it is fixed`;
  if (failure !== undefined) return `stopped with ${done}, every one kept: ${failure.message}`;
  if (signal?.aborted && verdict.remaining > 0)
    return `interrupted with ${done}; run the same command again to resume`;
  return undefined;
}

/**
 * Blends the seam blocks the workers left (a worker that died between completing and
 * blending; none in the normal path) when the job is COMPLETE, finalizes (report,
 * preview, pyramid) and deletes the spent partials.
 */
async function finishRun(
  run: OpenRun,
  fleet: LocalFleet,
  verdict: RoundVerdict,
  o: { output: OutputVolume; workers: number; inputPanels: Promise<InputPanels | undefined> },
): Promise<LocalRunResult> {
  const { ctx, m, timings, log } = run;
  let cleanup: Promise<unknown> = Promise.resolve();
  if (verdict.status === 'COMPLETE') {
    await timed(timings, 'blend', async () =>
      finishLeftovers(ctx, o.output, await leftoverUnits(ctx, o.output)),
    );
    await markBlended(ctx.work, new Date());
    // The partials are spent: delete them while finalize runs (other threads, other
    // core), all but the preview tiles finalize reads; those go after it.
    cleanup = deleteSpentPartials(ctx.work, { keepTiles: true }).catch((e: unknown) =>
      log(`could not delete the spent partials in ${run.workDir}: ${String(e)}`),
    );
  }
  // finalize times itself (report.timings.finalize).
  const report = await finalizeJob(ctx, {
    ledger: run.ledger,
    verify: verdict.verify,
    startedAt: run.startedAt,
    timings,
    chunkTimings: fleet.chunkTimings,
    fleetSize: o.workers,
    device: fleet.device,
    inputPanels: o.inputPanels,
  });
  await cleanup;
  if (verdict.status === 'COMPLETE') await deleteSpentPartials(ctx.work, { keepTiles: false });
  const message = verdictMessage(m.jobId, verdict, m.manifest.maxAttempts, run.maxRounds);
  return run.result({
    status: report.status,
    report,
    ...ran(fleet),
    cpuSeconds: { ...fleet.cpu, coordinator: cpuSecondsSince(run.cpuAtStart) },
    ...(message ? { message } : {}),
  });
}

/**
 * What `check` returns, or the message of a refusal it throws (a model or memory that
 * would fail every chunk); anything else is rethrown.
 */
async function refusal<T>(check: () => Promise<T>): Promise<T | string> {
  try {
    return await check();
  } catch (e) {
    const refused =
      e instanceof ModelLoadError ||
      e instanceof ModelSignatureError ||
      e instanceof ModelChecksumError ||
      e instanceof ModelTooLargeError ||
      e instanceof WorkerMemoryError;
    if (!refused) throw e;
    return e.message;
  }
}

/** What a run that ended FAILED or unfinished says; undefined for COMPLETE. */
function verdictMessage(
  jobId: string,
  verdict: RoundVerdict,
  maxAttempts: number,
  maxRounds: number,
): string | undefined {
  const { poison } = verdict.verify;
  const unfinished = `${verdict.remaining} chunk(s) still unfinished after ${maxRounds} rounds`;
  if (verdict.status === 'FAILED')
    return (
      `job ${jobId} FAILED: ${poison.length} chunk(s) failed ${maxAttempts} attempts:\n${describePoison(poison)}\n` +
      `${verdict.remaining > 0 ? `${unfinished}; ` : ''}fix the cause, then run the same command with --retry-failed: ` +
      `the ${poison.length} failed chunk(s) run again and every DONE chunk is kept`
    );
  if (verdict.status === 'INCOMPLETE')
    return `job ${jobId} FAILED: ${unfinished}; run again to resume`;
  return undefined;
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}
