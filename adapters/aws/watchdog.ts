// The stall watchdog's step (scheduled). Filled in below the contract: for now it reports
// no stalled jobs, so the handler bundles while its logic is written.

export interface WatchdogResult {
  /** Jobs with unfinished chunks and no chunk finished within the stall threshold. */
  stalled: number;
  checked: number;
}

export async function watchdogStep(_deps: unknown, _o: { now: Date }): Promise<WatchdogResult> {
  return { stalled: 0, checked: 0 };
}
