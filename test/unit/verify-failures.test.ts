// Verify after a Work round: the next round's fleet (no more workers than chunks left),
// and why Batch workers failed (read through the workFailures port, here an in-memory
// fake) carried into status.json and the failure reason. A Batch that cannot be read,
// or a Cause that is no job description, is recorded and never fails Verify.

import { describe, expect, it } from 'vitest';
import { BatchReadError } from '../../adapters/aws/errors.ts';
import {
  KEYS,
  type VerifyTaskEvent,
  WORKER_FAILURES_KEPT,
  type WorkerFailure,
} from '../../contracts/cloud.ts';
import {
  batchJobRef,
  type CloudDeps,
  keepFailures,
  markFailedStep,
  readStatus,
  summarizeFailures,
  verifyStep,
  type WorkFailures,
  writeStatus,
} from '../../core/cloud/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { nextArraySize } from '../../core/pipeline/steps.ts';
import { MemoryStore } from '../../core/store/index.ts';

const STACK = 'stack-bucket';
const OOM = {
  statusReason: 'Essential container in task exited',
  exitCode: 137,
  reason: 'OutOfMemoryError: Container killed due to memory usage',
};

interface Harness {
  deps: CloudDeps;
  ledger: MemoryLedger;
  /** Ids the fake Batch port was asked about. */
  asked: string[];
  warnings: Record<string, unknown>[];
}

/** A planned job of `chunks` chunks (`done` of them finished) with compute.maxWorkers. */
async function job(
  jobId: string,
  o: {
    chunks: number;
    done?: number;
    poison?: number;
    maxWorkers: number;
    port?: (id: string, limit: number) => Promise<WorkFailures>;
    maxRounds?: number;
  },
): Promise<Harness> {
  const store = new MemoryStore(`s3://${STACK}`);
  const ledger = new MemoryLedger();
  const asked: string[] = [];
  const warnings: Record<string, unknown>[] = [];
  const deps: CloudDeps = {
    bucket: STACK,
    bucketStore: store,
    ledger,
    policy: { stackBucket: STACK, allowedBuckets: [] },
    maxRounds: o.maxRounds ?? 3,
    fetchManifest: async () => {
      throw new Error('Verify reads no manifest object');
    },
    ...(o.port
      ? {
          workFailures: (id: string, p: { limit: number }) => {
            asked.push(id);
            return o.port!(id, p.limit);
          },
        }
      : {}),
    warn: (message, fields) => warnings.push({ message, ...fields }),
    now: () => new Date(0),
  };
  await ledger.createJob(
    { jobId, chunkCount: o.chunks, maxAttempts: 1, leaseMs: 60_000, createdAt: 0 },
    Array.from({ length: o.chunks }, (_, i) => ({ chunkId: `0_0_${i}`, index: i })),
  );
  for (let k = 0; k < (o.done ?? 0); k++) await ledger.complete((await ledger.claim(jobId, 'w'))!);
  for (let k = 0; k < (o.poison ?? 0); k++)
    await ledger.fail((await ledger.claim(jobId, 'w'))!, 'NaN in output');
  const manifest = {
    version: 1,
    name: 'cells',
    input: { url: `s3://${STACK}/raw.zarr` },
    output: { url: `s3://${STACK}/outputs/cells.zarr`, dtype: 'float32', blockShape: [8, 16, 16] },
    model: { url: `s3://${STACK}/models/tiny.onnx`, patchShape: [8, 12, 12], outputChannels: 2 },
    overlap: [2, 4, 4],
    blend: 'bump',
    chunkShape: [8, 16, 16],
    compute: { device: 'gpu', maxWorkers: o.maxWorkers, spot: true },
  };
  await store.set(
    `/${KEYS.jobManifest(jobId)}`,
    new TextEncoder().encode(JSON.stringify({ jobId, manifest })),
  );
  await writeStatus(deps, {
    jobId,
    status: 'PLANNED',
    manifest: { bucket: STACK, key: 'manifests/cells.json' },
  });
  return { deps, ledger, asked, warnings };
}

/** The Work task's catch output: the Batch job description as a JSON string. */
const caught = (jobId: string, extra: Record<string, unknown> = {}): VerifyTaskEvent['batch'] => ({
  Error: 'States.TaskFailed',
  Cause: JSON.stringify({
    JobId: jobId,
    Status: 'FAILED',
    StatusReason: 'Array Child Job failed',
    ...extra,
  }),
});

describe("the next round's fleet", () => {
  it('is max(1, min(maxWorkers, 10,000, unfinished chunks))', async () => {
    // 8 chunks; unfinished = 8 - done.
    const cases: [maxWorkers: number, done: number, expected: number][] = [
      [5, 3, 5], // 5 unfinished, 5 workers allowed
      [2, 3, 2], // 5 unfinished, 2 allowed
      [5, 7, 1], // 1 unfinished
      [5, 5, 3], // 3 leftover chunks: 3 workers, not the whole fleet
      [5, 8, 1], // none left: still a valid array size
    ];
    for (const [maxWorkers, done, expected] of cases) {
      const h = await job(`cells-a${maxWorkers}${done}`, { chunks: 8, done, maxWorkers });
      const r = await verifyStep(h.deps, { jobId: `cells-a${maxWorkers}${done}`, round: 1 });
      expect(r.arraySize, `maxWorkers ${maxWorkers}, ${done} done`).toBe(expected);
      expect(r.remaining).toBe(8 - done);
    }
    // Batch's array limit.
    expect(nextArraySize(50_000, 20_000)).toBe(10_000);
    expect(nextArraySize(50_000, 9_999)).toBe(9_999);
    expect(nextArraySize(1, 0)).toBe(1);
  });
});

describe('Batch worker failures in Verify', () => {
  it('a succeeded Work round asks Batch nothing and records nothing', async () => {
    const h = await job('cells-ok', {
      chunks: 4,
      done: 4,
      maxWorkers: 2,
      port: async () => ({ failed: 0, described: [] }),
    });
    const r = await verifyStep(h.deps, {
      jobId: 'cells-ok',
      round: 1,
      batch: { JobId: 'b-1', Status: 'SUCCEEDED' },
    });
    expect(r.status).toBe('COMPLETE');
    expect(h.asked).toEqual([]);
    const status = await readStatus(h.deps, 'cells-ok');
    expect(status?.status).toBe('RUNNING');
    expect(status?.workerFailures).toBeUndefined();
  });

  it("a failed array job's children go into status.json, and into the reason when the job fails", async () => {
    const h = await job('cells-oom', {
      chunks: 6,
      done: 2,
      maxWorkers: 4,
      maxRounds: 1,
      port: async (id, limit) => {
        expect(limit).toBe(WORKER_FAILURES_KEPT);
        return {
          failed: 2,
          described: [
            { batchJobId: `${id}:0`, index: 0, ...OOM, logStream: 'worker/default/abc' },
            { batchJobId: `${id}:2`, index: 2, ...OOM, logStream: 'worker/default/def' },
          ],
        };
      },
    });
    const r = await verifyStep(h.deps, { jobId: 'cells-oom', round: 1, batch: caught('arr-1') });
    expect(h.asked).toEqual(['arr-1']);
    expect(r).toMatchObject({ status: 'INCOMPLETE', redrive: false, remaining: 4, arraySize: 4 });
    expect(r.reason).toBe(
      '4 chunk(s) still unfinished after 1 work rounds; Batch: 2 worker(s) failed: ' +
        'OutOfMemoryError: Container killed due to memory usage (exit 137, log worker/default/def)',
    );
    const status = await readStatus(h.deps, 'cells-oom');
    expect(status?.workerFailures).toEqual([
      { round: 1, batchJobId: 'arr-1:0', index: 0, ...OOM, logStream: 'worker/default/abc' },
      { round: 1, batchJobId: 'arr-1:2', index: 2, ...OOM, logStream: 'worker/default/def' },
    ]);
    // MarkFailed, the next state, keeps them beside its reason.
    await markFailedStep(h.deps, { jobId: 'cells-oom', reason: r.reason! });
    const failed = await readStatus(h.deps, 'cells-oom');
    expect(failed?.status).toBe('FAILED');
    expect(failed?.workerFailures).toEqual(status?.workerFailures);
  });

  it('poison chunks keep one line each; the Batch summary follows on a line of its own', async () => {
    // Every other chunk DONE: a job is FAILED only once nothing is left to run.
    const h = await job('cells-poison', {
      chunks: 3,
      done: 2,
      poison: 1,
      maxWorkers: 2,
      port: async (id) => ({
        failed: 1,
        described: [
          { batchJobId: id, statusReason: 'CannotPullContainerError: pull access denied' },
        ],
      }),
    });
    const r = await verifyStep(h.deps, {
      jobId: 'cells-poison',
      round: 0,
      batch: caught('single-1'),
    });
    expect(r.status).toBe('FAILED');
    expect(r.reason?.split('\n')).toEqual([
      '1 chunk(s) failed every attempt:',
      '  chunk 0_0_2: failed 1 attempt(s); last error: NaN in output',
      'Batch: 1 worker(s) failed: CannotPullContainerError: pull access denied',
    ]);
    // A FAILED verdict leaves the status word to MarkFailed, but records the failures.
    const status = await readStatus(h.deps, 'cells-poison');
    expect(status?.status).toBe('PLANNED');
    expect(status?.workerFailures).toHaveLength(1);
  });

  it('failed children beyond those described still count', async () => {
    const h = await job('cells-many', {
      chunks: 6,
      maxWorkers: 6,
      maxRounds: 0,
      port: async (id) => ({
        failed: 300,
        described: [{ batchJobId: `${id}:5`, index: 5, statusReason: 'Task failed to start' }],
      }),
    });
    const r = await verifyStep(h.deps, { jobId: 'cells-many', round: 0, batch: caught('arr-9') });
    expect(r.reason).toBe(
      '6 chunk(s) still unfinished after 0 work rounds; Batch: 300 worker(s) failed: Task failed to start',
    );
  });

  it('a Batch API error is logged and recorded; Verify still answers from the ledger', async () => {
    const denied = Object.assign(new Error('User is not authorized to perform batch:ListJobs'), {
      name: 'AccessDeniedException',
      $metadata: { httpStatusCode: 403 },
    });
    const h = await job('cells-denied', {
      chunks: 4,
      done: 1,
      maxWorkers: 4,
      port: async (id) => {
        throw new BatchReadError('ListJobs', id, { cause: denied });
      },
    });
    const r = await verifyStep(h.deps, { jobId: 'cells-denied', round: 1, batch: caught('arr-2') });
    expect(r).toMatchObject({ status: 'INCOMPLETE', redrive: true, arraySize: 3 });
    const [entry] = (await readStatus(h.deps, 'cells-denied'))?.workerFailures ?? [];
    expect(entry?.round).toBe(1);
    expect(entry?.batchJobId).toBe('arr-2');
    expect(entry?.statusReason).toMatch(
      /^could not read Batch failures: Batch ListJobs for job arr-2 failed \(AccessDeniedException, HTTP 403, User is not authorized.*needs batch:ListJobs \(Resource "\*"/,
    );
    expect(h.warnings).toEqual([
      expect.objectContaining({ message: 'could not read Batch failures', batchJobId: 'arr-2' }),
    ]);
  });

  it('an error that is not Batch’s (a bug in the port) is not swallowed', async () => {
    const h = await job('cells-bug', {
      chunks: 2,
      maxWorkers: 1,
      port: async () => {
        throw new TypeError('x is undefined');
      },
    });
    await expect(
      verifyStep(h.deps, { jobId: 'cells-bug', round: 1, batch: caught('arr-3') }),
    ).rejects.toThrow(TypeError);
  });

  it('a malformed Cause is recorded as such, never thrown, and Batch is not asked', async () => {
    for (const batch of [
      { Error: 'States.TaskFailed', Cause: 'not json at all' },
      { Error: 'States.TaskFailed', Cause: '{"JobId": 42}' },
      { Error: 'States.TaskFailed', Cause: '["JobId"]' },
      { Error: 'States.TaskFailed', Cause: '{"JobId": "trunc' },
      { Error: 'States.Timeout' },
    ]) {
      const h = await job('cells-cause', {
        chunks: 2,
        maxWorkers: 1,
        port: async () => ({ failed: 0, described: [] }),
      });
      const r = await verifyStep(h.deps, { jobId: 'cells-cause', round: 2, batch });
      expect(r.status).toBe('INCOMPLETE');
      expect(h.asked).toEqual([]);
      const [entry] = (await readStatus(h.deps, 'cells-cause'))?.workerFailures ?? [];
      expect(entry).toMatchObject({ round: 2, batchJobId: '?' });
      expect(entry?.statusReason).toContain(`the Work task failed (${batch.Error})`);
      expect(entry?.statusReason).toContain(
        batch.Cause === undefined ? 'no Cause' : JSON.stringify(batch.Cause),
      );
    }
  });

  it("a failed job whose children Batch does not list yet: the Cause's own StatusReason", async () => {
    const h = await job('cells-lag', {
      chunks: 2,
      maxWorkers: 1,
      port: async () => ({ failed: 0, described: [] }),
    });
    await verifyStep(h.deps, {
      jobId: 'cells-lag',
      round: 0,
      batch: caught('arr-4', { StatusReason: 'Array Child Job failed' }),
    });
    expect((await readStatus(h.deps, 'cells-lag'))?.workerFailures).toEqual([
      { round: 0, batchJobId: 'arr-4', statusReason: 'Array Child Job failed' },
    ]);
  });

  it('without a Batch port, the Cause is what is recorded', () => {
    const ref = batchJobRef({
      Error: 'States.TaskFailed',
      Cause: JSON.stringify({ JobId: 'j-1', StatusReason: 'Essential container in task exited' }),
    });
    expect(ref.kind === 'job' && ref.jobId).toBe('j-1');
    expect(ref.kind === 'job' && ref.fallback(3)).toEqual({
      round: 3,
      batchJobId: 'j-1',
      statusReason: 'Essential container in task exited',
    });
  });
});

describe('the kept list and its summary', () => {
  const f = (round: number, i: number, text = 'Task failed to start'): WorkerFailure => ({
    round,
    batchJobId: `b${round}:${i}`,
    index: i,
    statusReason: text,
  });

  it('keeps the newest rounds, at most the limit, and a retried round replaces its own entries', () => {
    const old = [f(0, 0), f(0, 1), f(1, 0)];
    expect(keepFailures(old, 2, [f(2, 0), f(2, 1)], 4)).toEqual([
      f(0, 1),
      f(1, 0),
      f(2, 0),
      f(2, 1),
    ]);
    // Verify retried for round 1: its entries are replaced, not doubled.
    expect(keepFailures(old, 1, [f(1, 5)], 10)).toEqual([f(0, 0), f(0, 1), f(1, 5)]);
  });

  it('in Verify: 19 kept + 5 new → the 20 newest', async () => {
    const h = await job('cells-bound', {
      chunks: 2,
      maxWorkers: 1,
      port: async (id) => ({
        failed: 5,
        described: Array.from({ length: 5 }, (_, i) => ({
          batchJobId: `${id}:${i}`,
          index: i,
          statusReason: 'x',
        })),
      }),
    });
    const status = await readStatus(h.deps, 'cells-bound');
    const earlier = Array.from({ length: 19 }, (_, i) => f(i < 10 ? 0 : 1, i));
    await writeStatus(h.deps, { ...status!, workerFailures: earlier });
    await verifyStep(h.deps, { jobId: 'cells-bound', round: 2, batch: caught('arr') });
    const kept = (await readStatus(h.deps, 'cells-bound'))?.workerFailures ?? [];
    expect(kept).toHaveLength(20);
    expect(kept.slice(0, 15)).toEqual(earlier.slice(4));
    expect(kept.slice(15).map((k) => k.batchJobId)).toEqual([
      'arr:0',
      'arr:1',
      'arr:2',
      'arr:3',
      'arr:4',
    ]);
  });

  it('names up to three distinct reasons, newest first, with exit code and log stream', () => {
    const failures: WorkerFailure[] = [
      { ...f(0, 0, 'A'), exitCode: 1 },
      { ...f(0, 1, 'B'), logStream: 'l/b' },
      { ...f(1, 0, 'C') },
      { ...f(1, 1, 'D'), exitCode: 2, logStream: 'l/d' },
      { ...f(1, 2, 'A'), exitCode: 3 },
    ];
    expect(summarizeFailures(failures)).toBe(
      'Batch: 5 worker(s) failed: A (exit 3); D (exit 2, log l/d); C; and 1 other reason(s)',
    );
  });
});
