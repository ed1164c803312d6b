// Ledger figures against DynamoDB Local: batched createJob writes, and claim throughput
// and conflicts with concurrent claimers (each with its own client, like separate
// workers), on the sharded GSI and, for contrast, on a single shard.

import { DynamoLedger } from '../adapters/aws/dynamo-ledger.ts';
import { startDynamo } from '../test/helpers/dynamo-emulator.ts';

export async function ledgerBench(o: {
  rows: number;
  claimers: number;
  claimChunks: number;
  log: (s: string) => void;
}): Promise<Record<string, unknown>> {
  const ddb = await startDynamo();
  try {
    const table = await ddb.createTable();
    // 1. Batched writes: createJob of `rows` chunks (BatchWriteItem in 25s).
    const writer = new DynamoLedger({ client: ddb.client, table });
    const ids = function* (n: number) {
      for (let i = 0; i < n; i++) yield { chunkId: `c${i}`, index: i };
    };
    const t0 = performance.now();
    await writer.createJob(
      {
        jobId: 'bench-writes',
        chunkCount: o.rows,
        maxAttempts: 3,
        leaseMs: 60_000,
        createdAt: Date.now(),
      },
      ids(o.rows),
    );
    const writeSeconds = (performance.now() - t0) / 1000;
    o.log(`ledger: ${o.rows} rows in ${writeSeconds.toFixed(1)} s`);

    // 2. Claims: N concurrent claimers, claim → complete until the job is drained.
    const claimRun = async (jobId: string, shards?: number): Promise<Record<string, number>> => {
      const setup = new DynamoLedger({ client: ddb.client, table, ...(shards ? { shards } : {}) });
      await setup.createJob(
        {
          jobId,
          chunkCount: o.claimChunks,
          maxAttempts: 3,
          leaseMs: 60_000,
          createdAt: Date.now(),
        },
        ids(o.claimChunks),
      );
      const ledgers = Array.from(
        { length: o.claimers },
        () => new DynamoLedger({ client: ddb.newClient(), table }),
      );
      const t1 = performance.now();
      await Promise.all(
        ledgers.map(async (l, w) => {
          for (;;) {
            const c = await l.claim(jobId, `w${w}`, {
              startIndex: Math.floor((w * o.claimChunks) / o.claimers),
            });
            if (!c) return;
            await l.complete(c);
          }
        }),
      );
      const seconds = (performance.now() - t1) / 1000;
      const claims = ledgers.reduce((s, l) => s + l.stats.claims, 0);
      const conflicts = ledgers.reduce((s, l) => s + l.stats.conflicts, 0);
      const done = (await setup.counts(jobId)).DONE;
      return {
        claims,
        conflicts,
        done,
        seconds: round(seconds),
        claimsPerSecond: round(claims / seconds),
        conflictsPerSecond: round(conflicts / seconds),
      };
    };
    const sharded = await claimRun('bench-claims');
    o.log(`ledger: sharded claims ${JSON.stringify(sharded)}`);
    const single = await claimRun('bench-claims-1shard', 1);
    o.log(`ledger: single-shard claims ${JSON.stringify(single)}`);
    return {
      rows: o.rows,
      writeSeconds: round(writeSeconds),
      rowsPerSecond: Math.round(o.rows / writeSeconds),
      claimers: o.claimers,
      claimsSharded: sharded,
      claimsOneShard: single,
    };
  } finally {
    await ddb.stop();
  }
}

function round(v: number): number {
  return Math.round(v * 100) / 100;
}
