// When is a running job stalled? The watchdog's decision, apart from every AWS call so it
// can be checked by hand: a job is stalled while it has unfinished chunks and its
// finished count has not moved for the threshold. Before anything finished, the clock
// runs from the execution's start, which covers a fleet that never starts (Spot
// capacity, a vCPU quota, workers stuck RUNNABLE) as well as one that makes no progress.
//
//   start ──── first chunk done ──── ... last move ─────────── now
//   (at = start while none done)        (at = last move)   stalled if now - at ≥ stallMs

/** When the job's finished count last moved (what jobs/<jobId>/progress.json keeps). */
export interface Progress {
  /** Chunks finished (DONE + SKIPPED) at the last observation. */
  finished: number;
  /** Epoch ms when `finished` last changed (or the execution's start, before any did). */
  at: number;
}

export interface JobObservation {
  jobId: string;
  /** Epoch ms the execution started. */
  startedAt: number;
  /** DONE + SKIPPED now. */
  finished: number;
  /** PENDING + RUNNING now. */
  unfinished: number;
  /** The previous observation's progress, if any. */
  last?: Progress;
}

export interface StallVerdict {
  jobId: string;
  /** What progress.json should say now. */
  progress: Progress;
  /** Set when stalled: since when, and for how many whole minutes. */
  stalled?: { since: number; minutes: number };
}

export function stalledJobs(
  jobs: readonly JobObservation[],
  now: number,
  stallMs: number,
): StallVerdict[] {
  return jobs.map((j) => {
    const at =
      j.last !== undefined && j.last.finished === j.finished
        ? // An older execution under the same name cannot make this one stalled.
          Math.max(j.last.at, j.startedAt)
        : j.finished === 0
          ? j.startedAt
          : // It moved since the last look (or this is the first look at a job that has
            // finished chunks): count from now, at most one threshold late.
            now;
    const progress: Progress = { finished: j.finished, at };
    const idle = now - at;
    if (j.unfinished > 0 && idle >= stallMs)
      return {
        jobId: j.jobId,
        progress,
        stalled: { since: at, minutes: Math.floor(idle / 60_000) },
      };
    return { jobId: j.jobId, progress };
  });
}
