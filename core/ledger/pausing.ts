// A ledger that waits out a full or failing disk instead of failing its callers.
//
// LocalLedger refuses a transition it cannot journal (LedgerWriteError) and applies
// nothing, so the very same call can be made again later. This wrapper does that: it
// pauses the call, says once which directory and why, and retries with growing waits
// for up to `pauseMs`. Past that it gives up: the call throws the last LedgerWriteError
// and so does every later write, at once, so the run stops cleanly and no worker's
// report of that error can reach the ledger as a chunk's failure (which would spend an
// attempt). Reads pass straight through.

import { LedgerWriteError } from './errors.ts';
import type {
  ChunkRef,
  ChunkRow,
  ChunkStatus,
  Claim,
  JobSpec,
  Ledger,
  RearmSelection,
  StatusCounts,
} from './port.ts';

export interface PausingOptions {
  /** Longest total wait for one call before giving up (default 30 s). */
  pauseMs?: number;
  /** First wait; each next one doubles, up to 5 s (default 250 ms). */
  firstWaitMs?: number;
  /** Called when writes start failing, with the error; once per pause. */
  onPause?: (error: LedgerWriteError) => void;
  /** Called when a write succeeds again after a pause. */
  onResume?: () => void;
}

export class PausingLedger implements Ledger {
  private paused = false;
  /** Set once a call gave up: the run is stopping and every write fails fast. */
  private gaveUp: LedgerWriteError | undefined;

  constructor(
    private readonly inner: Ledger,
    private readonly o: PausingOptions = {},
  ) {}

  /** The error that made this ledger give up, if it did. */
  get failure(): LedgerWriteError | undefined {
    return this.gaveUp;
  }

  /**
   * Runs `write` (a call that journals a transition) with the pause-and-retry rule.
   * `evenStopping` lets it be tried once more after giving up: a release hands a chunk
   * back unspent, which is what a clean stop wants if the disk has room again.
   */
  async write<T>(write: () => Promise<T>, o: { evenStopping?: boolean } = {}): Promise<T> {
    const pauseMs = this.o.pauseMs ?? 30_000;
    let waited = 0;
    let wait = this.o.firstWaitMs ?? 250;
    for (;;) {
      if (this.gaveUp && !o.evenStopping) throw this.gaveUp;
      try {
        const value = await write();
        if (this.paused) {
          this.paused = false;
          this.o.onResume?.();
        }
        return value;
      } catch (error) {
        if (!(error instanceof LedgerWriteError)) throw error;
        if (!this.paused) {
          this.paused = true;
          this.o.onPause?.(error);
        }
        if (waited >= pauseMs || this.gaveUp) {
          this.gaveUp ??= error;
          throw this.gaveUp;
        }
        const step = Math.min(wait, pauseMs - waited);
        await new Promise((r) => setTimeout(r, step));
        waited += step;
        wait = Math.min(wait * 2, 5000);
      }
    }
  }

  createJob(job: JobSpec, chunks: Iterable<ChunkRef>): Promise<{ created: boolean; job: JobSpec }> {
    // Materialised once: a retry must not find a generator already spent.
    const list = Array.from(chunks);
    return this.write(() => this.inner.createJob(job, list));
  }
  getJob(jobId: string): Promise<JobSpec | undefined> {
    return this.inner.getJob(jobId);
  }
  claim(
    jobId: string,
    owner: string,
    o?: { startIndex?: number; now?: number },
  ): Promise<Claim | undefined> {
    return this.write(() => this.inner.claim(jobId, owner, o));
  }
  heartbeat(claim: Claim, o?: { now?: number }): Promise<Claim> {
    return this.write(() => this.inner.heartbeat(claim, o));
  }
  complete(claim: Claim, o?: { skipped?: boolean }): Promise<void> {
    return this.write(() => this.inner.complete(claim, o));
  }
  release(claim: Claim): Promise<void> {
    return this.write(() => this.inner.release(claim), { evenStopping: true });
  }
  fail(claim: Claim, error: string): Promise<ChunkRow> {
    return this.write(() => this.inner.fail(claim, error));
  }
  counts(jobId: string): Promise<StatusCounts> {
    return this.inner.counts(jobId);
  }
  list(jobId: string, status?: ChunkStatus): AsyncIterable<ChunkRow> {
    return this.inner.list(jobId, status);
  }
  statuses(jobId: string, chunks: readonly ChunkRef[]): Promise<ChunkStatus[]> {
    return this.inner.statuses(jobId, chunks);
  }
  sweep(jobId: string, o?: { now?: number }): Promise<{ expired: number; failed: number }> {
    return this.write(() => this.inner.sweep(jobId, o));
  }
  claimOutput(url: string, jobId: string, o?: { replacing?: string }): Promise<void> {
    return this.write(() => this.inner.claimOutput(url, jobId, o));
  }
  rearm(jobId: string, which: RearmSelection): Promise<{ rearmed: number }> {
    return this.write(() => this.inner.rearm(jobId, which));
  }
}
