// The worker: claim a chunk, read its input (with halo), infer its patches, write the
// blocks it owns final and a partial for each seam block, then complete. Repeats until
// no chunk is left. Survives being killed at any point: every write is idempotent and
// completion is recorded only after the writes are durable.
//
// A step that fails for the place's fault (disk full, I/O, permissions, throttling, a
// ledger that cannot record; see fault.ts) spends no attempt: the worker pauses, retrying
// the step while the chunk's lease is kept, and if the fault outlasts the pause it hands
// every chunk back unspent, stops claiming and returns with `environment` set.
//
//   claim N+1 + read  ─┐ (prefetch, while N infers)
//   infer N  ──────────┼──► write N + complete (write-behind, while N+1 infers)
//                      └──► infer N+1 ...

import { type Dense, dense } from '../array/dense.ts';
import { encodePartial, PartialDecodeError, type PartialSum } from '../blend/index.ts';
import { type BlockDescriptor, Box, type ChunkDescriptor } from '../geometry/index.ts';
import { inferChunk } from '../infer/index.ts';
import type { PatchModel } from '../infer/patch-model.ts';
import { type Claim, LeaseLostError, type Ledger } from '../ledger/index.ts';
import { describeStore } from '../store/index.ts';
import {
  isShardedOutput,
  normalize,
  type OutputVolume,
  type ShardedOutput,
} from '../volume/index.ts';
import { type ChunkMask, maskedPatches } from '../volume/mask.ts';
import { type BlendScratch, blendSeamBlock } from './blend-seams.ts';
import { type JobContext, partialKey } from './context.ts';
import { finalBlock, storedOutput } from './convert.ts';
import {
  ChunkFailure,
  EnvironmentFaultError,
  MissingPartialError,
  NanInputError,
} from './errors.ts';
import { classifyFault, type EnvironmentFault, Pause, PauseInterrupted } from './fault.ts';
import {
  BatchTimes,
  DEFAULT_HANG_BOUNDS,
  type HangBounds,
  ProgressWatch,
  type Stall,
} from './hang-watchdog.ts';
import { defaultHeartbeatMs, LEASE_ENDED, LEASE_LOST, LeaseKeeper } from './lease.ts';
import { writePartial } from './partial-store.ts';
import { writePreviewTiles } from './preview-tiles.ts';
import { othersFinished } from './seam-handoff.ts';
import {
  assembleShard,
  encodeOwnPiece,
  type OwnShardData,
  ownFinals,
  type ShardUnit,
  shardsOfChunk,
} from './shard-handoff.ts';
import { pieceKey } from './shard-piece.ts';

export interface WorkerOptions {
  ctx: JobContext;
  ledger: Ledger;
  output: OutputVolume;
  owner: string;
  /**
   * The model, or its loading: chunks are claimed and read while it loads, and a model
   * that fails to load hands back what was claimed and rejects runWorker.
   */
  model: PatchModel | Promise<PatchModel>;
  /** Where this worker starts looking for work (its shard); it steals from others after. */
  startIndex?: number;
  batchSize?: number;
  /** Aborting stops claiming and releases the chunks in hand. */
  signal?: AbortSignal;
  /** Heartbeat period; default a third of the job's lease. */
  heartbeatMs?: number;
  /** When nothing is claimable but chunks are still RUNNING elsewhere, poll this often. 0: exit. */
  idlePollMs?: number;
  /**
   * After an abort, the chunks in hand are released at the next batch boundary; if that
   * takes longer than this (a slow batch on a CPU), they are released at once and the
   * worker returns (a spot instance has two minutes; Batch sends SIGKILL 30 s after SIGTERM).
   */
  hardStopMs?: number;
  /**
   * The hang watchdog's bounds (see HangBounds; default DEFAULT_HANG_BOUNDS). A chunk whose
   * inference finishes no batch within its bound is abandoned: its heartbeats stop (the
   * lease runs out and another worker re-claims it, which spends an attempt, so a hang
   * that repeats on that chunk makes it poison), a 'hung' event is emitted, and the worker
   * stops claiming, hands back its other chunks and returns with `hung` set. The inference
   * thread is wedged then: the process running it should exit (see `tessera worker`).
   * Infinite bounds turn the watchdog off.
   */
  hang?: Partial<HangBounds>;
  /**
   * How long a step failing for the environment's fault (disk full, I/O or permission
   * errors, throttling, a ledger that cannot record; see classifyFault) is retried, the
   * chunk's lease kept alive meanwhile, before the worker gives up: it then hands every
   * chunk back unspent, stops claiming and returns with `environment` set. Default 30 s.
   */
  pauseMs?: number;
  /**
   * Whether this worker blends the seam blocks it is the last contributor of (default
   * true; see seam-handoff.ts). False: it writes every partial and leaves every seam
   * block to the Blend step.
   */
  blendSeams?: boolean;
  /** Test hook: runs after a chunk's completion, before its blends after completion. */
  afterComplete?: (chunkId: string) => Promise<void>;
  onEvent?: (e: WorkerEvent) => void;
}

export const DEFAULT_PAUSE_MS = 30_000;

export type WorkerEvent =
  | { type: 'claimed'; chunkId: string; attempt: number }
  | {
      type: 'done';
      chunkId: string;
      skipped: boolean;
      patches: number;
      voxels: number;
      ms: { read: number; infer: number; write: number };
    }
  | { type: 'failed'; chunkId: string; error: string; poison: boolean }
  | { type: 'released'; chunkId: string }
  | { type: 'lease-lost'; chunkId: string }
  | ({ type: 'hung' } & Stall)
  /** The environment's fault outlasted the pause: chunks handed back, the worker stops. */
  | { type: 'environment'; chunkId?: string; code?: string; place?: string; message: string }
  | { type: 'warning'; message: string };

/** Why a worker stopped for the environment's fault: the place, the cause, what to do. */
export interface EnvironmentStop {
  message: string;
  code?: string;
  place?: string;
}

export interface WorkerStats {
  done: number;
  skipped: number;
  failed: number;
  released: number;
  leaseLost: number;
  patches: number;
  /** Seam blocks this worker blended as their last contributor (before or after completing). */
  blended: number;
  /** Seam blocks it was last for but could not blend (left to the Blend step; see 'warning' events). */
  blendsLeft: number;
  /** Set when the hang watchdog abandoned a chunk and the worker stopped (see `hang`). */
  hung?: Stall;
  /** Set when the environment's fault outlasted the pause and the worker stopped (see `pauseMs`). */
  environment?: EnvironmentStop;
}

interface Work {
  claim: Claim;
  keeper: LeaseKeeper;
  chunk: ChunkDescriptor;
  input: Promise<{ data: Dense<Float32Array>; skip: boolean; ms: number; mask?: ChunkMask }>;
}

/**
 * The chunks a worker holds. A claim loop that waits on this worker's own chunks (the
 * last ones of a job) wakes when one is let go.
 */
class Held implements Iterable<Work> {
  private readonly works = new Set<Work>();
  private wake: (() => void) | undefined;

  get size(): number {
    return this.works.size;
  }

  add(w: Work): void {
    this.works.add(w);
  }

  drop(w: Work): void {
    this.works.delete(w);
    this.wake?.();
  }

  /** Resolves when the next chunk is let go. */
  dropped(): Promise<void> {
    return new Promise((resolve) => {
      this.wake = resolve;
    });
  }

  [Symbol.iterator](): Iterator<Work> {
    return this.works[Symbol.iterator]();
  }
}

class Aborted extends Error {
  override readonly name = 'Aborted';
}

class Hung extends Error {
  override readonly name = 'Hung';
  constructor(readonly stall: Stall) {
    super(`chunk ${stall.chunkId}: no batch finished in ${Math.round(stall.stalledMs)} ms`);
  }
}

export async function runWorker(o: WorkerOptions): Promise<WorkerStats> {
  const held = new Held();
  const stats: WorkerStats = {
    done: 0,
    skipped: 0,
    failed: 0,
    released: 0,
    leaseLost: 0,
    patches: 0,
    blended: 0,
    blendsLeft: 0,
  };
  // Stops claiming: the caller's abort, or a hung inference (which the caller cannot see).
  const stopping = new AbortController();
  const stop = (): void => stopping.abort();
  // Another owner holds a newer fencing token: the chunk is let go with nothing more
  // written for it (its heartbeats stopped, no completion, release or failure recorded).
  const loseLease = async (w: Work): Promise<void> => {
    held.drop(w);
    await w.keeper.stop();
    stats.leaseLost++;
    o.onEvent?.({ type: 'lease-lost', chunkId: w.claim.chunkId });
  };
  if (o.signal?.aborted) stop();
  o.signal?.addEventListener('abort', stop);
  let timer: NodeJS.Timeout | undefined;
  const forced = new Promise<WorkerStats>((resolve) => {
    o.signal?.addEventListener('abort', () => {
      timer = setTimeout(async () => {
        for (const w of held) {
          const released = await w.keeper
            .end(async (claim) => {
              await o.ledger.release(claim);
              return true;
            })
            .catch((e: unknown) => {
              // Not recorded: the lease runs out, or the coordinator's next run frees it.
              if (classifyFault(e).kind === 'chunk') throw e;
              return false;
            });
          if (released === LEASE_LOST) await loseLease(w);
          else if (released === true) {
            stats.released++;
            o.onEvent?.({ type: 'released', chunkId: w.claim.chunkId });
          }
        }
        resolve(stats);
      }, o.hardStopMs ?? 20_000);
      timer.unref();
    });
  });
  try {
    return await Promise.race([workLoop(o, held, stats, stopping, loseLease), forced]);
  } finally {
    clearTimeout(timer);
    o.signal?.removeEventListener('abort', stop);
  }
}

async function workLoop(
  o: WorkerOptions,
  held: Held,
  stats: WorkerStats,
  stopping: AbortController,
  loseLease: (w: Work) => Promise<void>,
): Promise<WorkerStats> {
  const { ctx, ledger } = o;
  const job = await ledger.getJob(ctx.jobId);
  if (!job) throw new Error(`job ${ctx.jobId} is not in the ledger; plan it first`);
  const heartbeatMs = o.heartbeatMs ?? defaultHeartbeatMs(job.leaseMs);
  const idlePollMs = o.idlePollMs ?? Math.min(2000, job.leaseMs);
  const emit = (e: WorkerEvent): void => o.onEvent?.(e);
  const aborted = (): boolean => stopping.signal.aborted;
  const batchTimes = new BatchTimes({ ...DEFAULT_HANG_BOUNDS, ...o.hang });
  const pauseMs = o.pauseMs ?? DEFAULT_PAUSE_MS;
  const pause = new Pause({
    pauseMs,
    signal: stopping.signal,
    onPause: (step, fault) =>
      emit({
        type: 'warning',
        message: `paused: ${step.what} in ${step.place}: ${fault.message}; retrying for up to ${seconds(pauseMs)} s`,
      }),
    onResume: (step, ms) =>
      emit({
        type: 'warning',
        message: `resumed: ${step.what} in ${step.place} works again after ${seconds(ms)} s paused`,
      }),
  });
  const inputPlace = ctx.input.location;
  const ledgerPlace = 'the ledger';

  // The environment's fault outlasted the pause (or the ledger is gone): stop claiming,
  // and the chunks in hand go back unspent as each reaches a batch boundary.
  const stopForEnvironment = (
    fault: EnvironmentFault,
    chunkId: string | undefined,
    cause?: EnvironmentFaultError,
  ): void => {
    stopping.abort();
    if (stats.environment) return;
    const place = fault.place ?? cause?.step.place;
    const message =
      `stopped: ${cause ? cause.message : fault.message}. No chunk's attempt was spent and ` +
      "this worker's chunks go back unspent; run the same command again once that is fixed";
    stats.environment = {
      message,
      ...(fault.code === undefined ? {} : { code: fault.code }),
      ...(place === undefined ? {} : { place }),
    };
    emit({
      type: 'environment',
      ...(chunkId === undefined ? {} : { chunkId }),
      ...stats.environment,
    });
  };

  // Normalised input memory, recycled like the accumulators below: two chunks' inputs
  // are alive at most (one inferring, one read ahead).
  const inputBuffers: Float32Array[] = [];

  const claimNext = async (): Promise<Work | undefined> => {
    for (;;) {
      if (aborted()) return undefined;
      const claim = await ledgerStep('claiming a chunk', () =>
        ledger.claim(ctx.jobId, o.owner, { startIndex: o.startIndex ?? 0 }),
      );
      if (claim === STOPPED) return undefined;
      if (claim) {
        emit({ type: 'claimed', chunkId: claim.chunkId, attempt: claim.attempt });
        const chunk = ctx.plan.describeChunk(claim.chunkId);
        const keeper = new LeaseKeeper(ledger, claim, heartbeatMs, (e) =>
          emit({
            type: 'warning',
            message: `heartbeat for chunk ${claim.chunkId} failed: ${String(e)}`,
          }),
        ).start();
        const reuse = inputBuffers.pop();
        const input = pause.run(
          { what: `reading the input of chunk ${chunk.id}`, place: inputPlace },
          () => readInput(ctx, chunk, reuse),
        );
        input.catch(() => {}); // observed when the chunk is processed
        const work = { claim, keeper, chunk, input };
        held.add(work);
        return work;
      }
      const counts = await ledgerStep('counting chunks', () => ledger.counts(ctx.jobId));
      if (counts === STOPPED) return undefined;
      if (idlePollMs <= 0 || counts.RUNNING === 0 || aborted()) return undefined;
      // Others still hold chunks; one of them may die and its lease expire: wait and retry.
      // When the only RUNNING chunks are this worker's own (the last chunks of a job), what
      // can free work is their outcome (a failure puts one back): wait for that, not for a
      // fixed poll period that would hold the whole job's end back.
      const onlyOwn = counts.RUNNING <= held.size;
      const done = new AbortController();
      await Promise.race([
        sleep(idlePollMs, AbortSignal.any([stopping.signal, done.signal])),
        ...(onlyOwn ? [held.dropped()] : []),
      ]);
      done.abort(); // clears the poll timer, which would otherwise keep the process up
    }
  };

  /** A ledger call through the pause; STOPPED when it gave up (the worker is stopping). */
  const ledgerStep = async <T>(
    what: string,
    call: () => Promise<T>,
  ): Promise<T | typeof STOPPED> => {
    try {
      return await pause.run({ what, place: ledgerPlace }, call);
    } catch (e) {
      if (e instanceof PauseInterrupted) return STOPPED;
      if (!(e instanceof EnvironmentFaultError)) throw e;
      stopForEnvironment(e.fault, undefined, e);
      return STOPPED;
    }
  };

  /** A ledger write that failed for the environment's fault: nothing to retry into, stop. */
  const unrecorded = (action: string, claim: Claim, e: unknown): boolean => {
    const fault = classifyFault(e);
    if (fault.kind === 'chunk') return false;
    // The chunk stays RUNNING under this owner: its lease runs out, or (local runs) the
    // coordinator's next run frees it.
    emit({
      type: 'warning',
      message: `could not ${action} chunk ${claim.chunkId} in the ledger: ${fault.message}`,
    });
    stopForEnvironment(fault, claim.chunkId);
    return true;
  };

  /**
   * Ends the chunk's lease with `write`; true when recorded. A lost lease goes to
   * loseLease; a write the environment kept from being recorded stops the worker.
   */
  const record = async (
    w: Work,
    action: string,
    write: (claim: Claim) => Promise<unknown>,
  ): Promise<boolean> => {
    held.drop(w);
    try {
      const ended = await w.keeper.end(write);
      if (ended === LEASE_ENDED) return false;
      if (ended !== LEASE_LOST) return true;
    } catch (e) {
      if (!unrecorded(action, w.keeper.claim, e)) throw e;
      return false;
    }
    await loseLease(w);
    return false;
  };

  const giveBack = async (w: Work): Promise<void> => {
    if (await record(w, 'release', (claim) => ledger.release(claim))) {
      stats.released++;
      emit({ type: 'released', chunkId: w.claim.chunkId });
    }
  };

  const failChunk = async (w: Work, error: unknown): Promise<void> => {
    const message = error instanceof Error ? error.message : String(error);
    let poison = false;
    const recorded = await record(w, 'record the failure of', async (claim) => {
      poison = (await ledger.fail(claim, message)).status === 'FAILED';
    });
    if (recorded) {
      stats.failed++;
      emit({ type: 'failed', chunkId: w.claim.chunkId, error: message, poison });
    }
  };

  /** Settles a chunk whose read, inference, writes or completion threw `e`. */
  const settle = async (w: Work, e: unknown): Promise<void> => {
    if (w.keeper.lost || e instanceof LeaseLostError) await loseLease(w);
    else if (e instanceof Aborted || e instanceof PauseInterrupted) await giveBack(w);
    else if (e instanceof EnvironmentFaultError) {
      stopForEnvironment(e.fault, w.claim.chunkId, e);
      await giveBack(w);
    } else {
      // A fault of the place that no pause wrapped (the model's thread, say): not the chunk's.
      const fault = classifyFault(e);
      if (fault.kind === 'chunk') await failChunk(w, e);
      else {
        stopForEnvironment(fault, w.claim.chunkId);
        await giveBack(w);
      }
    }
  };

  const abandon = async (w: Work, stall: Stall): Promise<void> => {
    held.drop(w);
    // Its heartbeats stop and it is not released: the lease runs out and the re-claim
    // spends an attempt. A release would spend none, and a hang that repeats on this
    // chunk would then circle the fleet forever instead of becoming poison.
    await w.keeper.stop();
    stats.hung = stall;
    stopping.abort();
    emit({ type: 'hung', ...stall });
  };

  // Seams blended (shards assembled) by their last contributor, unless turned off.
  const blendScratch: BlendScratch = {};
  const output = o.output;
  const handoff: SeamHandoff | undefined =
    o.blendSeams === false
      ? undefined
      : {
          othersFinished: (chunk, units) =>
            pause.run(
              { what: `reading the contributors of chunk ${chunk.id}'s seams`, place: ledgerPlace },
              () => othersFinished(ledger, ctx, chunk, units),
            ),
          blend: async (block, own, guard) => {
            await pause.run(
              { what: `blending seam block ${block.key}`, place: output.location },
              () => blendSeamBlock(ctx, output, block, blendScratch, own, guard),
            );
            stats.blended++;
          },
          assemble: async (unit, own, guard) => {
            if (!isShardedOutput(output)) throw new TypeError('assemble needs a sharded output');
            await pause.run({ what: `assembling shard ${unit.key}`, place: output.location }, () =>
              assembleShard(ctx, output, unit, blendScratch, own, guard),
            );
            stats.blended++;
          },
        };
  /**
   * After completing: the units (seam blocks, shards) whose every other contributor is
   * DONE now are this worker's to finish. A failure leaves them to the Blend step.
   */
  const finishAfterCompletion = async (
    chunk: ChunkDescriptor,
    pending: readonly PendingUnit[],
  ): Promise<void> => {
    if (!handoff || pending.length === 0) return;
    let ready: PendingUnit[] = [];
    try {
      await o.afterComplete?.(chunk.id);
      const finished = await handoff.othersFinished(chunk, pending);
      ready = pending.filter((_, i) => finished[i]);
      for (const unit of ready) {
        await finishIfStillMissing(unit);
        ready = ready.slice(1);
      }
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      stats.blendsLeft += ready.length;
      emit({
        type: 'warning',
        message: `chunk ${chunk.id} is DONE; ${ready.length} seam unit(s) it was the last contributor of (first: ${ready[0]?.label}) are left to the Blend step: ${error.message}`,
      });
    }
  };

  // Accumulator memory is recycled: at most two chunks' sums are alive (one inferring,
  // one writing), so two buffers serve the whole run and the GC stays quiet.
  const buffers: Float32Array[] = [];
  let next = claimNext();
  let writing: Promise<void> = Promise.resolve();
  let model: PatchModel | undefined;
  for (;;) {
    const cur = await next;
    if (!cur) break;
    if (model === undefined) {
      try {
        model = await o.model;
      } catch (error) {
        // Not the chunk's fault: it goes back untouched (no attempt spent).
        await giveBack(cur);
        throw error;
      }
    }
    next = aborted() ? Promise.resolve(undefined) : claimNext();
    let acc: PartialSum;
    let times: { read: number; infer: number };
    let skip: boolean;
    let inputMemory: Float32Array | undefined;
    let watch: ProgressWatch | undefined;
    try {
      const input = await cur.input;
      inputMemory = input.data.data;
      skip = input.skip;
      const t0 = performance.now();
      // Skipped chunks never reach the model: nothing to watch, nothing to measure.
      watch = skip ? undefined : new ProgressWatch(batchTimes, cur.chunk.id);
      const stalled = watch?.stalled.then((stall) => Promise.reject(new Hung(stall)));
      const inference = inferChunk({
        plan: ctx.plan,
        chunk: cur.chunk,
        input: input.data,
        model: skip ? zeroModel(ctx.manifest.model.outputChannels) : model,
        tta: skip ? undefined : ctx.manifest.model.tta,
        blend: ctx.manifest.blend,
        outputChannels: ctx.manifest.model.outputChannels,
        batchSize: o.batchSize,
        onBatch: () => {
          // An inference abandoned as hung that comes back must not go on.
          if (watch?.fired) throw new Aborted();
          watch?.progress();
          if (aborted()) throw new Aborted();
          // Another owner holds a newer token: stop computing what we may not write.
          if (cur.keeper.lost) throw new Aborted();
        },
        onNonFinite: () => {
          throw new ChunkFailure(
            `chunk ${cur.chunk.id}: the model returned NaN or Infinity; check the model and the input normalisation (input.scale, input.offset, input.normalize)`,
            cur.chunk.id,
          );
        },
        buffer: buffers.pop(),
        skipPatch: input.mask && ((box) => input.mask!.empty(box)),
      });
      acc = await (stalled ? Promise.race([inference, stalled]) : inference);
      times = { read: input.ms, infer: performance.now() - t0 };
    } catch (e) {
      if (e instanceof Hung) {
        await abandon(cur, e.stall);
        break;
      }
      await settle(cur, e);
      continue;
    } finally {
      watch?.stop();
      // An abandoned inference may still read its input if it ever comes back.
      if (inputMemory && !watch?.fired)
        inputBuffers.push(new Float32Array(inputMemory.buffer as ArrayBuffer));
    }
    // One write in flight at a time bounds memory to ~3 chunks (reading, inferring, writing).
    await writing;
    writing = (async () => {
      const t0 = performance.now();
      let pending: PendingUnit[] = [];
      try {
        // Fencing for the object store, which cannot check a token itself: each object is
        // written only while the lease is confirmed fresh (a paused stale owner that resumes
        // finds its lease gone before writing, not after).
        // Each store write goes through the pause, its lease check included: a write
        // retried after a pause is still made only inside a lease just confirmed.
        pending = await writeChunk(
          ctx,
          o.output,
          cur.chunk,
          acc,
          () => cur.keeper.confirmIfOlder(heartbeatMs),
          pause,
          handoff,
          blendScratch,
        );
        buffers.push(acc.buffer);
        held.drop(cur);
        const completed = await pause.run(
          { what: `recording chunk ${cur.chunk.id} as done`, place: ledgerPlace },
          () =>
            cur.keeper.end(async (claim) => {
              try {
                await ledger.complete(claim, { skipped: skip });
              } catch (e) {
                // Paused on the ledger: the lease is kept while the completion is retried.
                if (!(e instanceof LeaseLostError)) cur.keeper.start();
                throw e;
              }
            }),
        );
        if (completed === LEASE_LOST) {
          await loseLease(cur);
          return;
        }
        // A hard stop released it while it was written: not done, not lost.
        if (completed === LEASE_ENDED) return;
        if (skip) stats.skipped++;
        else stats.done++;
        stats.patches += cur.chunk.patchCount;
        emit({
          type: 'done',
          chunkId: cur.claim.chunkId,
          skipped: skip,
          patches: skip ? 0 : cur.chunk.patchCount,
          voxels: cur.chunk.footprint.size,
          ms: { ...times, write: performance.now() - t0 },
        });
      } catch (e) {
        await settle(cur, e);
        return;
      }
      // DONE now: what happens here can no longer cost the chunk an attempt.
      await finishAfterCompletion(cur.chunk, pending);
    })();
  }
  // The chunk before a hung one still completes: its writes do not need the model.
  await writing;
  // A prefetched claim taken just before an abort (or a hang) is handed back too.
  const left = await next;
  if (left) await giveBack(left);
  return stats;
}

async function readInput(
  ctx: JobContext,
  chunk: ChunkDescriptor,
  reuse?: Float32Array,
): Promise<{ data: Dense<Float32Array>; skip: boolean; ms: number; mask?: ChunkMask }> {
  const t0 = performance.now();
  // input.mask: one small read at mask scale. Every patch masked: the input is not read.
  const mask = ctx.mask ? await ctx.mask.forReadBox(chunk.readBox) : undefined;
  if (mask && maskedPatches(ctx.plan, chunk, mask) === chunk.patchCount)
    return {
      data: dense(chunk.readBox, ctx.input.channels),
      skip: true,
      ms: performance.now() - t0,
    };
  const raw = await ctx.input.readBox(chunk.readBox);
  const valid = Box.ofShape(ctx.plan.volumeShape);
  const { skipBelow } = ctx.manifest.input;
  const skip = skipBelow !== undefined && allBelow(raw.data, skipBelow);
  // The job's frozen normalisation (its description): never derived here.
  const { mapping, nan } = ctx.description.normalization;
  const data = normalize(raw, {
    dtype: ctx.input.dtype,
    mapping,
    valid,
    ...(reuse ? { reuse } : {}),
  });
  // Before inference: the model never sees (nor is blamed for) a NaN input.
  if (data.nanCount > 0 && nan === 'fail')
    throw new NanInputError(chunk.id, data.nanCount, raw.box.intersect(valid).size * raw.channels);
  return { data, skip, ms: performance.now() - t0, ...(mask ? { mask } : {}) };
}

function allBelow(values: ArrayLike<number>, threshold: number): boolean {
  for (let i = 0; i < values.length; i++) if (!(values[i]! < threshold)) return false;
  return true;
}

/** How writeChunk hands its seams off (seam-handoff.ts); absent: partials only. */
interface SeamHandoff {
  /** Per unit, whether every other contributor is finished (one consistent ledger read). */
  othersFinished(
    chunk: ChunkDescriptor,
    units: readonly { readonly contributors: Iterable<ChunkDescriptor> }[],
  ): Promise<boolean[]>;
  /**
   * Blends `block`; `own` is the caller's sum in memory, standing in for its partial, and
   * `guard` its lease check before the store (a chunk not completed yet is fenced).
   */
  blend(
    block: BlockDescriptor,
    own?: { chunkId: string; sum: PartialSum },
    guard?: () => Promise<void>,
  ): Promise<void>;
  /** Assembles a shard; `own` stands in for the caller's piece; `guard` as for blend. */
  assemble(unit: ShardUnit, own?: OwnShardData, guard?: () => Promise<void>): Promise<void>;
}

/** A seam block or shard a chunk left its partial or piece of, to finish after completing. */
interface PendingUnit {
  readonly label: string;
  readonly contributors: Iterable<ChunkDescriptor>;
  /** Blends or assembles it from what is stored. */
  finish(): Promise<void>;
  /** Whether it is in the output already. */
  inOutput(): Promise<boolean>;
}

/**
 * Finishes a unit after completing. A contributor DONE without a partial or piece finished
 * the unit itself before completing (it was the last then, with this chunk's in hand): the
 * unit is in the output, and the missing partial is no failure. One missing otherwise is.
 */
async function finishIfStillMissing(unit: PendingUnit): Promise<void> {
  try {
    await unit.finish();
  } catch (error) {
    if (!(error instanceof MissingPartialError) || !(await unit.inOutput())) throw error;
  }
}

/**
 * Finishes a unit this chunk is the last contributor of, its own data from memory. A
 * partial or piece of another contributor that is missing or unreadable (deleted by a
 * repair, damaged) makes it store its own instead (false): the Blend step then names it.
 */
async function finishedAsLast(finish: () => Promise<void>): Promise<boolean> {
  try {
    await finish();
    return true;
  } catch (error) {
    if (error instanceof MissingPartialError || error instanceof PartialDecodeError) return false;
    throw error;
  }
}

/**
 * Writes the chunk's output: owned blocks final, and each seam block blended at once when
 * this chunk is its last contributor, else its partial stored (sharded output: the same
 * per shard, see writeShardsOfChunk). Returns what it left for after completing. Idempotent.
 */
async function writeChunk(
  ctx: JobContext,
  output: OutputVolume,
  chunk: ChunkDescriptor,
  acc: PartialSum,
  guard: () => Promise<void>,
  pause: Pause,
  handoff: SeamHandoff | undefined,
  scratch: BlendScratch,
): Promise<PendingUnit[]> {
  if (isShardedOutput(output))
    return writeShardsOfChunk(ctx, output, chunk, acc, guard, pause, handoff, scratch);
  const work = describeStore(ctx.work);
  const stored = storedOutput(ctx.manifest);
  // Objects are stored one at a time and each store call has consumed its bytes when it
  // returns, so one block buffer and one partial buffer serve the whole chunk (10^8-byte
  // churn per chunk otherwise, and the garbage collector runs that the churn triggers).
  const blockBuffers = {};
  for (const b of ctx.plan.ownedBlocks(chunk)) {
    const block = finalBlock(stored, acc, b.box, b.regionBox, blockBuffers);
    const key = output.blockKey(b.coord);
    await pause.run({ what: `writing output block ${key}`, place: output.location }, () =>
      output.writeBlock(b.coord, block, { beforeStore: guard }),
    );
    if (ctx.previewTiles)
      await pause.run({ what: `writing the preview tiles of block ${key}`, place: work }, () =>
        writePreviewTiles(ctx.work, ctx.plan.region, b.coord, block),
      );
  }
  const seams = [...ctx.plan.seamBlocks(chunk)];
  const last = handoff
    ? await handoff.othersFinished(
        chunk,
        seams.map((b) => ({ contributors: ctx.plan.contributors(b) })),
      )
    : [];
  const pending: PendingUnit[] = [];
  let partialBuffer: Uint8Array | undefined;
  for (const [i, b] of seams.entries()) {
    const own = { chunkId: chunk.id, sum: acc };
    if (last[i] && (await finishedAsLast(() => handoff!.blend(b, own, guard)))) continue;
    const bytes = encodePartial(acc, b.box.intersect(chunk.footprint), partialBuffer);
    if (bytes.buffer !== partialBuffer?.buffer) partialBuffer = bytes;
    const key = partialKey(b.key, chunk.id);
    await pause.run({ what: `writing seam partial ${key}`, place: work }, async () => {
      await guard();
      await writePartial(ctx.work, key, bytes);
    });
    pending.push({
      label: `seam block ${b.key}`,
      contributors: [...ctx.plan.contributors(b)],
      finish: () => handoff!.blend(b),
      inOutput: () => output.blockExists(b.coord),
    });
  }
  return pending;
}

/**
 * writeChunk for a sharded output (shard-handoff.ts): per shard the chunk touches, the
 * shard assembled at once when this chunk is its last contributor, else its piece stored
 * (one object: its finals and band partials of that shard).
 */
async function writeShardsOfChunk(
  ctx: JobContext,
  output: ShardedOutput,
  chunk: ChunkDescriptor,
  acc: PartialSum,
  guard: () => Promise<void>,
  pause: Pause,
  handoff: SeamHandoff | undefined,
  scratch: BlendScratch,
): Promise<PendingUnit[]> {
  const work = describeStore(ctx.work);
  const units = shardsOfChunk(ctx.plan, output, chunk);
  const last = handoff ? await handoff.othersFinished(chunk, units) : [];
  const pending: PendingUnit[] = [];
  for (const [i, unit] of units.entries()) {
    const finals = await pause.run(
      { what: `encoding chunk ${chunk.id}'s blocks of shard ${unit.key}`, place: work },
      () => ownFinals(ctx, output, unit, chunk, acc, scratch),
    );
    const own: OwnShardData = { chunkId: chunk.id, finals, sum: acc };
    if (last[i] && (await finishedAsLast(() => handoff!.assemble(unit, own, guard)))) continue;
    const bytes = await encodeOwnPiece(unit, chunk, own);
    const key = pieceKey(unit.key, chunk.id);
    await pause.run({ what: `writing shard piece ${key}`, place: work }, async () => {
      await guard();
      await ctx.work.set(key, bytes);
    });
    pending.push({
      label: `shard ${unit.key}`,
      contributors: unit.contributors,
      finish: () => handoff!.assemble(unit),
      inOutput: async () => (await output.shardIndex(unit.shard)) !== undefined,
    });
  }
  return pending;
}

/** Stands in for the model on skipped (empty) chunks: output 0, weights as usual. */
function zeroModel(channels: number): PatchModel {
  return {
    run: async (_batch, n, patch) =>
      new Float32Array(n * channels * patch[0] * patch[1] * patch[2]),
  };
}

/** What a ledger step that gave up returns (the worker is stopping). */
const STOPPED = Symbol('stopped');

/** Seconds for messages: 30, 0.4. */
const seconds = (ms: number): number => +(ms / 1000).toFixed(1);

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
}
