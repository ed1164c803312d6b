// The hang watchdog: a chunk's inference must make progress (finish a model batch) within
// a bound derived from how long this worker's batches take. The lease's heartbeat runs on
// a timer of its own, so without this a wedged inference (a GPU driver hang, a deadlock in
// the runtime) would keep its lease, and the Batch child, alive until the job's timeout.
//
//   claim ─ read ─┬ batch ─ batch ─ batch ─ · · · · · · · · · ┐
//                 └ armed   re-armed at each batch's end      └ no batch within the bound:
//                                                                 the chunk is abandoned

/**
 * How long a chunk's inference may go without finishing a batch.
 *
 * bound = startupMs until this worker has timed one batch of the real model; after that
 * max(floorMs, factor × the slowest batch timed so far).
 *
 * - startupMs (10 min): the first batch pays the model's warm-up (the CUDA provider's
 *   kernel and cuDNN algorithm search, memory arenas growing), which can take minutes and
 *   tells nothing about later batches.
 * - factor (10): a batch's time varies with contention (other processes on a shared lab
 *   box, the garbage collector, a write in flight on the main thread, a smaller last batch
 *   of a new shape being tuned); an order of magnitude over the slowest batch seen is
 *   never reached by a healthy worker and still ends a hang in minutes, not 24 hours.
 * - floorMs (60 s): with fast batches (a few ms on a GPU) factor × slowest would be under
 *   a second, where a pause of the process (a long GC, swapping, a stopped container
 *   resumed) would pass for a hang.
 *
 * "Slowest so far" only grows, so a slow phase widens the bound and never narrows it: a
 * false alarm costs a chunk an attempt and a worker its process, a late one only time.
 * Batches of skipped (empty) chunks do not count: they never reach the model.
 */
export interface HangBounds {
  startupMs: number;
  floorMs: number;
  factor: number;
}

export const DEFAULT_HANG_BOUNDS: Readonly<HangBounds> = {
  startupMs: 10 * 60_000,
  floorMs: 60_000,
  factor: 10,
};

const MAX_TIMER_MS = 2 ** 31 - 1;

/** A chunk whose inference made no progress within its bound. */
export interface Stall {
  chunkId: string;
  /** Time since the inference started or last finished a batch. */
  stalledMs: number;
  boundMs: number;
}

/** The batch times one worker has measured, across its chunks, and the bound they give. */
export class BatchTimes {
  private slowest: number | undefined;

  constructor(readonly bounds: Readonly<HangBounds> = DEFAULT_HANG_BOUNDS) {}

  get slowestMs(): number | undefined {
    return this.slowest;
  }

  record(ms: number): void {
    this.slowest = Math.max(this.slowest ?? 0, ms);
  }

  boundMs(): number {
    const { startupMs, floorMs, factor } = this.bounds;
    return this.slowest === undefined ? startupMs : Math.max(floorMs, factor * this.slowest);
  }
}

/**
 * Watches one chunk's inference: `progress()` at each batch's end measures it and re-arms
 * the timer with the bound as it now stands; `stalled` resolves once when the timer runs
 * out. The timer keeps the process up: it is what must end a worker whose only other
 * activity is a wedged inference.
 */
export class ProgressWatch {
  readonly stalled: Promise<Stall>;
  private fire!: (s: Stall) => void;
  private timer: NodeJS.Timeout | undefined;
  private last = performance.now();
  private stopped = false;
  fired = false;

  constructor(
    private readonly times: BatchTimes,
    readonly chunkId: string,
  ) {
    this.stalled = new Promise((resolve) => {
      this.fire = resolve;
    });
    this.arm();
  }

  progress(): void {
    if (this.stopped) return;
    const now = performance.now();
    this.times.record(now - this.last);
    this.last = now;
    this.arm();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private arm(): void {
    clearTimeout(this.timer);
    const boundMs = this.times.boundMs();
    // Past setTimeout's range (an Infinity bound turns the watchdog off) Node would fire at
    // once instead of never.
    if (!(boundMs <= MAX_TIMER_MS)) return;
    const check = (): void => {
      const stalledMs = performance.now() - this.last;
      // Timers keep whole milliseconds and may fire a fraction early.
      if (stalledMs < boundMs) {
        this.timer = setTimeout(check, Math.ceil(boundMs - stalledMs));
        return;
      }
      this.stopped = true;
      this.fired = true;
      this.fire({ chunkId: this.chunkId, stalledMs, boundMs });
    };
    this.timer = setTimeout(check, boundMs);
  }
}
