// The PlanRange step over a real opened job: ranges of its chunk-index space, written by
// planRangeStep into one MemoryLedger and completed, give the same rows, in the same
// order, as planJob's createJob gives another. Both sides come from the same job context;
// the expected side is the existing planner's, not the code under test.

import { afterAll, describe, expect, it } from 'vitest';
import {
  completePlanStep,
  planRangeItems,
  planRangeStep,
  plansInRanges,
  rangePlannerOf,
} from '../../core/cloud/plan-ranges.ts';
import {
  type ChunkRow,
  type Ledger,
  LedgerCannotPlanRangesError,
  MemoryLedger,
} from '../../core/ledger/index.ts';
import { planJob } from '../../core/pipeline/index.ts';
import { openWorkerJob } from '../helpers/worker-job.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

async function rows(l: Ledger, jobId: string): Promise<Omit<ChunkRow, 'updatedAt'>[]> {
  const out: Omit<ChunkRow, 'updatedAt'>[] = [];
  for await (const { updatedAt: _, ...r } of l.list(jobId)) out.push(r);
  return out;
}

describe('planRangeStep', () => {
  it('ranges of 3 chunks plan exactly the rows createJob plans for the job', async () => {
    // [8, 24, 24] in [4, 6, 6] chunks: 2 × 4 × 4 = 32 chunks.
    const { ctx } = await openWorkerJob({ cleanups, chunkShape: [4, 6, 6] });
    const n = ctx.plan.counts.chunks;
    expect(n).toBeGreaterThan(9);
    const whole = new MemoryLedger();
    await planJob(ctx, whole, { leaseMs: 60_000, now: 1 });

    const ranged = new MemoryLedger();
    // The Plan task's part: planJob opens the range plan and writes no row.
    const opened = await planJob(ctx, ranged, { leaseMs: 60_000, now: 1, inRanges: ranged });
    expect(opened).toMatchObject({ created: false, inRanges: true });
    expect(opened.job).toEqual(await whole.getJob(ctx.jobId));
    expect(await ranged.getJob(ctx.jobId)).toBeUndefined();
    // The Map's items run in any order; run them backwards.
    const items = planRangeItems(n, 3).reverse();
    expect(items).toHaveLength(Math.ceil(n / 3));
    for (const r of items) {
      const out = await planRangeStep(
        ranged,
        ctx,
        { step: 'range', jobId: ctx.jobId, from: r.from, rows: 3 },
        { now: 2 },
      );
      expect(out).toEqual({
        jobId: ctx.jobId,
        from: r.from,
        to: Math.min(n, r.from + 3),
        written: out.to - r.from,
        complete: false,
      });
    }
    expect(await completePlanStep(ranged, ctx.jobId)).toEqual({ jobId: ctx.jobId, created: true });
    expect(await rows(ranged, ctx.jobId)).toEqual(await rows(whole, ctx.jobId));
    // The spec is the one the Plan task opened (createdAt 1), not a range's (2).
    expect(await ranged.getJob(ctx.jobId)).toEqual(await whole.getJob(ctx.jobId));
    expect(plansInRanges(n, 3)).toBe(true);
    expect(plansInRanges(n)).toBe(false);
  });

  it('a range past the end of the job is clamped to it', async () => {
    const { ctx } = await openWorkerJob({ cleanups, chunkShape: [4, 6, 6] });
    const n = ctx.plan.counts.chunks;
    const l = new MemoryLedger();
    const out = await planRangeStep(l, ctx, {
      step: 'range',
      jobId: ctx.jobId,
      from: n - 2,
      rows: 250_000,
    });
    expect([out.from, out.to, out.written]).toEqual([n - 2, n, 2]);
  });

  it('a ledger without range planning is refused by name', () => {
    const plain = { createJob: () => undefined } as unknown as Ledger;
    expect(() => rangePlannerOf(plain, 'j')).toThrow(LedgerCannotPlanRangesError);
    const l = new MemoryLedger();
    expect(rangePlannerOf(l, 'j')).toBe(l);
  });
});
