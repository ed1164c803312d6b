// The job described once: planJob writes the frozen description into the job's work
// store, and every later openJob (workers, blend, finalize) checks the input it opens
// against it. Real Zarr input on disk; the input is rewritten under the planned job.

import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { KEYS } from '../../contracts/cloud.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import {
  InputChangedError,
  JOB_DESCRIPTION_KEY,
  JobDescriptionError,
  openJob,
  PlanChangedError,
  planJob,
} from '../../core/pipeline/index.ts';
import { LocalStore, MemoryStore, PrefixedStore } from '../../core/store/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { lcgVolume, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

const MANIFEST = {
  model: { url: 'unused.onnx', patchShape: [4, 8, 8], outputChannels: 2 },
  overlap: [0, 2, 2],
  chunkShape: [8, 12, 12],
  blend: 'bump',
};

/** A planned job in a temp dir; `open()` opens it again as a later step would. */
async function plannedJob() {
  const t = tempDir();
  cleanups.push(t.cleanup);
  const path = await writeJobDir(t.dir, { shape: [8, 24, 24], manifest: MANIFEST });
  const loaded = await loadManifest(path);
  const workDir = join(t.dir, 'work');
  const open = () =>
    openJob(loaded.manifest, {
      jobId: loaded.jobId,
      work: new LocalStore(workDir, { fsync: false }),
      baseDir: loaded.baseDir,
    });
  await planJob(await open(), new MemoryLedger(), { leaseMs: 60_000 });
  const rewriteInput = (shape: [number, number, number], data: Uint8Array | Float32Array) => {
    rmSync(join(t.dir, 'input.zarr'), { recursive: true, force: true });
    return writeZarrArray(new LocalStore(join(t.dir, 'input.zarr'), { fsync: false }), {
      data,
      shape: [...shape],
      chunkShape: [7, 9, 11],
    });
  };
  return { dir: t.dir, workDir, open, rewriteInput, jobId: loaded.jobId };
}

describe('the frozen job description', () => {
  it('is written once at plan time, with the input shape, dtype and plan parameters', async () => {
    const j = await plannedJob();
    const d = JSON.parse(readFileSync(join(j.workDir, 'job.json'), 'utf8'));
    expect(d).toMatchObject({
      version: 2,
      jobId: j.jobId,
      input: { url: 'input.zarr', shape: [8, 24, 24], dtype: 'uint8' },
      plan: {
        patch: [4, 8, 8],
        overlap: [0, 2, 2],
        chunk: [8, 12, 12],
        region: { start: [0, 0, 0], stop: [8, 24, 24] },
      },
    });
    expect(d.manifestId).toMatch(/^[0-9a-f]{64}$/);
    expect(d.chunks).toBeGreaterThan(1);
    // Re-opened unchanged: accepted.
    await expect(j.open()).resolves.toBeDefined();
  });

  it('refuses by name an input whose shape changed under the planned job', async () => {
    const j = await plannedJob();
    await j.rewriteInput([8, 24, 30], lcgVolume([8, 24, 30], 2));
    const opened = j.open();
    await expect(opened).rejects.toBeInstanceOf(InputChangedError);
    await expect(opened).rejects.toMatchObject({ field: 'shape', jobId: j.jobId });
    await expect(opened).rejects.toThrow(
      'input.url input.zarr now has shape [8, 24, 30], the job was planned for [8, 24, 24]: the input changed under a running job',
    );
  });

  it('refuses by name an input whose dtype changed', async () => {
    const j = await plannedJob();
    await j.rewriteInput([8, 24, 24], new Float32Array(8 * 24 * 24));
    const opened = j.open();
    await expect(opened).rejects.toMatchObject({ name: 'InputChangedError', field: 'dtype' });
    await expect(opened).rejects.toThrow(
      'input.url input.zarr now has dtype float32, the job was planned for uint8',
    );
  });

  it('refuses a job this release would plan differently (chunk count in the description)', async () => {
    const j = await plannedJob();
    const path = join(j.workDir, 'job.json');
    const d = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify({ ...d, chunks: d.chunks + 1 }));
    await expect(j.open()).rejects.toBeInstanceOf(PlanChangedError);
  });

  it("keeps the block a job was planned with when the manifest names none (a release's new default does not re-plan it)", async () => {
    const j = await plannedJob();
    const path = join(j.workDir, 'job.json');
    const d = JSON.parse(readFileSync(path, 'utf8'));
    // As if an earlier release's default block had been [4, 6, 6].
    writeFileSync(path, JSON.stringify({ ...d, plan: { ...d.plan, block: [4, 6, 6] } }));
    const ctx = await j.open();
    expect(ctx.plan.blockShape).toEqual([4, 6, 6]);
  });

  it('names a description that cannot be read, and where it is', async () => {
    const j = await plannedJob();
    writeFileSync(join(j.workDir, 'job.json'), '{"version": 1, "jobId": ');
    const opened = j.open();
    await expect(opened).rejects.toBeInstanceOf(JobDescriptionError);
    await expect(opened).rejects.toThrow(`${join(j.workDir, 'job.json')} is not valid JSON`);
  });

  it('an input changed before any plan is no refusal (nothing was frozen yet)', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const path = await writeJobDir(t.dir, { shape: [8, 24, 30], manifest: MANIFEST });
    const loaded = await loadManifest(path);
    const ctx = await openJob(loaded.manifest, {
      jobId: loaded.jobId,
      work: new MemoryStore(),
      baseDir: loaded.baseDir,
    });
    expect(ctx.description.input.shape).toEqual([8, 24, 30]);
  });

  it("lands in the cloud at KEYS.jobDescription: the job's folder of the bucket", async () => {
    const bucket = new MemoryStore();
    const work = new PrefixedStore(bucket, 'jobs/cells-0123456789');
    await work.set(JOB_DESCRIPTION_KEY, new Uint8Array([1]));
    expect(await bucket.get(`/${KEYS.jobDescription('cells-0123456789')}`)).toEqual(
      new Uint8Array([1]),
    );
  });
});
