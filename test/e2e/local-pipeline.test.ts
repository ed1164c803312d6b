// The whole local pipeline (`tessera run`): real Zarr files, real onnxruntime, worker
// processes; every output compared with whole-volume sliding-window inference.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { Box, Plan, type Vec3 } from '../../core/geometry/index.ts';
import {
  FIXTURE_MODELS,
  lcgVolume,
  maxAbsDiff,
  readOutput,
  referenceFor,
  tempDir,
  writeJobDir,
} from '../helpers/job-dir.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

function dir(): string {
  const t = tempDir();
  cleanups.push(t.cleanup);
  return t.dir;
}

interface Case {
  name: string;
  shape: Vec3;
  patch: Vec3;
  overlap: Vec3;
  chunk: Vec3;
  block?: Vec3;
  blend: 'bump' | 'gaussian' | 'constant';
  workers: number;
  dtype: 'float32' | 'uint8';
  region?: { start: Vec3; stop: Vec3 };
}

const cases: Case[] = [
  {
    name: 'bump, 1 worker',
    shape: [23, 37, 41],
    patch: [8, 12, 12],
    overlap: [2, 4, 4],
    chunk: [12, 20, 20],
    blend: 'bump',
    workers: 1,
    dtype: 'float32',
  },
  {
    name: 'gaussian, 3 workers, region, uint8',
    shape: [21, 33, 29],
    patch: [6, 10, 10],
    overlap: [2, 3, 5],
    chunk: [10, 16, 13],
    block: [5, 7, 9],
    blend: 'gaussian',
    workers: 3,
    dtype: 'uint8',
    region: { start: [2, 3, 1], stop: [19, 31, 28] },
  },
  {
    name: 'constant, 2 workers, odd blocks',
    shape: [17, 26, 31],
    patch: [9, 9, 9],
    overlap: [4, 3, 2],
    chunk: [9, 23, 15],
    block: [4, 11, 6],
    blend: 'constant',
    workers: 2,
    dtype: 'float32',
  },
];

describe('tessera run (local pipeline)', () => {
  for (const c of cases) {
    it(`equals the whole-volume reference: ${c.name}`, async () => {
      const d = dir();
      const data = lcgVolume(c.shape, 11);
      const path = await writeJobDir(d, {
        shape: c.shape,
        data,
        manifest: {
          model: {
            url: join(FIXTURE_MODELS, 'realistic.onnx'),
            patchShape: c.patch,
            outputChannels: 2,
          },
          output: {
            url: 'output.zarr',
            dtype: c.dtype,
            ...(c.block ? { blockShape: c.block } : {}),
          },
          overlap: c.overlap,
          chunkShape: c.chunk,
          blend: c.blend,
          ...(c.region ? { region: c.region } : {}),
        },
      });
      const result = await runLocal(await loadManifest(path), { workers: c.workers });
      expect(result.message).toBeUndefined();
      expect(result.status).toBe('SUCCEEDED');
      const region = c.region ? new Box(c.region.start, c.region.stop) : Box.ofShape(c.shape);
      const expected = await referenceFor({
        data,
        shape: c.shape,
        model: join(FIXTURE_MODELS, 'realistic.onnx'),
        patchShape: c.patch,
        overlap: c.overlap,
        blend: c.blend,
        outputChannels: 2,
        region: c.region,
      });
      const got = await readOutput(d, region);
      if (c.dtype === 'uint8') {
        const q = expected.map((v) => Math.round(Math.min(1, Math.max(0, v)) * 255));
        expect(maxAbsDiff(got, q)).toBeLessThanOrEqual(1);
      } else {
        expect(maxAbsDiff(got, expected)).toBeLessThanOrEqual(1e-5);
      }
      // Voxels outside the region keep the fill value.
      if (c.region) {
        const whole = await readOutput(d, Box.ofShape(c.shape));
        expect(whole[0]).toBe(0);
      }
      const report = JSON.parse(readFileSync(join(d, 'output.zarr', 'report.json'), 'utf8'));
      expect(report.status).toBe('SUCCEEDED');
      expect(report.patches.inferred).toBe(report.patches.total);
      expect(report.chunks.DONE).toBe(report.chunks.total);
      const zarrJson = JSON.parse(readFileSync(join(d, 'output.zarr', 'zarr.json'), 'utf8'));
      expect(JSON.stringify(zarrJson)).toContain('multiscales');
    });
  }

  it('a 2D model runs slice by slice on an anisotropic stack (patch z = 1) and equals the reference', async () => {
    const d = dir();
    const shape: Vec3 = [7, 30, 33];
    const data = lcgVolume(shape, 17);
    const m = { patch: [1, 12, 12] as Vec3, overlap: [0, 4, 4] as Vec3 };
    const model = join(FIXTURE_MODELS, 'slice2d.onnx');
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: {
        model: { url: model, patchShape: m.patch, outputChannels: 2 },
        overlap: m.overlap,
        chunkShape: [3, 20, 20],
        blend: 'bump',
      },
    });
    const result = await runLocal(await loadManifest(path), { workers: 2 });
    expect(result.message).toBeUndefined();
    const expected = await referenceFor({
      data,
      shape,
      model,
      patchShape: m.patch,
      overlap: m.overlap,
      blend: 'bump',
      outputChannels: 2,
    });
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), expected)).toBeLessThanOrEqual(1e-5);
  });

  it('a valid-convolution model (output patch smaller, centred) equals the reference, inputs padded at the edge', async () => {
    const d = dir();
    const shape: Vec3 = [15, 26, 23];
    const data = lcgVolume(shape, 19);
    const m = { patch: [8, 12, 12] as Vec3, out: [6, 10, 10] as Vec3, overlap: [2, 2, 3] as Vec3 };
    const model = join(FIXTURE_MODELS, 'wrong-shape.onnx');
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: {
        model: { url: model, patchShape: m.patch, outputPatchShape: m.out, outputChannels: 3 },
        overlap: m.overlap,
        chunkShape: [8, 14, 12],
        blend: 'gaussian',
      },
    });
    const result = await runLocal(await loadManifest(path), { workers: 1 });
    expect(result.message).toBeUndefined();
    const expected = await referenceFor({
      data,
      shape,
      model,
      patchShape: m.patch,
      outputPatchShape: m.out,
      overlap: m.overlap,
      blend: 'gaussian',
      outputChannels: 3,
    });
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), expected)).toBeLessThanOrEqual(1e-5);
  });

  it('input.skipBelow skips empty chunks without inference, writes 0 there, and counts them', async () => {
    const d = dir();
    const shape: Vec3 = [24, 30, 30];
    const data = lcgVolume(shape, 23);
    // The first 12 z-slices are empty background (0); the rest has structure (≥ 1 here).
    const slice = shape[1] * shape[2];
    data.fill(0, 0, 12 * slice);
    for (let i = 12 * slice; i < data.length; i++) data[i] = Math.max(1, data[i]!);
    const m = {
      patch: [4, 10, 10] as Vec3,
      overlap: [0, 2, 2] as Vec3,
      chunk: [4, 18, 18] as Vec3,
    };
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: {
        input: { url: 'input.zarr', skipBelow: 1 },
        output: { url: 'output.zarr', dtype: 'float32', blockShape: [4, 10, 10] },
        model: { url: join(FIXTURE_MODELS, 'tiny.onnx'), patchShape: m.patch, outputChannels: 2 },
        overlap: m.overlap,
        chunkShape: m.chunk,
        blend: 'bump',
      },
    });
    const result = await runLocal(await loadManifest(path), { workers: 1 });
    expect(result.status).toBe('SUCCEEDED');
    // Expected from the plan alone: chunks whose whole read box lies in the empty slab.
    const plan = new Plan({
      volumeShape: shape,
      patchShape: m.patch,
      overlap: m.overlap,
      chunkShape: m.chunk,
      blockShape: [4, 10, 10],
    });
    const empty = [...plan.chunks()].filter((c) => c.readBox.stop[0] <= 12);
    expect(empty.length).toBeGreaterThan(0);
    expect(result.report?.chunks.SKIPPED).toBe(empty.length);
    expect(result.inferredThisRun).toBe(plan.counts.chunks - empty.length);
    expect(result.report?.patches.inferred).toBe(
      plan.counts.patches - empty.reduce((s, c) => s + c.patchCount, 0),
    );
    // Blocks owned by skipped chunks hold exactly 0; a block in the structured part does not.
    const out = await readOutput(d, Box.ofShape(shape));
    for (const c of empty)
      for (const b of plan.ownedBlocks(c)) {
        const [z0, y0, x0] = b.box.start;
        expect(out[(z0 * shape[1] + y0) * shape[2] + x0]).toBe(0);
      }
    expect(out[(20 * shape[1] + 15) * shape[2] + 15]).not.toBe(0);
  });

  it('a worker SIGKILLed mid-run is replaced; the output still equals the reference', async () => {
    const d = dir();
    const shape: Vec3 = [20, 40, 44];
    const data = lcgVolume(shape, 5);
    const m = { patch: [8, 12, 12] as Vec3, overlap: [2, 4, 4] as Vec3 };
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: {
        model: {
          url: join(FIXTURE_MODELS, 'realistic.onnx'),
          patchShape: m.patch,
          outputChannels: 2,
        },
        overlap: m.overlap,
        chunkShape: [8, 12, 12],
        blend: 'bump',
      },
    });
    let killed = 0;
    const result = await runLocal(await loadManifest(path), {
      workers: 2,
      onWorker: (child) => {
        child.on('message', (msg: { type: string; event?: { type: string } }) => {
          if (killed === 0 && msg.type === 'event' && msg.event?.type === 'claimed') {
            killed++;
            setTimeout(() => child.kill('SIGKILL'), 30);
          }
        });
      },
    });
    expect(killed).toBe(1);
    expect(result.status).toBe('SUCCEEDED');
    const expected = await referenceFor({
      data,
      shape,
      model: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: m.patch,
      overlap: m.overlap,
      blend: 'bump',
      outputChannels: 2,
    });
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), expected)).toBeLessThanOrEqual(1e-5);
    expect(result.report?.attempts.total).toBeGreaterThanOrEqual(result.chunks);
  });

  it.runIf(existsSync('/proc/self/task'))(
    "workers infer at the run's priority; everything else (their other threads, the coordinator) is lowered",
    async () => {
      const d = dir();
      const shape: Vec3 = [16, 40, 40];
      const path = await writeJobDir(d, {
        shape,
        data: lcgVolume(shape, 5),
        manifest: {
          model: {
            url: join(FIXTURE_MODELS, 'realistic.onnx'),
            patchShape: [8, 16, 16],
            outputChannels: 2,
          },
          overlap: [2, 4, 4],
          chunkShape: [8, 24, 24],
        },
      });
      const base = getPriority(0);
      const lowered = Math.min(19, base + 10);
      let seen: { main: number; nice: number[] } | undefined;
      const result = await runLocal(await loadManifest(path), {
        workers: 1,
        onWorker: (child) => {
          child.on('message', (msg: { type: string; event?: { type: string } }) => {
            if (seen || msg.type !== 'event' || msg.event?.type !== 'done') return;
            const nice = (tid: string): number => {
              const stat = readFileSync(`/proc/${child.pid}/task/${tid}/stat`, 'utf8');
              return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
            };
            const tids = readdirSync(`/proc/${child.pid}/task`);
            seen = { main: nice(String(child.pid)), nice: tids.map(nice) };
          });
        },
      });
      expect(result.status).toBe('SUCCEEDED');
      // A worker forked by a lowered coordinator would run inference lowered too.
      expect(seen).toBeDefined();
      expect(Math.min(...seen!.nice)).toBe(base);
      expect(seen!.main).toBe(lowered);
      expect(getPriority(0)).toBe(lowered);
    },
  );

  it('a run killed with SIGKILL resumes without re-inferring DONE chunks', async () => {
    const d = dir();
    const shape: Vec3 = [24, 48, 48];
    const data = lcgVolume(shape, 9);
    const m = { patch: [8, 16, 16] as Vec3, overlap: [2, 4, 4] as Vec3 };
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: {
        model: {
          url: join(FIXTURE_MODELS, 'realistic.onnx'),
          patchShape: m.patch,
          outputChannels: 2,
        },
        overlap: m.overlap,
        chunkShape: [8, 16, 16],
        blend: 'gaussian',
      },
    });
    const stateDir = join(d, 'state');
    const child = spawn(
      process.execPath,
      [BIN, 'run', path, '--state', stateDir, '--workers', '1'],
      { detached: true, stdio: 'ignore' },
    );
    const journal = join(stateDir, 'ledger', 'ledger.jsonl');
    const doneLines = (): number =>
      existsSync(journal)
        ? readFileSync(journal, 'utf8')
            .split('\n')
            .filter((l) => l.includes('"DONE"')).length
        : 0;
    const deadline = Date.now() + 60_000;
    while (doneLines() < 3 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((r) => child.once('exit', r));
    const loaded = await loadManifest(path);
    const plan = new Plan({
      volumeShape: shape,
      patchShape: m.patch,
      overlap: m.overlap,
      chunkShape: [8, 16, 16],
    });
    const result = await runLocal(loaded, { stateDir, workers: 2 });
    expect(result.status).toBe('SUCCEEDED');
    const doneBefore = plan.counts.chunks - result.inferredThisRun;
    expect(doneBefore).toBeGreaterThanOrEqual(3);
    expect(result.inferredThisRun).toBeLessThan(plan.counts.chunks);
    const expected = await referenceFor({
      data,
      shape,
      model: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: m.patch,
      overlap: m.overlap,
      blend: 'gaussian',
      outputChannels: 2,
    });
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), expected)).toBeLessThanOrEqual(1e-5);
  });

  it('running a succeeded job again reports its output without redoing work; a deleted output is named', async () => {
    const d = dir();
    const shape: Vec3 = [12, 32, 32];
    const path = await writeJobDir(d, {
      shape,
      data: lcgVolume(shape, 3),
      manifest: {
        model: {
          url: join(FIXTURE_MODELS, 'tiny.onnx'),
          patchShape: [6, 10, 10],
          outputChannels: 2,
        },
        overlap: [2, 2, 2],
        chunkShape: [8, 16, 16],
        blend: 'bump',
      },
    });
    const loaded = await loadManifest(path);
    const stateDir = join(d, 'state');
    const first = await runLocal(loaded, { stateDir, workers: 1 });
    expect(first.status).toBe('SUCCEEDED');
    // The CPU accounting the benchmark reports: the workers' whole processes include their
    // main threads (Linux reads those from /proc) and their inference threads.
    const cpu = first.cpuSeconds!;
    expect(cpu.workers).toBeGreaterThan(0);
    expect(cpu.coordinator).toBeGreaterThan(0);
    if (process.platform === 'linux') {
      expect(cpu.workerMainThreads).toBeGreaterThan(0);
      expect(cpu.workerMainThreads).toBeLessThan(cpu.workers);
    }
    const before = await readOutput(d, Box.ofShape(shape));
    const again = await runLocal(loaded, { stateDir, workers: 1 });
    expect(again.status).toBe('SUCCEEDED');
    expect(again.inferredThisRun).toBe(0);
    expect(again.report?.jobId).toBe(first.report?.jobId);
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), before)).toBe(0);
    // Stopped during finalize (blended, no report yet): the rerun only finalizes again.
    rmSync(join(d, 'output.zarr', 'report.json'));
    const refinalized = await runLocal(loaded, { stateDir, workers: 1 });
    expect(refinalized.status).toBe('SUCCEEDED');
    expect(refinalized.inferredThisRun).toBe(0);
    expect(existsSync(join(d, 'output.zarr', 'report.json'))).toBe(true);
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), before)).toBe(0);
    // The output deleted behind the job's back: refused, naming the way to recompute.
    rmSync(join(d, 'output.zarr'), { recursive: true, force: true });
    await expect(runLocal(loaded, { stateDir, workers: 1 })).rejects.toThrow(
      new RegExp(`output.*is gone.*delete the state directory ${stateDir}`),
    );
    rmSync(stateDir, { recursive: true, force: true });
    const fresh = await runLocal(loaded, { stateDir, workers: 1 });
    expect(fresh.status).toBe('SUCCEEDED');
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), before)).toBe(0);
  });

  it('tessera demo runs end to end every time it is run in the same directory', async () => {
    const d = dir();
    const demo = (): Promise<number | null> =>
      new Promise((resolve) => {
        const p = spawn(process.execPath, [BIN, 'demo', '--dir', d, '--size', '24,48,48'], {
          stdio: 'ignore',
        });
        p.on('exit', resolve);
      });
    expect(await demo()).toBe(0);
    expect(await demo()).toBe(0);
    const report = JSON.parse(readFileSync(join(d, 'output.zarr', 'report.json'), 'utf8'));
    expect(report.status).toBe('SUCCEEDED');
    expect(report.patches.inferred).toBe(report.patches.total);
  });

  it("another job never writes into a job's output, until that output is deleted", async () => {
    const d = dir();
    const shape: Vec3 = [16, 24, 24];
    const data = lcgVolume(shape, 5);
    const job = {
      model: {
        url: join(FIXTURE_MODELS, 'realistic.onnx'),
        patchShape: [8, 12, 12],
        outputChannels: 2,
      },
      overlap: [2, 4, 4],
      chunkShape: [8, 12, 12],
      blend: 'bump',
    };
    const path = await writeJobDir(d, { shape, data, manifest: job });
    const first = await loadManifest(path);
    expect((await runLocal(first, { workers: 1 })).status).toBe('SUCCEEDED');
    // An edited manifest is another job (same state directory, so the ledger's claim sees
    // it), and so is one under another name (its own state directory: the output's record).
    const edit = (over: Record<string, unknown>) => {
      writeFileSync(path, JSON.stringify({ ...JSON.parse(readFileSync(path, 'utf8')), ...over }));
      return loadManifest(path);
    };
    for (const over of [{ blend: 'gaussian' }, { name: 'another-job', blend: 'bump' }]) {
      const other = await edit(over);
      expect(other.jobId).not.toBe(first.jobId);
      const error = await runLocal(other, { workers: 1 }).catch((e: unknown) => e);
      expect(error, JSON.stringify(over)).toMatchObject({
        name: 'OutputOwnedError',
        owner: first.jobId,
        jobId: other.jobId,
      });
      expect(String(error)).toMatch(/another output\.url.*delete its output/);
    }
    // Its blocks are untouched: still the first job's result.
    const expected = await referenceFor({
      data,
      shape,
      model: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: [8, 12, 12],
      overlap: [2, 4, 4],
      blend: 'bump',
      outputChannels: 2,
    });
    expect(maxAbsDiff(await readOutput(d, Box.ofShape(shape)), expected)).toBeLessThanOrEqual(1e-5);
    // Deleted, as the message says: the edited job runs (taking over the ledger's claim).
    rmSync(join(d, 'output.zarr'), { recursive: true, force: true });
    const edited = await edit({ name: 'test-job', blend: 'gaussian' });
    expect((await runLocal(edited, { workers: 1 })).status).toBe('SUCCEEDED');
    await expect(runLocal(first, { workers: 1 })).rejects.toMatchObject({
      name: 'OutputOwnedError',
      owner: edited.jobId,
    });
  });

  it('a poison chunk fails the job after maxAttempts, naming exactly the chunks that see it', async () => {
    const d = dir();
    const shape: Vec3 = [16, 30, 30];
    const data = Float32Array.from(lcgVolume(shape, 3), (v) => v / 255);
    const bad: Vec3 = [9, 20, 5];
    data[(bad[0] * shape[1] + bad[1]) * shape[2] + bad[2]] = Number.NaN;
    const m = {
      patch: [6, 10, 10] as Vec3,
      overlap: [2, 2, 2] as Vec3,
      chunk: [8, 16, 16] as Vec3,
    };
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: {
        model: { url: join(FIXTURE_MODELS, 'tiny.onnx'), patchShape: m.patch, outputChannels: 2 },
        overlap: m.overlap,
        chunkShape: m.chunk,
        blend: 'bump',
        maxAttempts: 2,
      },
    });
    const result = await runLocal(await loadManifest(path), { workers: 2 });
    expect(result.status).toBe('FAILED');
    const plan = new Plan({
      volumeShape: shape,
      patchShape: m.patch,
      overlap: m.overlap,
      chunkShape: m.chunk,
    });
    const poisoned = [...plan.chunks()]
      .filter((c) => [...plan.patches(c)].some((p) => p.containsPoint(bad)))
      .map((c) => c.id);
    expect(poisoned.length).toBeGreaterThan(0);
    for (const id of poisoned) expect(result.message).toContain(`chunk ${id}:`);
    expect(result.report?.failures.map((f) => f.chunkId).sort()).toEqual(poisoned.sort());
    for (const f of result.report?.failures ?? []) {
      expect(f.attempts).toBe(2);
      // Found in the chunk's input before inference (input.nan "fail", the default).
      expect(f.lastError).toMatch(/its input holds \d+ NaN voxel\(s\)/);
    }
    expect(result.report?.chunks.DONE).toBe(plan.counts.chunks - poisoned.length);
  });
});

describe('tessera run refuses a model that does not match its manifest', () => {
  it('an unreadable model fails the run at once, naming the model (no endless respawns)', async () => {
    const d = dir();
    const bad = join(d, 'broken.onnx');
    writeFileSync(bad, readFileSync(join(FIXTURE_MODELS, 'tiny.onnx')).subarray(0, 100));
    const path = await writeJobDir(d, {
      shape: [8, 12, 12],
      manifest: {
        model: { url: bad, patchShape: [4, 6, 6], outputChannels: 2 },
        overlap: [1, 1, 1],
        chunkShape: [4, 6, 6],
        blend: 'bump',
      },
    });
    const spawned: string[] = [];
    const result = await runLocal(await loadManifest(path), {
      workers: 2,
      onWorker: (_c, owner) => spawned.push(owner),
    });
    expect(result.status).toBe('FAILED');
    // Refused when the run opens the model, before any worker starts.
    expect(result.message).toMatch(/before any chunk ran.*broken\.onnx/s);
    expect(spawned).toEqual([]);
  });

  it('a model with fewer channels than model.outputChannels is refused once, before any chunk runs', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [8, 12, 12],
      manifest: {
        model: { url: join(FIXTURE_MODELS, 'tiny.onnx'), patchShape: [4, 6, 6], outputChannels: 3 },
        overlap: [1, 1, 1],
        chunkShape: [4, 6, 6],
        blend: 'bump',
        maxAttempts: 1,
      },
    });
    const spawned: string[] = [];
    const result = await runLocal(await loadManifest(path), {
      workers: 1,
      onWorker: (_c, owner) => spawned.push(owner),
    });
    // Caught once, from the model's declared output, before any chunk runs.
    expect(result.status).toBe('FAILED');
    expect(result.message).toMatch(
      /before any chunk ran.*model\.outputChannels: .* has 2 channel\(s\), but model\.outputChannels is 3/s,
    );
    expect(spawned).toEqual([]);
  });
});

describe('tessera CLI errors', () => {
  const run = (args: string[]): Promise<{ code: number | null; stderr: string; stdout: string }> =>
    new Promise((resolve) => {
      const p = spawn(process.execPath, [BIN, ...args]);
      let stderr = '';
      let stdout = '';
      p.stderr.on('data', (b) => (stderr += b));
      p.stdout.on('data', (b) => (stdout += b));
      p.on('exit', (code) => resolve({ code, stderr, stdout }));
    });

  it('a bad manifest names the field', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [8, 8, 8],
      manifest: {
        model: { url: 'm.onnx', patchShape: [4, 4, 4], outputChannels: 2 },
        overlap: [4, 1, 1],
        chunkShape: [8, 8, 8],
        blend: 'bump',
      },
    });
    const r = await run(['run', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/overlap\[0\]/);
  });

  it('a missing input array is named', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [8, 8, 8],
      manifest: {
        input: { url: 'nope.zarr' },
        model: { url: join(FIXTURE_MODELS, 'tiny.onnx'), patchShape: [4, 4, 4], outputChannels: 2 },
        overlap: [1, 1, 1],
        chunkShape: [8, 8, 8],
        blend: 'bump',
      },
    });
    const r = await run(['run', path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/nope\.zarr/);
  });

  it('plan --json reports counts and the margin-cropping comparison', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [40, 64, 64],
      manifest: {
        model: {
          url: join(FIXTURE_MODELS, 'tiny.onnx'),
          patchShape: [8, 16, 16],
          outputChannels: 2,
        },
        overlap: [2, 4, 4],
        chunkShape: [20, 40, 40],
        blend: 'bump',
      },
    });
    const r = await run(['plan', path, '--json']);
    expect(r.code).toBe(0);
    const p = JSON.parse(r.stdout);
    const plan = new Plan({
      volumeShape: [40, 64, 64],
      patchShape: [8, 16, 16],
      overlap: [2, 4, 4],
      chunkShape: [20, 40, 40],
    });
    expect(p.counts.chunks).toBe(plan.counts.chunks);
    expect(p.marginCroppingRedundancy).toBeGreaterThan(1);
  });
});
