// What one trial of a fault reports, and how trials add up to a row of the table.

export interface Trial {
  /** The row of the table this trial counts towards. */
  row: string;
  /** 'cloud' (emulators + tessera worker processes + cloud steps) or 'local' (tessera run). */
  path: 'cloud' | 'local';
  /** What the job ended as, and what it should have ended as. */
  outcome: string;
  expected: string;
  /** Faults that actually landed in this trial (a kill at its point, an injected error). */
  injected: number;
  /** Chunks not finished, or finished without their output. */
  lost: number;
  /** Chunks whose output differs from the reference. */
  divergent: number;
  /** Chunks claimed (and so inferred, at least in part) more than once. */
  reinferred: number;
  /** Of those, chunks a live owner lost to another claimer (duplicate work while alive). */
  dupLive: number;
  /** Output equal to the reference; undefined where the job must fail (poison, bad model). */
  equal: boolean | undefined;
  /** Scenario checks that failed: any makes the matrix fail. */
  violations: string[];
  /** Figures worth recording (latencies, counts of injected faults by kind). */
  notes: string[];
  seconds: number;
}

export interface Row {
  row: string;
  path: 'cloud' | 'local';
  trials: Trial[];
}

export function passed(t: Trial): boolean {
  return (
    t.violations.length === 0 &&
    t.lost === 0 &&
    t.divergent === 0 &&
    t.outcome === t.expected &&
    t.equal !== false
  );
}

export function emptyTrial(row: string, path: 'cloud' | 'local'): Trial {
  return {
    row,
    path,
    outcome: 'NOT RUN',
    expected: 'SUCCEEDED',
    injected: 0,
    lost: 0,
    divergent: 0,
    reinferred: 0,
    dupLive: 0,
    equal: undefined,
    violations: [],
    notes: [],
    seconds: 0,
  };
}
