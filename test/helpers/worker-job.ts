// The small job the worker-level tests share: a real Zarr input written to a temporary
// directory, a manifest over it ([8, 24, 24], 4×8×8 patches, 8×12×12 chunks, bump), and
// the job opened as the pipeline opens it. Tests pass the model themselves (a JS model),
// so model.url names no file.

import { join } from 'node:path';
import { loadManifest } from '../../cli/job-files.ts';
import type { Vec3 } from '../../core/geometry/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { ensureOutput, type JobContext, openJob, planJob } from '../../core/pipeline/index.ts';
import { LocalStore, type Store } from '../../core/store/index.ts';
import type { OutputVolume } from '../../core/volume/index.ts';
import { tempDir, writeJobDir } from './job-dir.ts';

export const WORKER_JOB_SHAPE: Vec3 = [8, 24, 24];

export interface WorkerJobOptions {
  /** Each job's temporary directory is removed by calling these (afterAll). */
  cleanups: (() => void)[];
  maxAttempts?: number;
  chunkShape?: Vec3;
  /** The input's voxels (default: job-dir's smooth test volume). */
  data?: Uint8Array;
  /** Extra input fields (skipBelow, …). */
  input?: Record<string, unknown>;
  /** The output's url (relative to the job directory) and block shape. */
  output?: { url?: string; blockShape?: Vec3 };
  /** The work store (partials); default a LocalStore under the job directory. */
  work?: Store;
  prefix?: string;
}

/** The job, opened (planned nowhere yet). */
export async function openWorkerJob(
  o: WorkerJobOptions,
): Promise<{ ctx: JobContext; dir: string }> {
  const t = tempDir(o.prefix);
  o.cleanups.push(t.cleanup);
  const path = await writeJobDir(t.dir, {
    shape: WORKER_JOB_SHAPE,
    ...(o.data ? { data: o.data } : {}),
    manifest: {
      ...(o.input ? { input: { url: 'input.zarr', ...o.input } } : {}),
      model: { url: 'unused.onnx', patchShape: [4, 8, 8], outputChannels: 2 },
      overlap: [0, 2, 2],
      chunkShape: o.chunkShape ?? [8, 12, 12],
      blend: 'bump',
      ...(o.maxAttempts === undefined ? {} : { maxAttempts: o.maxAttempts }),
      ...(o.output
        ? {
            output: {
              url: o.output.url ?? 'output.zarr',
              dtype: 'float32',
              ...(o.output.blockShape ? { blockShape: o.output.blockShape } : {}),
            },
          }
        : {}),
    },
  });
  const loaded = await loadManifest(path);
  const ctx = await openJob(loaded.manifest, {
    jobId: loaded.jobId,
    work: o.work ?? new LocalStore(join(t.dir, 'work'), { fsync: false }),
    baseDir: loaded.baseDir,
  });
  return { ctx, dir: t.dir };
}

/** The job opened, its output created and its chunks planned into a MemoryLedger. */
export async function workerJob(
  o: WorkerJobOptions & { leaseMs?: number },
): Promise<{ ctx: JobContext; ledger: MemoryLedger; output: OutputVolume; dir: string }> {
  const { ctx, dir } = await openWorkerJob(o);
  const ledger = new MemoryLedger();
  const output = await ensureOutput(ctx);
  await planJob(ctx, ledger, { leaseMs: o.leaseMs ?? 60_000 });
  return { ctx, ledger, output, dir };
}
