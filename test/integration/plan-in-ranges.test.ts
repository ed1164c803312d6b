// The Plan task for a job too large to plan alone, against DynamoDB Local and s3rver:
// past planRangeRows chunks (lowered here from PLAN_RANGE_ROWS, as CloudDeps allows)
// planFromManifest claims the output and writes the description and status but no chunk
// row; a retried Plan changes nothing; `tessera status --cloud` says the job is being
// planned; the PlanRange tasks and CompletePlan then make exactly the plan's chunks
// claimable. Chunk rows are counted by scanning the table itself, not through the ledger.

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ScanCommand } from '@aws-sdk/client-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerS3 } from '../../adapters/aws/clients.ts';
import { withClockOffset } from '../../adapters/aws/clock-offset.ts';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import type { PlanTaskResult } from '../../contracts/cloud.ts';
import {
  type CloudDeps,
  handleManifestCreated,
  type PlanOutcome,
  planFromManifest,
  planRangeTask,
  readStatus,
} from '../../core/cloud/index.ts';
import { Plan, type Vec3 } from '../../core/geometry/index.ts';
import { LedgerCannotPlanRangesError } from '../../core/ledger/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { emulatorChildEnv } from '../helpers/child-env.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume } from '../helpers/job-dir.ts';
import { type S3Emulator, startS3, uniqueBucketName } from '../helpers/s3-emulator.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const run = promisify(execFile);
const SHAPE: Vec3 = [18, 40, 36];
const PATCH: Vec3 = [8, 12, 12];
const OVERLAP: Vec3 = [2, 4, 4];
const CHUNK: Vec3 = [8, 20, 16];
const RANGE_ROWS = 4;

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let bucket: string;

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3(), startDynamo()]);
  bucket = uniqueBucketName('ranges');
  await s3.createBucket(bucket);
  registerS3(s3.client);
  await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/input.zarr' }), {
    data: lcgVolume(SHAPE, 9),
    shape: [...SHAPE],
    chunkShape: [8, 16, 16],
  });
  await new S3Store({ client: s3.client, bucket }).set(
    '/models/tiny.onnx',
    new Uint8Array(readFileSync(join(FIXTURE_MODELS, 'tiny.onnx'))),
  );
}, 120_000);

afterAll(async () => {
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

/** The job's chunks as the geometry enumerates them (not the planner under test). */
const grid = new Plan({
  volumeShape: SHAPE,
  patchShape: PATCH,
  overlap: OVERLAP,
  chunkShape: CHUNK,
});
const chunkIds = [...grid.chunks()].map((c) => c.id);

async function setup(name: string, o: { wrapLedger?: boolean } = {}) {
  const table = await ddb.createTable();
  const plain = new DynamoLedger({ client: ddb.client, table });
  // The fault hook's clock-offset wrapper: a real ledger wrapper without range planning.
  const ledger = o.wrapLedger ? withClockOffset(plain, { TESSERA_CLOCK_OFFSET_MS: '5' }) : plain;
  const deps: CloudDeps = {
    ...cloudDeps(
      {
        table,
        bucket,
        allowedBuckets: [],
        stateMachineArn: undefined,
        maxChunks: undefined,
        maxRounds: 3,
      },
      { s3: s3.client, ledger },
    ),
    planRangeRows: RANGE_ROWS,
  };
  const key = `manifests/${name}.json`;
  await new S3Store({ client: s3.client, bucket }).set(
    `/${key}`,
    new TextEncoder().encode(
      JSON.stringify({
        version: 1,
        name,
        input: { url: `s3://${bucket}/data/input.zarr` },
        output: { url: `s3://${bucket}/outputs/${name}.zarr`, dtype: 'float32' },
        model: { url: `s3://${bucket}/models/tiny.onnx`, patchShape: PATCH, outputChannels: 2 },
        overlap: OVERLAP,
        blend: 'bump',
        chunkShape: CHUNK,
        compute: { device: 'cpu', maxWorkers: 3, spot: true },
      }),
    ),
  );
  /** Items in the table whose sort key starts with `prefix` (C#: chunk rows, on any key). */
  const items = async (prefix: string): Promise<number> => {
    let n = 0;
    let start: Record<string, unknown> | undefined;
    do {
      const page = await ddb.client.send(
        new ScanCommand({
          TableName: table,
          ExclusiveStartKey: start as never,
          ConsistentRead: true,
        }),
      );
      n += (page.Items ?? []).filter((i) => i.sk?.S?.startsWith(prefix)).length;
      start = page.LastEvaluatedKey;
    } while (start);
    return n;
  };
  const chunkRows = () => items('C#');
  const status = async (...args: string[]) => {
    try {
      const r = await run(
        process.execPath,
        [BIN, 'status', ...args, '--cloud', '--table', table, '--bucket', bucket],
        { env: emulatorChildEnv(s3, ddb) },
      );
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (e) {
      const err = e as { code: number; stdout: string; stderr: string };
      return { code: err.code, stdout: err.stdout, stderr: err.stderr };
    }
  };
  return { deps, plain, items, chunkRows, status, loc: { bucket, key } };
}

function planned(o: PlanOutcome): PlanTaskResult {
  if (o.kind !== 'planned') throw o.error;
  return o.result;
}

describe('the Plan task past planRangeRows chunks', () => {
  it('writes no chunk row, is idempotent when retried, reads as being planned, and the ranges then make every chunk claimable', async () => {
    const n = chunkIds.length;
    const ranges = Math.ceil(n / RANGE_ROWS);
    expect(ranges).toBeGreaterThan(2);
    const { deps, plain, chunkRows, status, loc } = await setup('ranged');

    const first = planned(await planFromManifest(deps, loc));
    expect(first).toMatchObject({ chunks: n, rangeRows: RANGE_ROWS });
    const { jobId } = first;
    expect(await chunkRows()).toBe(0);
    expect(await plain.getJob(jobId)).toBeUndefined();
    expect((await readStatus(deps, jobId))?.plannedInRanges).toEqual({
      chunks: n,
      ranges,
      rows: RANGE_ROWS,
    });

    // A Plan retried after it opened the range plan: same result, still no row.
    expect(planned(await planFromManifest(deps, loc))).toEqual(first);
    expect(await chunkRows()).toBe(0);

    const text = await status(jobId);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`job ${jobId} is being planned: its ${n} chunk rows`);
    expect(text.stdout).toContain(`${ranges} ranges of up to ${RANGE_ROWS} rows`);
    expect(text.stdout + text.stderr).not.toMatch(/is not in table/);
    const json = await status(jobId, '--json');
    expect(JSON.parse(json.stdout)).toMatchObject({ jobId, state: 'PLANNING' });

    // The PlanRanges Map: one task per range start, in any order, one of them twice.
    const starts = Array.from({ length: ranges }, (_, i) => i * RANGE_ROWS).reverse();
    for (const from of [...starts, starts[0]!])
      await planRangeTask(deps, { step: 'range', jobId, from, rows: RANGE_ROWS });
    // A Plan re-run between the ranges and CompletePlan writes nothing either.
    expect(planned(await planFromManifest(deps, loc))).toEqual(first);
    expect(await plain.getJob(jobId)).toBeUndefined();
    expect(await planRangeTask(deps, { step: 'complete', jobId })).toEqual({
      jobId,
      created: true,
    });

    expect(await chunkRows()).toBe(n);
    expect((await plain.counts(jobId)).PENDING).toBe(n);
    const listed: string[] = [];
    for await (const r of plain.list(jobId)) listed.push(r.chunkId);
    expect(listed.sort()).toEqual([...chunkIds].sort());
    const after = await status(jobId, '--json');
    expect(after.code, after.stderr).toBe(0);
    expect(JSON.parse(after.stdout).chunks).toMatchObject({ PENDING: n, total: n });
  }, 120_000);

  it('without a state machine (the trigger plans inline) every row is written by the Plan itself', async () => {
    const { deps, plain, chunkRows, loc } = await setup('inline');
    expect(deps.startExecution).toBeUndefined();
    const [outcome] = await handleManifestCreated(deps, [loc]);
    const result = planned(outcome as PlanOutcome);
    expect(result).toMatchObject({ chunks: chunkIds.length, rangeRows: 0 });
    expect(await chunkRows()).toBe(chunkIds.length);
    expect((await plain.counts(result.jobId)).PENDING).toBe(chunkIds.length);
  });

  it('a ledger that cannot plan in ranges is refused before the output is claimed or a row written', async () => {
    const { deps, items, loc } = await setup('unranged', { wrapLedger: true });
    await expect(planFromManifest(deps, loc)).rejects.toBeInstanceOf(LedgerCannotPlanRangesError);
    // Nothing in the ledger at all: no output claim (OUT), no job row, no chunk row.
    expect(await items('')).toBe(0);
  });
});
