// Seeded randomness for the fault matrix: every schedule (which worker dies, when, at
// which point, which request fails) comes from one of these, so a run is replayed by
// passing its --seed again. Each scenario and trial forks its own stream by label, so
// adding a scenario does not shift the schedules of the others.

import { createHash } from 'node:crypto';
import { mulberry32 } from '../test/fixtures/models.ts';

export class Rng {
  private readonly next: () => number;

  constructor(readonly seed: number) {
    this.next = mulberry32(seed);
  }

  /** An independent stream for `label` (a scenario name, a trial number). */
  static for(seed: number, ...label: (string | number)[]): Rng {
    const digest = createHash('sha256')
      .update(`${seed}/${label.join('/')}`)
      .digest();
    return new Rng(digest.readUInt32LE(0));
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next();
  }

  /** Uniform integer in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick from an empty list');
    return items[Math.floor(this.next() * items.length)]!;
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.next() * (i + 1));
      [out[i], out[j]] = [out[j]!, out[i]!];
    }
    return out;
  }
}
