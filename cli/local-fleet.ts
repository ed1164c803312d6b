// The local run's Fleet (core/pipeline/driver.ts): N forked worker processes per round,
// each claiming chunks over IPC from the coordinator's ledger. A worker that dies is
// replaced and its chunk re-claimed at once.
//
// Whose fault a death is decides whether it spends an attempt (DESIGN.md, "Whose fault
// is an error"): a worker that dies alone while the run goes on spends one on each chunk
// it held; chunks held when the run as a whole was stopped (killed, interrupted, or
// stopped by this coordinator) are handed back unspent.

import type { ChildProcess } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { LedgerWriteError, type LocalLedger, serveLedger } from '../core/ledger/index.ts';
import type { PausingLedger } from '../core/ledger/pausing.ts';
import type { Manifest } from '../core/manifest/schema.ts';
import { ThreadedModel } from '../core/model/index.ts';
import type { ChunkTiming, Fleet } from '../core/pipeline/index.ts';
import type { WorkerInit, WorkerMessage } from './local-worker.ts';
import type { Progress } from './progress.ts';
import { forkTs } from './ts-child.ts';

export interface LocalFleetOptions {
  manifest: Manifest;
  baseDir: string;
  workDir: string;
  jobId: string;
  chunks: number;
  /** Worker processes per round (at most; a round for few chunks starts fewer). */
  workers: number;
  batchSize: number;
  ledger: LocalLedger;
  served: PausingLedger;
  progress?: Progress | undefined;
  /** Chunks already finished when the run started (for the progress line). */
  initiallyDone: number;
  log: (line: string) => void;
  onWorker?: ((child: ChildProcess, owner: string) => void) | undefined;
  signal?: AbortSignal | undefined;
}

export class LocalFleet implements Fleet {
  readonly chunkTimings: ChunkTiming[] = [];
  inferred = 0;
  peakRss = 0;
  readonly cpu = { workers: 0, workerMainThreads: 0 };
  device: string;
  /** A worker died before it was ready (model unreadable, input missing): the run stops. */
  setupFailure: string | undefined;
  /**
   * A worker reported a fault of the environment (disk full, …) it could not wait out:
   * the run stops (every worker released its chunks), nothing is respawned.
   */
  environmentStop: string | undefined;
  private readonly ready = new Set<string>();
  private readonly progressState: { done: number; total: number; failed: number; voxels: number };
  private failedAttempts = 0;
  private progressShown = false;
  private yielded = false;
  private readonly threads: number;

  constructor(private readonly o: LocalFleetOptions) {
    this.device = o.manifest.compute.device;
    this.threads = Math.max(1, Math.floor(availableParallelism() / o.workers));
    this.progressState = { done: o.initiallyDone, total: o.chunks, failed: 0, voxels: 0 };
  }

  /** The run as a whole is stopping: what workers die of now is not their chunks' fault. */
  stopping(): boolean {
    return (
      this.o.signal?.aborted === true ||
      this.o.served.failure !== undefined ||
      this.environmentStop !== undefined
    );
  }

  stopped(): boolean {
    return this.stopping() || this.setupFailure !== undefined;
  }

  /** The progress line's last state, drawn once more and ended. */
  endProgress(): void {
    this.o.progress?.update(this.progressState, true);
    this.o.progress?.end();
  }

  async runRound(_round: number, roundWorkers: number): Promise<void> {
    const { o } = this;
    // The progress display's rate is measured from here, the first round's start (not from
    // the first chunk's completion, which would measure that chunk against itself).
    if (!this.progressShown) o.progress?.update(this.progressState);
    this.progressShown = true;
    const workers = Math.max(1, Math.min(roundWorkers, o.workers));
    let spawned = 0;
    // Replacements for dead workers are bounded: a worker that dies on every chunk
    // burns one attempt each time, so chunks hit maxAttempts and the round ends.
    const maxSpawns = workers + o.chunks * o.manifest.maxAttempts;
    const live = new Set<Promise<void>>();
    const children = new Set<ChildProcess>();
    const stopAll = (): void => {
      // Workers get SIGTERM: they stop claiming and release their chunks.
      for (const c of children) c.kill('SIGTERM');
    };
    const spawn = (slot: number): void => {
      const owner = `local-${process.pid}-${slot}-${spawned++}`;
      const child = forkTs(new URL('./local-worker.ts', import.meta.url), ['--tessera-worker'], {
        stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      });
      children.add(child);
      o.onWorker?.(child, owner);
      const stopServing = serveLedger(o.served, child);
      child.on('message', (msg: WorkerMessage) => this.route(msg, stopAll));
      const init: WorkerInit = {
        type: 'init',
        manifest: o.manifest,
        baseDir: o.baseDir,
        workDir: o.workDir,
        jobId: o.jobId,
        owner,
        startIndex: Math.floor((slot * o.chunks) / workers),
        threads: this.threads,
        batchSize: o.batchSize,
        device: o.manifest.compute.device,
      };
      child.send(init);
      const done = new Promise<void>((resolve) => {
        child.on('exit', (code, signal) => {
          stopServing();
          children.delete(child);
          void this.afterExit(owner, code, signal, () => {
            if (spawned < maxSpawns) spawn(slot);
          })
            .then(() => {
              if (o.served.failure !== undefined || this.environmentStop !== undefined) stopAll();
            })
            .catch((error: unknown) => {
              // A bug, not a fault of the disk: say it, and stop the round rather than hang.
              o.log(`coordinator error after worker ${owner} exited: ${String(error)}`);
              this.setupFailure ??= String(error);
            })
            .finally(() => {
              live.delete(done);
              resolve();
            });
        });
      });
      live.add(done);
    };
    for (let i = 0; i < workers; i++) spawn(i);
    // The coordinator's own work (eager blending, ledger IPC) should fill the gaps between
    // inference batches rather than preempt the workers' inference threads. Only now:
    // a worker starts at the priority of the thread that forks it, and inference should
    // run at the user's. (A replacement for a dead worker starts lowered; it lowers its
    // own other threads further, so inference still comes first within it.)
    if (!this.yielded) ThreadedModel.yieldToInference();
    this.yielded = true;
    o.signal?.addEventListener('abort', stopAll);
    try {
      while (live.size > 0) await Promise.race(live);
    } finally {
      o.signal?.removeEventListener('abort', stopAll);
    }
  }

  /** One IPC message of a worker: readiness, a fatal start-up error, resources, events. */
  private route(msg: WorkerMessage, stopAll: () => void): void {
    const { o } = this;
    if (msg.type === 'ready') {
      this.device = msg.device;
      this.ready.add(msg.owner);
    } else if (msg.type === 'fatal') {
      o.log(`worker ${msg.owner} failed: ${msg.error}`);
      // A worker that dies before it is ready (model unreadable, input missing) would
      // die the same way again: stop the run and say why, instead of respawning.
      if (!this.ready.has(msg.owner)) this.setupFailure ??= msg.error;
    } else if (msg.type === 'resources') {
      this.peakRss = Math.max(this.peakRss, msg.maxRssBytes);
      this.cpu.workers += msg.cpuSeconds;
      this.cpu.workerMainThreads += msg.mainThreadCpuSeconds ?? 0;
    } else if (msg.type === 'event') {
      const e = msg.event;
      const p = this.progressState;
      if (e.type === 'environment') {
        o.log(`worker ${msg.owner} stopped: ${e.message}`);
        if (this.environmentStop === undefined) {
          this.environmentStop = e.message;
          stopAll();
        }
      } else if (e.type === 'done') {
        p.done++;
        p.voxels += e.voxels;
        if (!e.skipped) this.inferred++;
        this.chunkTimings.push({ chunkId: e.chunkId, ...e.ms });
      } else if (e.type === 'failed') {
        this.failedAttempts++;
        p.failed = this.failedAttempts;
        o.log(
          `chunk ${e.chunkId} failed${e.poison ? ' for the last time (poison)' : ', will retry'}: ${e.error}`,
        );
      } else if (e.type === 'warning') o.log(`warning: ${e.message}`);
      o.progress?.update(p);
    }
  }

  /**
   * A worker exited. One that died holding chunks: they are made claimable now rather than
   * at lease expiry. Alone, while the run goes on, it spends an attempt of each (it may be
   * the chunk that killed it, e.g. out of memory). While the run is being stopped, none: a
   * second Ctrl-C or a kill after the stop began is not the chunk's fault. A worker that
   * exited 0 normally holds nothing; one that exited 0 during a stop may not have released
   * everything (its ledger writes failed). When the journal cannot take that (a disk still
   * full past the pause), the next run does it (abandonOwners at start); this run stops.
   */
  private async afterExit(
    owner: string,
    code: number | null,
    signal: NodeJS.Signals | null,
    respawn: () => void,
  ): Promise<void> {
    const { o } = this;
    const died = code !== 0 || signal !== null;
    if (!died && !this.stopping()) return;
    const spend = died && !this.stopping();
    const abandoned = await o.served
      .write(() => o.ledger.abandonOwners(o.jobId, (x) => x === owner, { spend }), {
        evenStopping: !spend,
      })
      .then(
        () => true,
        (error: unknown) => {
          if (!(error instanceof LedgerWriteError)) throw error;
          return false;
        },
      );
    const c = await o.ledger.counts(o.jobId);
    const aborted = this.stopping();
    if (died && !aborted)
      o.log(
        `worker ${owner} exited (${signal ?? `code ${code}`})${c.PENDING > 0 ? '; starting a replacement' : ''}`,
      );
    if (died && abandoned && !aborted && this.setupFailure === undefined && c.PENDING > 0)
      respawn();
  }
}
