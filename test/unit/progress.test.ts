// The progress line's ETA (cli/progress.ts) on a fake clock: hidden until a rate exists,
// then the remaining chunks over a smoothed rate. The old display divided by the fraction
// done since its first update, which is 0 at the first completion: an ETA of hundreds of
// thousands of hours on the first tick.

import { describe, expect, it } from 'vitest';
import { ETA_AFTER_MS, Progress } from '../../cli/progress.ts';

function display() {
  let t = 1_000_000;
  const lines: string[] = [];
  const progress = new Progress(
    {
      write: (s: string) => {
        lines.push(s);
        return true;
      },
    },
    'job',
    { now: () => t },
  );
  const at = (ms: number, done: number, total = 100): string => {
    t = 1_000_000 + ms;
    progress.update({ done, total, failed: 0, voxels: done * 1000 }, true);
    return lines.at(-1)!;
  };
  return { progress, at };
}

const eta = (line: string): string => /ETA (\S+)/.exec(line)![1]!;

describe('the progress ETA', () => {
  it('is hidden on the first tick, which already counts a finished chunk', () => {
    const { at } = display();
    // The first update arrives with the first completion, 5 ms after the start.
    expect(eta(at(5, 1))).toBe('--');
    expect(eta(at(50, 2))).toBe('--');
  });

  it('is hidden while no chunk finished since the display started, however long it waits', () => {
    const { at } = display();
    at(0, 40); // a resumed run: 40 chunks were done before
    expect(eta(at(60_000, 40))).toBe('--');
  });

  it(`appears once a chunk finished at least ${ETA_AFTER_MS} ms after the start: remaining chunks / rate`, () => {
    const { at, progress } = display();
    at(0, 0);
    // 20 chunks in 10 s: 2 chunks/s; 80 left → 40 s.
    const line = at(10_000, 20);
    expect(progress.etaSeconds({ done: 20, total: 100, failed: 0, voxels: 0 })).toBeCloseTo(40, 6);
    expect(eta(line)).toBe('40s');
    expect(line).toContain('2.0 kvox/s'); // 2 chunks/s of 1000 voxels
    // 10 chunks done again, 1 s after the start: no rate yet.
    const early = display();
    early.at(0, 0);
    expect(eta(early.at(1000, 10))).toBe('--');
  });

  it('measures from the first update, not counting chunks finished before it', () => {
    const { at, progress } = display();
    at(0, 50);
    at(20_000, 60); // 10 chunks in 20 s: 0.5/s, 40 left → 80 s (not 50 done / 20 s)
    expect(progress.etaSeconds({ done: 60, total: 100, failed: 0, voxels: 0 })).toBeCloseTo(80, 6);
  });

  it('is smoothed: one slow chunk moves it a little, a steady new rate takes over', () => {
    const { at, progress } = display();
    const left = (done: number) =>
      progress.etaSeconds({ done, total: 1000, failed: 0, voxels: 0 })!;
    at(0, 0, 1000);
    let t = 0;
    let done = 0;
    const chunk = (ms: number): void => {
      t += ms;
      done += 1;
      at(t, done, 1000);
    };
    while (done < 100) chunk(1000); // 1 chunk/s
    expect(left(done)).toBeCloseTo(900, 0);
    chunk(10_000); // one chunk that took 10 s
    const afterSlow = left(done);
    expect(afterSlow).toBeGreaterThan(899);
    // The instantaneous rate would say 899 chunks at 0.1/s = 8990 s; smoothed, far less.
    expect(afterSlow).toBeLessThan(3000);
    // Then 2 chunks/s for 5 minutes: the ETA follows the new rate.
    for (let i = 0; i < 600; i++) chunk(500);
    expect(left(done)).toBeCloseTo((1000 - done) / 2, -1);
  });

  it('is hidden once nothing is left', () => {
    const { at } = display();
    at(0, 0, 10);
    expect(eta(at(10_000, 10, 10))).toBe('--');
  });
});
