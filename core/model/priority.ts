// Scheduling priority per thread. Linux's nice value belongs to a thread, not a process:
// setpriority(PRIO_PROCESS, tid) changes one thread, and a new thread inherits its
// creator's value. On a CPU worker every thread that is not inference (the main thread,
// libuv's file-system pool, V8's garbage-collection helpers) should run in the gaps
// between inference's parallel sections rather than preempt one of its threads, which
// stalls the whole section (onnxruntime waits for its slowest thread).

import { readdirSync } from 'node:fs';
import { getPriority, setPriority } from 'node:os';

/** This process's thread ids (Linux); empty where /proc is not there. */
export function threadIds(): number[] {
  try {
    return readdirSync('/proc/self/task').map(Number).filter(Number.isInteger);
  } catch {
    return [];
  }
}

/**
 * Lowers every thread of this process, except `keep` (the inference threads), `by` nice
 * levels below the calling thread's (at most 19). Where threads cannot be listed, lowers
 * the calling thread. Failing to renice (not permitted in some containers, a thread that
 * just exited) only costs speed.
 */
export function lowerPriority(by: number, keep: ReadonlySet<number> = new Set()): void {
  const niceness = Math.min(19, getPriority(0) + by);
  const ids = threadIds();
  for (const tid of ids.length > 0 ? ids : [0]) {
    if (keep.has(tid)) continue;
    try {
      setPriority(tid, niceness);
    } catch (error) {
      if (!(error instanceof Error)) throw error;
    }
  }
}
