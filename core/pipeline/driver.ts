// The work-round loop over ports, for a driver that waits on its own workers (the local
// run). The cloud's driver is the state machine: its Work task is the fleet, its Verify
// Lambda calls verifyRound, and its Choice reads the same verdict.
//
//   verifyRound ──redrive──► fleet.runRound(r, workers) ──► verifyRound ──► … ──► verdict

import type { Ledger } from '../ledger/index.ts';
import { type RoundVerdict, type VerifyRoundOptions, verifyRound } from './steps.ts';

/** Workers for one round: start them, wait for every one to exit. */
export interface Fleet {
  /** Starts `workers` workers for round `round` (1-based) and resolves once all have exited. */
  runRound(round: number, workers: number): Promise<void>;
  /** The run as a whole is stopping (interrupted, a fault of the environment, a worker that cannot start). */
  stopped(): boolean;
}

/** Milliseconds on some monotonic clock (performance.now by default). */
export interface Clock {
  now(): number;
}

const monotonic: Clock = { now: () => performance.now() };

/** Seconds per step, added to `timings` (a step run twice counts twice). */
export async function timed<T>(
  timings: Record<string, number>,
  name: string,
  f: () => Promise<T>,
  clock: Clock = monotonic,
): Promise<T> {
  const t0 = clock.now();
  try {
    return await f();
  } finally {
    timings[name] = Math.round(clock.now() - t0) / 1000 + (timings[name] ?? 0);
  }
}

export interface WorkRoundsOptions extends Omit<VerifyRoundOptions, 'roundsDone'> {
  /** Seconds per step: `work` and `verify` are added as the rounds run. */
  timings: Record<string, number>;
  clock?: Clock;
}

/**
 * Verify, then work rounds while the verdict says so and the fleet has not stopped.
 * Returns the last verdict (the caller blends on COMPLETE, reports otherwise).
 */
export async function runWorkRounds(
  ledger: Ledger,
  jobId: string,
  fleet: Fleet,
  o: WorkRoundsOptions,
): Promise<RoundVerdict> {
  const { timings, clock, ...verify } = o;
  let verdict = await verifyRound(ledger, jobId, { ...verify, roundsDone: 0 });
  for (let round = 1; verdict.redrive && !fleet.stopped(); round++) {
    const workers = verdict.workers;
    await timed(timings, 'work', () => fleet.runRound(round, workers), clock);
    verdict = await timed(
      timings,
      'verify',
      () => verifyRound(ledger, jobId, { ...verify, roundsDone: round }),
      clock,
    );
  }
  return verdict;
}
