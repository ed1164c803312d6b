// `tessera status --cloud` as a user runs it (the CLI in a child process) against the
// DynamoDB ledger on DynamoDB Local (or AWS_ENDPOINT_URL): counts, poison chunks with
// their errors, live leases, and spend priced by default for a cloud job.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import type { JobStatus } from '../../cli/job-status.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const run = promisify(execFile);

let db: DynamoUnderTest;
let table: string;
const jobId = `cells-${Date.now().toString(36)}`;

beforeAll(async () => {
  db = await startDynamo();
  table = await db.createTable();
  const ledger = new DynamoLedger({ client: db.client, table });
  await ledger.createJob(
    {
      jobId,
      chunkCount: 6,
      maxAttempts: 1,
      leaseMs: 120_000,
      createdAt: Date.now(),
      attributes: { name: 'cells' },
    },
    Array.from({ length: 6 }, (_, i) => ({ chunkId: `0_0_${i}`, index: i })),
  );
  for (let k = 0; k < 2; k++) await ledger.complete((await ledger.claim(jobId, `w${k}`))!);
  // maxAttempts 1: one failure makes the chunk poison.
  const bad = (await ledger.claim(jobId, 'w-gpu-7'))!;
  await ledger.fail(bad, 'CUDA error: out of memory');
  await ledger.claim(jobId, 'w0');
});
afterAll(async () => {
  await db?.stop();
});

async function status(
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  // Only the emulator's endpoint and fake credentials: no bucket, no table in the environment.
  const env = { ...process.env, ...db.childEnv };
  delete env.TESSERA_BUCKET;
  delete env.TESSERA_TABLE;
  try {
    const r = await run(process.execPath, [BIN, 'status', ...args], { env });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe('tessera status --cloud', () => {
  it('reports counts, the poison chunk with its error, live leases and an estimated spend', async () => {
    const r = await status(jobId, '--cloud', '--table', table, '--json');
    expect(r.code, r.stderr).toBe(0);
    const s = JSON.parse(r.stdout) as JobStatus;
    expect(s).toMatchObject({ jobId, name: 'cells', ledger: 'dynamodb', state: 'FAILED' });
    expect(s.chunks).toEqual({ PENDING: 2, RUNNING: 1, DONE: 2, FAILED: 1, SKIPPED: 0, total: 6 });
    expect(s.poison).toEqual([
      expect.objectContaining({
        owner: 'w-gpu-7',
        attempts: 1,
        lastError: 'CUDA error: out of memory',
      }),
    ]);
    expect(s.running).toEqual([expect.objectContaining({ owner: 'w0', stale: false })]);
    expect(s.workers.active).toBe(1);
    // No manifest to read the device from: a GPU worker at the on-demand price.
    expect(s.spend.pricePerHour).toBe(0.526);
    expect(s.spend.basis).toMatch(/^estimate/);
  });

  it('prints a readable report, and names the table when the job is not there', async () => {
    const r = await status(jobId, '--table', table);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/state\s+FAILED/);
    expect(r.stdout).toMatch(/POISON .* CUDA error: out of memory/);
    const missing = await status('no-such-job', '--table', table);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`job no-such-job is not in table ${table}`);
  });
});
