// A large plan's ledger rows written into DynamoDB Local by the code the PlanRange
// Lambdas run (core/cloud/plan-ranges.ts planRangeStep over DynamoLedger.planRange),
// the ranges in parallel as the PlanRanges Map runs them, then completePlan. Reports the
// time, rows/s, and the write rate each partition key sees (rows/s ÷ P) against DynamoDB's
// 1,000 WCU/s per key; and, for contrast, what the one-key layout would put on its key.

import { DynamoLedger, partitionsFor, shardsFor } from '../adapters/aws/dynamo-ledger.ts';
import { PLAN_RANGE_ROWS, PLAN_RANGES_IN_FLIGHT } from '../contracts/cloud.ts';
import { planRangeItems, planRangeStep } from '../core/cloud/plan-ranges.ts';
import { Plan } from '../core/geometry/index.ts';
import type { JobContext } from '../core/pipeline/index.ts';
import { startDynamo } from '../test/helpers/dynamo-emulator.ts';

/** DynamoDB's write limit on one partition key (WCU/s; a row of < 1 KB is 1 WCU). */
const KEY_WCU = 1000;

export async function planLedgerBench(o: {
  /** Chunks along z of a 100 × 100-chunk slab: rows = 10^4 × zChunks. */
  zChunks: number;
  log: (s: string) => void;
}): Promise<Record<string, unknown>> {
  // Chunk ids as a real plan makes them (z_y_x of the chunk grid), never a list in memory.
  const plan = new Plan({
    volumeShape: [o.zChunks * 96, 100 * 96, 100 * 96],
    patchShape: [64, 64, 64],
    overlap: [32, 32, 32],
    chunkShape: [128, 128, 128],
  });
  const rows = plan.counts.chunks;
  // Only what planRangeStep reads of a job context.
  const ctx = {
    jobId: 'bench-plan',
    plan,
    manifest: { maxAttempts: 3, name: 'bench-plan', output: { url: 'file:///bench' } },
  } as unknown as JobContext;
  const ddb = await startDynamo();
  try {
    const table = await ddb.createTable();
    const ranges = planRangeItems(rows, Math.min(PLAN_RANGE_ROWS, Math.ceil(rows / 4)));
    const partitions = partitionsFor(rows);
    o.log(`plan-ledger: ${rows} rows, ${ranges.length} ranges, ${partitions} partition keys`);
    const t0 = performance.now();
    // Each range its own ledger and client, as each Map item is its own Lambda.
    let next = 0;
    const lane = async (): Promise<void> => {
      for (let r = ranges[next++]; r !== undefined; r = ranges[next++]) {
        const ledger = new DynamoLedger({ client: ddb.newClient(), table });
        const e = { step: 'range' as const, jobId: ctx.jobId, from: r.from, rows: r.to - r.from };
        const out = await planRangeStep(ledger, ctx, e, { now: 0 });
        o.log(
          `plan-ledger: range ${r.from}..${r.to - 1}: ${out.written} rows at ${Math.round((performance.now() - t0) / 1000)} s`,
        );
      }
    };
    await Promise.all(Array.from({ length: Math.min(PLAN_RANGES_IN_FLIGHT, ranges.length) }, lane));
    const ledger = new DynamoLedger({ client: ddb.client, table });
    const { created } = await ledger.completePlan(ctx.jobId);
    const seconds = (performance.now() - t0) / 1000;
    const counts = await ledger.counts(ctx.jobId);
    if (!created || counts.PENDING !== rows) {
      throw new Error(
        `plan-ledger: completePlan created=${created}, PENDING ${counts.PENDING} of ${rows}`,
      );
    }
    const rowsPerSecond = rows / seconds;
    return {
      rows,
      ranges: ranges.length,
      rangesInFlight: Math.min(PLAN_RANGES_IN_FLIGHT, ranges.length),
      partitions,
      shards: shardsFor(rows),
      seconds: round(seconds),
      rowsPerSecond: Math.round(rowsPerSecond),
      perKeyWritesPerSecond: Math.round(rowsPerSecond / partitions),
      perKeyShareOfLimit: round(rowsPerSecond / partitions / KEY_WCU),
      oneKeyShareOfLimit: round(rowsPerSecond / KEY_WCU),
    };
  } finally {
    await ddb.stop();
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
