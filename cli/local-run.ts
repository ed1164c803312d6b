// `tessera run`: the whole pipeline on one machine. The parent process owns the ledger
// (a journal under the state directory) and forks N worker processes that claim chunks
// over IPC. A worker that dies is replaced and its chunk re-claimed at once; a run that
// is killed resumes from the journal, never re-inferring a DONE chunk.
//
// Whose fault a death is decides whether it spends an attempt (DESIGN.md, "Whose fault
// is an error"): a worker that dies alone while the run goes on spends one on each chunk
// it held; chunks held when the run as a whole was stopped (killed, interrupted, or
// stopped by this coordinator) are handed back unspent. A FAILED job comes back with
// `retryFailed` (--retry-failed): its FAILED chunks are re-armed, DONE ones kept.

import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { readdir, rm } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { LedgerWriteError, LocalLedger, serveLedger } from '../core/ledger/index.ts';
import { PausingLedger } from '../core/ledger/pausing.ts';
import {
  ModelChecksumError,
  ModelLoadError,
  ModelSignatureError,
  ThreadedModel,
} from '../core/model/index.ts';
import {
  blendSeams,
  type ChunkTiming,
  checkJobFits,
  checkOutput,
  type DamagedObject,
  describeDamage,
  describePoison,
  EagerBlender,
  ensureOutput,
  finalizeJob,
  type JobContext,
  ModelTooLargeError,
  openJob,
  planJob,
  REPORT_KEY,
  type RunReport,
  TILE_PREFIX,
  verifyJob,
} from '../core/pipeline/index.ts';
import { type MemoryBudget, WorkerMemoryError } from '../core/pipeline/memory-estimate.ts';
import { type InputPanels, renderInputPanels } from '../core/pipeline/preview.ts';
import { LocalStore } from '../core/store/index.ts';
import { pyramidLevels } from '../core/volume/pyramid.ts';
import { defaultStateDir, type LoadedManifest, resolveJobId } from './job-files.ts';
import { clearDamagedMetadata, repairOutput } from './local-repair.ts';
import type { WorkerInit, WorkerMessage } from './local-worker.ts';
import { checkOutputLocation } from './output-location.ts';
import { readJobModel } from './plan-cost.ts';
import type { Progress } from './progress.ts';
import { forkTs } from './ts-child.ts';

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
  const log = o.log ?? (() => {});
  const startedAt = new Date();
  const cpuAtStart = process.cpuUsage();
  const stateDir = o.stateDir ?? defaultStateDir(loaded);
  // A state directory an earlier release wrote keeps its job under the id it gave then.
  const m: LoadedManifest = { ...loaded, jobId: await resolveJobId(loaded, stateDir) };
  // Before anything is written, the state directory included: a wrong output.url must
  // not cost a byte of the user's data.
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
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, f: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await f();
    } finally {
      timings[name] = Math.round(performance.now() - t0) / 1000 + (timings[name] ?? 0);
    }
  };
  try {
    const workDir = join(stateDir, 'work', m.jobId);
    const ctx = await openJob(m.manifest, {
      jobId: m.jobId,
      work: new LocalStore(workDir, { fsync: false }),
      baseDir: m.baseDir,
      previewTiles: true,
    });
    const result = (
      r: Pick<LocalRunResult, 'status'> & Partial<LocalRunResult>,
    ): LocalRunResult => ({
      jobId: m.jobId,
      output: m.manifest.output.url,
      chunks: ctx.plan.counts.chunks,
      seconds: (Date.now() - startedAt.getTime()) / 1000,
      inferredThisRun: 0,
      peakWorkerRssBytes: 0,
      ...r,
    });
    // What would fail every chunk the same way fails here, once, before anything is
    // written: a model that does not fit the manifest, workers that would not fit in memory.
    const unfit = await refusal(() =>
      readJobModel(m.manifest, m.baseDir).then((model) =>
        checkJobFits(ctx, {
          model,
          memory: o.memory,
          workers: o.workers ?? 1,
          batchSize: o.batchSize ?? 4,
        }),
      ),
    );
    if (unfit !== undefined)
      return result({
        status: 'FAILED',
        message: `job ${m.jobId} FAILED before any chunk ran, and no attempt was spent: ${unfit}`,
      });
    // Once every seam block is blended, a marker records it and the partials are deleted.
    // Running the job again then reports the finished output (or only finalizes again)
    // instead of re-blending from partials that are gone.
    const blendedMarker = join(stateDir, 'work', `${m.jobId}.blended`);
    const alreadyBlended = existsSync(blendedMarker);
    // Output objects of a SUCCEEDED job found damaged or missing: repaired below.
    let damaged: DamagedObject[] | undefined;
    if (alreadyBlended) {
      const previous = await previousReport(ctx, m.jobId);
      if (previous) {
        const check = await checkOutput(ctx);
        if (check.damaged.length === 0) {
          log(
            `${m.jobId} already SUCCEEDED; its output is ${m.manifest.output.url} (${check.checked} objects checked intact)`,
          );
          return result({
            status: 'SUCCEEDED',
            report: previous,
            message: `job ${m.jobId} had already succeeded; nothing to do`,
          });
        }
        log(
          `${m.jobId} already SUCCEEDED, but ${check.damaged.length} output object(s) are damaged; repairing them:\n${describeDamage(check.damaged)}`,
        );
        damaged = check.damaged;
      }
      if (!(await ctx.outputStore.get('/zarr.json')))
        throw new Error(
          `job ${m.jobId} finished earlier, but its output ${m.manifest.output.url} is gone; to compute it again, delete the state directory ${stateDir} and run again`,
        );
      // Otherwise it stopped during finalize: the ownership check below, then finalize again.
    }
    // A damaged level-0 zarr.json would make ensureOutput refuse the output as not ours.
    if (damaged) await clearDamagedMetadata(ctx, damaged);
    const { created, output } = await step('plan', async () => {
      // The output first: a job whose rows exist always has somewhere to write.
      const output = await ensureOutput(ctx);
      // The ledger's lock excludes any other run on this state directory, so a job holding
      // the output claim in it is not running: over, for taking its claim over once its
      // output is gone (ensureOutput has just refused it if it is still there).
      const plan = await planJob(ctx, served, { leaseMs: o.leaseMs, isJobOver: async () => true });
      return { ...plan, output };
    });
    // Chunks held by the earlier run's workers are free now, unspent: the lock says that
    // run is gone as a whole (killed, or stopped by a double Ctrl-C), which says nothing
    // about its chunks.
    await served.write(() => ledger.abandonOwners(m.jobId, () => true, { spend: false }));
    if (o.retryFailed) {
      const { rearmed } = await served.write(() => ledger.rearm(m.jobId, { status: 'FAILED' }));
      log(
        rearmed > 0
          ? `--retry-failed: re-armed ${rearmed} FAILED chunk(s) of ${m.jobId}; every DONE chunk is kept`
          : `--retry-failed: ${m.jobId} has no FAILED chunk to re-arm`,
      );
    }
    const initial = await ledger.counts(m.jobId);
    const eager = new EagerBlender(ctx, output);
    // Where a finished chunk is reported: the eager blender, or a repair's own.
    let onChunkFinished = (chunkId: string): void => eager.chunkFinished(chunkId);
    // Chunks finished by an earlier run count too; their blocks are re-blended (same bytes).
    if (!alreadyBlended)
      for (const status of ['DONE', 'SKIPPED'] as const)
        for await (const row of ledger.list(m.jobId, status)) eager.chunkFinished(row.chunkId);
    log(
      created
        ? `planned ${m.jobId}: ${ctx.plan.counts.chunks} chunks, ${ctx.plan.counts.patches} patches`
        : `resuming ${m.jobId}: ${initial.DONE + initial.SKIPPED}/${ctx.plan.counts.chunks} chunks already done`,
    );

    const workers = Math.max(1, Math.min(o.workers ?? 1, ctx.plan.counts.chunks));
    const threads = Math.max(1, Math.floor(availableParallelism() / workers));
    const chunkTimings: ChunkTiming[] = [];
    let inferred = 0;
    const ready = new Set<string>();
    let setupFailure: string | undefined;
    let peakRss = 0;
    const cpu = { workers: 0, workerMainThreads: 0 };
    let failedAttempts = 0;
    const progressState = {
      done: initial.DONE + initial.SKIPPED,
      total: ctx.plan.counts.chunks,
      failed: 0,
      voxels: 0,
    };
    let device = m.manifest.compute.device;
    // Set when a worker reports a fault of the environment (disk full, …) it could not
    // wait out: the run stops (every worker released its chunks), nothing is respawned.
    let environmentStop: string | undefined;
    // The run as a whole is stopping: what workers die of now is not their chunks' fault.
    const stopping = (): boolean =>
      o.signal?.aborted === true || served.failure !== undefined || environmentStop !== undefined;

    let yielded = false;
    let inputPanels: Promise<InputPanels | undefined> | undefined;
    const runRound = async (): Promise<void> => {
      let spawned = 0;
      // Replacements for dead workers are bounded: a worker that dies on every chunk
      // burns one attempt each time, so chunks hit maxAttempts and the round ends.
      const maxSpawns = workers + ctx.plan.counts.chunks * m.manifest.maxAttempts;
      const live = new Set<Promise<void>>();
      const children = new Set<ChildProcess>();
      const stopAll = (): void => {
        // Workers get SIGTERM: they stop claiming and release their chunks.
        for (const c of children) c.kill('SIGTERM');
      };
      const onAbort = stopAll;
      const spawn = (slot: number): void => {
        const owner = `local-${process.pid}-${slot}-${spawned++}`;
        const child = forkTs(new URL('./local-worker.ts', import.meta.url), ['--tessera-worker'], {
          stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
        });
        children.add(child);
        o.onWorker?.(child, owner);
        const stopServing = serveLedger(served, child);
        child.on('message', (msg: WorkerMessage) => {
          if (msg.type === 'ready') {
            device = msg.device as typeof device;
            ready.add(msg.owner);
          } else if (msg.type === 'fatal') {
            log(`worker ${msg.owner} failed: ${msg.error}`);
            // A worker that dies before it is ready (model unreadable, input missing) would
            // die the same way again: stop the run and say why, instead of respawning.
            if (!ready.has(msg.owner)) setupFailure ??= msg.error;
          } else if (msg.type === 'resources') {
            peakRss = Math.max(peakRss, msg.maxRssBytes);
            cpu.workers += msg.cpuSeconds;
            cpu.workerMainThreads += msg.mainThreadCpuSeconds ?? 0;
          } else if (msg.type === 'event') {
            const e = msg.event;
            if (e.type === 'environment') {
              log(`worker ${msg.owner} stopped: ${e.message}`);
              if (environmentStop === undefined) {
                environmentStop = e.message;
                stopAll();
              }
            } else if (e.type === 'done') {
              onChunkFinished(e.chunkId);
              progressState.done++;
              progressState.voxels += e.voxels;
              if (!e.skipped) inferred++;
              chunkTimings.push({ chunkId: e.chunkId, ...e.ms });
            } else if (e.type === 'failed') {
              failedAttempts++;
              progressState.failed = failedAttempts;
              log(
                `chunk ${e.chunkId} failed${e.poison ? ' for the last time (poison)' : ', will retry'}: ${e.error}`,
              );
            } else if (e.type === 'warning') log(`warning: ${e.message}`);
            o.progress?.update(progressState);
          }
        });
        const init: WorkerInit = {
          type: 'init',
          manifest: m.manifest,
          baseDir: m.baseDir,
          workDir,
          jobId: m.jobId,
          owner,
          startIndex: Math.floor((slot * ctx.plan.counts.chunks) / workers),
          threads,
          batchSize: o.batchSize ?? 4,
          device: m.manifest.compute.device,
        };
        child.send(init);
        const done = new Promise<void>((resolve) => {
          child.on('exit', (code, signal) => {
            stopServing();
            children.delete(child);
            void (async () => {
              const died = code !== 0 || signal !== null;
              if (died || stopping()) {
                // It died holding chunks: make them claimable now rather than at lease expiry.
                // Alone, while the run goes on, it spends an attempt of each (it may be the
                // chunk that killed it, e.g. out of memory). While the run is being stopped,
                // none: a second Ctrl-C or a kill after the stop began is not the chunk's
                // fault. A worker that exited 0 normally holds nothing; one that exited 0
                // during a stop may not have released everything (its ledger writes failed).
                // When the journal cannot take that (a disk still full past the pause), the
                // next run does it (abandonOwners at start); this run stops.
                const spend = died && !stopping();
                const abandoned = await served
                  .write(() => ledger.abandonOwners(m.jobId, (x) => x === owner, { spend }), {
                    evenStopping: !spend,
                  })
                  .then(
                    () => true,
                    (error: unknown) => {
                      if (!(error instanceof LedgerWriteError)) throw error;
                      return false;
                    },
                  );
                const c = await ledger.counts(m.jobId);
                const aborted = stopping();
                if (died && !aborted)
                  log(
                    `worker ${owner} exited (${signal ?? `code ${code}`})${c.PENDING > 0 ? '; starting a replacement' : ''}`,
                  );
                if (
                  died &&
                  abandoned &&
                  !aborted &&
                  setupFailure === undefined &&
                  c.PENDING > 0 &&
                  spawned < maxSpawns
                )
                  spawn(slot);
              }
              if (served.failure !== undefined || environmentStop !== undefined) stopAll();
            })()
              .catch((error: unknown) => {
                // A bug, not a fault of the disk: say it, and stop the round rather than hang.
                log(`coordinator error after worker ${owner} exited: ${String(error)}`);
                setupFailure ??= String(error);
              })
              .finally(() => {
                live.delete(done);
                resolve();
              });
          });
        });
        live.add(done);
      };
      // The preview's input column depends on the input alone: draw it now, while the
      // workers start up (a core is free then) and infer, instead of after them.
      inputPanels ??= renderInputPanels(
        ctx.input,
        ctx.plan.region,
        pyramidLevels(ctx.plan.volumeShape, m.manifest.output.pyramid ?? 0, ctx.input.voxelSize),
      ).catch(() => undefined);
      for (let i = 0; i < workers; i++) spawn(i);
      // The coordinator's own work (eager blending, ledger IPC) should fill the gaps between
      // inference batches rather than preempt the workers' inference threads. Only now:
      // a worker starts at the priority of the thread that forks it, and inference should
      // run at the user's. (A replacement for a dead worker starts lowered; it lowers its
      // own other threads further, so inference still comes first within it.)
      if (!yielded) ThreadedModel.yieldToInference();
      yielded = true;
      o.signal?.addEventListener('abort', onAbort);
      while (live.size > 0) await Promise.race(live);
      o.signal?.removeEventListener('abort', onAbort);
    };

    // Rounds go on while any chunk is unfinished, even with some FAILED: a job ends
    // FAILED only once every other chunk was attempted (and a --retry-failed later has
    // only the failed ones left to run).
    const unfinished = (v: { counts: { PENDING: number; RUNNING: number } }): boolean =>
      v.counts.PENDING + v.counts.RUNNING > 0;
    if (damaged) {
      const outcome = await repairOutput({
        ctx,
        ledger: served,
        damaged,
        log,
        workers,
        device,
        runChunks: async (finished) => {
          onChunkFinished = finished;
          await step('work', runRound);
        },
      });
      if (outcome.status === 'REPAIRED') await rm(workDir, { recursive: true, force: true });
      return result({
        status: outcome.status === 'REPAIRED' ? 'SUCCEEDED' : 'FAILED',
        ...(outcome.report ? { report: outcome.report } : {}),
        inferredThisRun: inferred,
        peakWorkerRssBytes: peakRss,
        message:
          outcome.message ??
          `job ${m.jobId}: repaired ${damaged.length} damaged output object(s) by re-running ${outcome.plan.chunkIds.length} chunk(s)`,
      });
    }
    let verify = await verifyJob(ledger, m.jobId);
    for (let round = 0; round < (o.maxRounds ?? 3) && unfinished(verify); round++) {
      if (stopping() || setupFailure !== undefined) break;
      await step('work', runRound);
      verify = await step('verify', () => verifyJob(ledger, m.jobId));
    }
    if (setupFailure !== undefined) {
      return result({
        status: 'FAILED',
        inferredThisRun: inferred,
        peakWorkerRssBytes: peakRss,
        message: `job ${m.jobId} FAILED: a worker could not start: ${setupFailure}`,
      });
    }
    o.progress?.update(progressState, true);
    o.progress?.end();
    if (environmentStop !== undefined && served.failure === undefined) {
      return result({
        status: 'INTERRUPTED',
        inferredThisRun: inferred,
        peakWorkerRssBytes: peakRss,
        message: `stopped with ${verify.counts.DONE + verify.counts.SKIPPED}/${ctx.plan.counts.chunks} chunks done: ${environmentStop}; every DONE chunk is kept; run the same command again once it is fixed`,
      });
    }
    if (served.failure !== undefined) {
      return result({
        status: 'INTERRUPTED',
        inferredThisRun: inferred,
        peakWorkerRssBytes: peakRss,
        message: `stopped with ${verify.counts.DONE + verify.counts.SKIPPED}/${ctx.plan.counts.chunks} chunks done, every one kept: ${served.failure.message}`,
      });
    }
    if (o.signal?.aborted && unfinished(verify)) {
      return result({
        status: 'INTERRUPTED',
        inferredThisRun: inferred,
        peakWorkerRssBytes: peakRss,
        message: `interrupted with ${verify.counts.DONE + verify.counts.SKIPPED}/${ctx.plan.counts.chunks} chunks done; run the same command again to resume`,
      });
    }
    let cleanup: Promise<void> = Promise.resolve();
    if (verify.status === 'COMPLETE' && !alreadyBlended) {
      // Most seam blocks were blended while the job ran; the rest now.
      await step('blend', async () => blendSeams(ctx, output, { blocks: await eager.drain() }));
      timings.blendDuringWork = Math.round(eager.seconds * 1000) / 1000;
      mkdirSync(dirname(blendedMarker), { recursive: true });
      writeFileSync(blendedMarker, `${new Date().toISOString()}\n`);
      // The partials are spent: delete them while finalize runs (other threads, other
      // core), all but the preview tiles finalize reads; those go after it.
      cleanup = removeSpentPartials(join(workDir, 'partials')).catch((e: unknown) =>
        log(`could not delete the spent partials in ${workDir}: ${String(e)}`),
      );
    }
    const report = await step('finalize', () =>
      finalizeJob(ctx, {
        ledger,
        verify,
        startedAt,
        timings,
        chunkTimings,
        workers,
        device,
        ...(inputPanels ? { inputPanels } : {}),
      }),
    );
    await cleanup;
    if (verify.status === 'COMPLETE') await rm(workDir, { recursive: true, force: true });
    const left = verify.counts.PENDING + verify.counts.RUNNING;
    const stillUnfinished = `${left} chunk(s) still unfinished after ${o.maxRounds ?? 3} rounds`;
    const message =
      verify.status === 'FAILED'
        ? `job ${m.jobId} FAILED: ${verify.poison.length} chunk(s) failed ${m.manifest.maxAttempts} attempts:\n${describePoison(verify.poison)}\n` +
          `${left > 0 ? `${stillUnfinished}; ` : ''}fix the cause, then run the same command with --retry-failed: ` +
          `the ${verify.poison.length} failed chunk(s) run again and every DONE chunk is kept`
        : verify.status === 'INCOMPLETE'
          ? `job ${m.jobId} FAILED: ${stillUnfinished}; run again to resume`
          : undefined;
    return result({
      status: report.status,
      report,
      inferredThisRun: inferred,
      peakWorkerRssBytes: peakRss,
      cpuSeconds: { ...cpu, coordinator: cpuSecondsSince(cpuAtStart) },
      ...(message ? { message } : {}),
    });
  } finally {
    await ledger.close();
  }
}

/**
 * The message of a refusal `check` throws (a model or memory that would fail every
 * chunk), or undefined when it passes; anything else is rethrown.
 */
async function refusal(check: () => Promise<unknown>): Promise<string | undefined> {
  try {
    await check();
    return undefined;
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

/** The output's report.json when it records this job's success, else undefined. */
async function previousReport(ctx: JobContext, jobId: string): Promise<RunReport | undefined> {
  const bytes = await ctx.outputStore.get(REPORT_KEY);
  if (!bytes) return undefined;
  try {
    const report = JSON.parse(new TextDecoder().decode(bytes)) as RunReport;
    return report.jobId === jobId && report.status === 'SUCCEEDED' ? report : undefined;
  } catch {
    return undefined;
  }
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const d = process.cpuUsage(start);
  return (d.user + d.system) / 1e6;
}

/** Deletes the seam partials under `dir`, leaving the preview tiles (TILE_PREFIX). */
async function removeSpentPartials(dir: string): Promise<void> {
  const keep = TILE_PREFIX.split('/').pop();
  const entries = await readdir(dir).catch(() => [] as string[]);
  // One at a time: this runs beside finalize, whose reads share libuv's four threads.
  for (const e of entries) {
    if (e !== keep) await rm(join(dir, e), { recursive: true, force: true });
  }
}
