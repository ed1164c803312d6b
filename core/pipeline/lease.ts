// Keeps a claim's lease alive while its chunk is being worked on. Heartbeats run on a
// timer on the main thread (inference runs on its own thread, so the timer fires on
// time). A heartbeat that finds the lease lost marks it; the worker then drops the chunk
// without writing final state, since another owner holds a newer fencing token.

import { type Claim, LeaseLostError, type Ledger } from '../ledger/index.ts';

/** What LeaseKeeper.end returns when the lease turned out lost. */
export const LEASE_LOST = Symbol('lease lost');
/**
 * What LeaseKeeper.end returns when an earlier end already recorded the chunk (a hard
 * stop released it while its batch was still running): nothing to do, nothing lost.
 */
export const LEASE_ENDED = Symbol('lease ended');

/** A worker's heartbeat period for a lease of `leaseMs`: three beats per lease. */
export const defaultHeartbeatMs = (leaseMs: number): number =>
  Math.max(50, Math.floor(leaseMs / 3));

export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  lost = false;
  private confirmedAt = 0;
  lostReason: string | undefined;
  /** A heartbeat failed and none has worked since: later failures of the streak go unreported. */
  private failing = false;
  /** end() recorded the chunk: the lease is over, and another end() writes nothing. */
  private ended = false;

  constructor(
    private readonly ledger: Ledger,
    public claim: Claim,
    private readonly intervalMs: number,
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  /** Starts beating; after stop() it may be started again (a completion retried in a pause). */
  start(): this {
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      this.beating = this.beat();
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  private async beat(): Promise<void> {
    if (this.lost) return;
    try {
      await this.renew();
    } catch (e) {
      // A failed heartbeat (throttling, network) is not a lost lease: the next one may
      // succeed well before the lease runs out. Reported once per streak: a worker paused
      // on a full disk would otherwise warn at every beat.
      if (!(e instanceof LeaseLostError) && !this.failing) {
        this.failing = true;
        this.onError(e);
      }
    }
  }

  /** One heartbeat: records the confirmation, or the loss (and rethrows either failure). */
  private async renew(): Promise<void> {
    // Stamped when asked, not when the answer is read: a process paused in between would
    // take a reply from before the pause for a fresh one.
    const askedAt = Date.now();
    try {
      this.claim = await this.ledger.heartbeat(this.claim);
      this.confirmedAt = askedAt;
      this.failing = false;
    } catch (e) {
      if (e instanceof LeaseLostError) {
        this.lost = true;
        this.lostReason = e.message;
      }
      throw e;
    }
  }

  /**
   * Renews the lease now and throws LeaseLostError if it is gone. The worker calls this
   * right before each output write, so a stale owner (a process paused past its lease,
   * then resumed) finds out before writing rather than at its next timed heartbeat: every
   * object is written inside a lease just confirmed, not merely once held.
   */
  async confirm(): Promise<void> {
    await this.beating;
    await this.renew();
  }

  /** confirm() unless the lease was confirmed less than `maxAgeMs` ago (by this clock). */
  async confirmIfOlder(maxAgeMs: number): Promise<void> {
    if (this.lost || Date.now() - this.confirmedAt > maxAgeMs) await this.confirm();
  }

  /**
   * Ends the lease with its last ledger write (complete, release, fail): the heartbeats
   * stop, then `write` runs with the latest claim. LEASE_LOST when the lease is gone,
   * found by a heartbeat (`write` is not run) or by the write itself (its LeaseLostError
   * is not thrown): another owner holds a newer token, and nothing more is recorded.
   * LEASE_ENDED when an earlier end() recorded the chunk already.
   */
  async end<T>(
    write: (claim: Claim) => Promise<T>,
  ): Promise<T | typeof LEASE_LOST | typeof LEASE_ENDED> {
    if (this.ended) return LEASE_ENDED;
    const claim = await this.stop();
    if (this.lost) return LEASE_LOST;
    try {
      const result = await write(claim);
      this.ended = true;
      return result;
    } catch (e) {
      if (e instanceof LeaseLostError) return LEASE_LOST;
      throw e;
    }
  }

  async stop(): Promise<Claim> {
    clearInterval(this.timer);
    await this.beating;
    return this.claim;
  }
}
