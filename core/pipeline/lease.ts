// Keeps a claim's lease alive while its chunk is being worked on. Heartbeats run on a
// timer on the main thread (inference runs on its own thread, so the timer fires on
// time). A heartbeat that finds the lease lost marks it; the worker then drops the chunk
// without writing final state, since another owner holds a newer fencing token.

import { type Claim, LeaseLostError, type Ledger } from '../ledger/index.ts';

export class LeaseKeeper {
  private timer: NodeJS.Timeout | undefined;
  private beating: Promise<void> = Promise.resolve();
  lost = false;
  lostReason: string | undefined;

  constructor(
    private readonly ledger: Ledger,
    public claim: Claim,
    private readonly intervalMs: number,
    private readonly onError: (e: unknown) => void = () => {},
  ) {}

  start(): this {
    this.timer = setInterval(() => {
      this.beating = this.beat();
    }, this.intervalMs);
    this.timer.unref();
    return this;
  }

  private async beat(): Promise<void> {
    if (this.lost) return;
    try {
      this.claim = await this.ledger.heartbeat(this.claim);
    } catch (e) {
      if (e instanceof LeaseLostError) {
        this.lost = true;
        this.lostReason = e.message;
      } else {
        // A failed heartbeat (throttling, network) is not a lost lease: the next one may
        // succeed well before the lease runs out.
        this.onError(e);
      }
    }
  }

  async stop(): Promise<Claim> {
    clearInterval(this.timer);
    await this.beating;
    return this.claim;
  }
}
