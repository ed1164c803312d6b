// The contract of the port's RangePlanner (createJob split over index ranges), for every
// adapter that has it: memory, local journal, DynamoDB. Expected rows are written out
// from the chunk lists the tests hand in, never read back from the adapter.

import { describe, expect, it } from 'vitest';
import {
  InvalidJobError,
  JobNotFoundError,
  PlanIncompleteError,
} from '../../core/ledger/errors.ts';
import type { ChunkRef, ChunkRow, JobSpec, Ledger, RangePlanner } from '../../core/ledger/port.ts';

export type MakeRangeLedger = () => Promise<{
  ledger: Ledger & RangePlanner;
  close?: () => Promise<void>;
}>;

const T0 = 1_700_000_000_000;

const spec = (jobId: string, chunkCount: number, over: Partial<JobSpec> = {}): JobSpec => ({
  jobId,
  chunkCount,
  maxAttempts: 3,
  leaseMs: 10_000,
  createdAt: T0,
  ...over,
});

function* range(from: number, to: number): Generator<ChunkRef> {
  for (let i = from; i < to; i++) yield { chunkId: `c${i}`, index: i };
}

async function rows(ledger: Ledger, jobId: string): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const r of ledger.list(jobId)) out.push(r);
  return out;
}

async function refusal<E>(p: Promise<unknown>, type: new (...a: never[]) => E): Promise<E> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(type);
  return err as E;
}

export function rangePlanContract(name: string, make: MakeRangeLedger): void {
  const withLedger = async (f: (l: Ledger & RangePlanner) => Promise<void>): Promise<void> => {
    const { ledger, close } = await make();
    try {
      await f(ledger);
    } finally {
      await close?.();
    }
  };

  describe(`RangePlanner contract: ${name}`, () => {
    it('ranges in any order, overlapping and repeated, make exactly the rows createJob would', () =>
      withLedger(async (l) => {
        const n = 10;
        // Out of order, 3..7 overlapping both neighbours, 0..4 run twice.
        for (const [from, to] of [
          [6, 10],
          [0, 4],
          [3, 7],
          [0, 4],
        ] as const) {
          const r = await l.planRange(spec('j', n), { from, to }, range(from, to));
          expect(r).toEqual({ written: to - from, complete: false });
        }
        expect(await l.completePlan('j')).toEqual({ created: true, job: spec('j', n) });
        const all = await rows(l, 'j');
        expect(all.map((r) => [r.index, r.chunkId, r.status, r.attempts, r.token])).toEqual(
          Array.from({ length: n }, (_, i) => [i, `c${i}`, 'PENDING', 0, 0]),
        );
        expect((await l.counts('j')).PENDING).toBe(n);
        expect(await l.completePlan('j')).toEqual({ created: false, job: spec('j', n) });
      }));

    it('a job is invisible until completePlan; a gap is refused, named, and can be filled', () =>
      withLedger(async (l) => {
        await l.planRange(spec('g', 12), { from: 0, to: 3 }, range(0, 3));
        await l.planRange(spec('g', 12), { from: 5, to: 9 }, range(5, 9));
        expect(await l.getJob('g')).toBeUndefined();
        await refusal(l.claim('g', 'w'), JobNotFoundError);
        const gap = await refusal(l.completePlan('g'), PlanIncompleteError);
        expect(gap.missing).toEqual([
          { from: 3, to: 5 },
          { from: 9, to: 12 },
        ]);
        expect(gap.count).toBe(5);
        expect(await l.getJob('g')).toBeUndefined();
        await l.planRange(spec('g', 12), { from: 3, to: 5 }, range(3, 5));
        await l.planRange(spec('g', 12), { from: 9, to: 12 }, range(9, 12));
        expect((await l.completePlan('g')).created).toBe(true);
        expect((await rows(l, 'g')).map((r) => r.chunkId)).toEqual(
          Array.from({ length: 12 }, (_, i) => `c${i}`),
        );
      }));

    it('later ranges adopt the first range’s spec; a planned job takes no more rows', () =>
      withLedger(async (l) => {
        await l.planRange(spec('s', 4), { from: 0, to: 2 }, range(0, 2));
        await l.planRange(
          spec('s', 4, { createdAt: T0 + 5, maxAttempts: 9 }),
          { from: 2, to: 4 },
          range(2, 4),
        );
        expect((await l.completePlan('s')).job).toEqual(spec('s', 4));
        expect(await l.getJob('s')).toEqual(spec('s', 4));
        const late = await l.planRange(spec('s', 4), { from: 0, to: 2 }, [
          { chunkId: 'other0', index: 0 },
          { chunkId: 'other1', index: 1 },
        ]);
        expect(late).toEqual({ written: 0, complete: true });
        expect((await rows(l, 's')).map((r) => r.chunkId)).toEqual(['c0', 'c1', 'c2', 'c3']);
      }));

    it('refuses ranges and chunk lists that do not match, naming the field', () =>
      withLedger(async (l) => {
        const bad: [string, number, number, ChunkRef[], string][] = [
          ['past the end', 2, 7, [...range(2, 7)], 'range'],
          ['backwards', 3, 1, [], 'range'],
          [
            'index outside the range',
            0,
            2,
            [...range(0, 1), { chunkId: 'x', index: 2 }],
            'chunks[1].index',
          ],
          ['too few', 0, 3, [...range(0, 2)], 'chunks'],
          [
            'repeated index',
            0,
            2,
            [
              { chunkId: 'a', index: 0 },
              { chunkId: 'b', index: 0 },
            ],
            'chunks[1].index',
          ],
          [
            'repeated id',
            0,
            2,
            [
              { chunkId: 'a', index: 0 },
              { chunkId: 'a', index: 1 },
            ],
            'chunks[1].chunkId',
          ],
        ];
        for (const [what, from, to, chunks, field] of bad) {
          const e = await refusal(l.planRange(spec('r', 6), { from, to }, chunks), InvalidJobError);
          expect(e.field, what).toBe(field);
        }
        await l.planRange(spec('r', 6), { from: 0, to: 3 }, range(0, 3));
        const count = await refusal(
          l.planRange(spec('r', 7), { from: 3, to: 7 }, range(3, 7)),
          InvalidJobError,
        );
        expect(count.field).toBe('chunkCount');
        await refusal(l.completePlan('never-planned'), JobNotFoundError);
      }));

    it('every chunk of a range-planned job is claimed exactly once', () =>
      withLedger(async (l) => {
        const n = 30;
        for (let from = 0; from < n; from += 7) {
          const to = Math.min(n, from + 7);
          await l.planRange(spec('c', n), { from, to }, range(from, to));
        }
        await l.completePlan('c');
        const claimed: number[] = [];
        for (
          let c = await l.claim('c', 'w', { now: T0 });
          c;
          c = await l.claim('c', 'w', { now: T0 })
        ) {
          claimed.push(c.index);
          await l.complete(c);
        }
        expect(claimed.sort((a, b) => a - b)).toEqual(Array.from({ length: n }, (_, i) => i));
        expect((await l.counts('c')).DONE).toBe(n);
      }));

    it('an empty job is planned by one empty range', () =>
      withLedger(async (l) => {
        await l.planRange(spec('e', 0), { from: 0, to: 0 }, []);
        expect(await l.completePlan('e')).toEqual({ created: true, job: spec('e', 0) });
        expect(await rows(l, 'e')).toEqual([]);
      }));
  });
}
