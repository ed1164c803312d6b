// Deterministic problems caught at plan time, as a user meets them: `tessera plan` on real
// ONNX models (written by test/fixtures/generate-models.ts) and real Zarr inputs refuses,
// once and naming the field, a model that does not fit the manifest and workers that do
// not fit in memory; model.output picks the output a run uses; and the memory estimate
// is checked against what a real worker process actually holds.

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { planCommand } from '../../cli/plan-command.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { ModelRunner, ModelSignatureError, modelExpectation } from '../../core/model/index.ts';
import {
  checkJobFits,
  ensureOutput,
  finishLeftovers,
  leftoverUnits,
  openJob,
  planJob,
  runWorker,
} from '../../core/pipeline/index.ts';
import { WorkerMemoryError } from '../../core/pipeline/memory-estimate.ts';
import { LocalStore, MemoryStore } from '../../core/store/index.ts';
import { FIXTURE_MODELS, lcgVolume, readOutput, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
function dir(): string {
  const t = tempDir('tessera-plan-checks-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** `tessera plan` with these arguments: its exit code and stdout, or what it threw. */
async function plan(args: string[]): Promise<{ code?: number; out: string; error?: Error }> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await planCommand(args), out };
  } catch (error) {
    return { out, error: error as Error };
  } finally {
    process.stdout.write = write;
  }
}

const model = (name: string) => join(FIXTURE_MODELS, name);

async function job(modelFields: Record<string, unknown>, shape = [12, 20, 20] as const) {
  const d = dir();
  const path = await writeJobDir(d, {
    shape: [...shape],
    manifest: {
      model: { url: model('tiny.onnx'), patchShape: [4, 8, 8], outputChannels: 2, ...modelFields },
      overlap: [0, 2, 2],
      chunkShape: [8, 12, 12],
      blend: 'bump',
    },
  });
  return { dir: d, path };
}

/** A Zarr v3 array's metadata alone: `tessera plan` reads no voxel. */
function handWrittenZarr(d: string, shape: number[], chunks: number[]): void {
  mkdirSync(join(d, 'input.zarr'), { recursive: true });
  writeFileSync(
    join(d, 'input.zarr', 'zarr.json'),
    JSON.stringify({
      zarr_format: 3,
      node_type: 'array',
      shape,
      data_type: 'uint8',
      chunk_grid: { name: 'regular', configuration: { chunk_shape: chunks } },
      chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
      fill_value: 0,
      codecs: [{ name: 'bytes', configuration: {} }],
    }),
  );
}

function manifestFile(d: string, fields: Record<string, unknown>): string {
  const path = join(d, 'manifest.json');
  writeFileSync(
    path,
    JSON.stringify({
      version: 1,
      name: 'plan-checks',
      input: { url: 'input.zarr' },
      output: { url: 'output.zarr', dtype: 'float32' },
      blend: 'bump',
      ...fields,
    }),
  );
  return path;
}

describe('tessera plan reads the model and refuses a mismatch once, naming the field', () => {
  it('a model with two outputs and no model.output', async () => {
    const { path } = await job({ url: model('two-outputs.onnx') });
    const r = await plan([path]);
    expect(r.error).toBeInstanceOf(ModelSignatureError);
    const e = r.error as ModelSignatureError;
    expect(e.fields).toEqual(['model.output']);
    expect(e.message).toContain('"boundaries" float32 [batch, 2, z, y, x]');
    expect(e.message).toContain('"affinities" float32 [batch, 2, z, y, x]');
    expect(r.out).toBe('');
  });

  it('a model.output that names no output', async () => {
    const { path } = await job({ url: model('two-outputs.onnx'), output: 'probabilities' });
    const r = await plan([path]);
    expect((r.error as ModelSignatureError).fields).toEqual(['model.output']);
    expect(r.error?.message).toContain('"probabilities" names no output');
  });

  it('a model with static 100000³ spatial dims', async () => {
    const { path } = await job({ url: model('static-huge.onnx') });
    const r = await plan([path]);
    expect(r.error).toBeInstanceOf(ModelSignatureError);
    expect((r.error as ModelSignatureError).fields).toEqual(['model.patchShape']);
    expect(r.error?.message).toContain('fixed at [100000, 100000, 100000]');
    expect(r.error?.message.split('\n')).toHaveLength(2);
  });

  it('a model whose static output channels are not model.outputChannels', async () => {
    const { path } = await job({ outputChannels: 3 });
    const r = await plan([path]);
    expect((r.error as ModelSignatureError).fields).toEqual(['model.outputChannels']);
    expect(r.error?.message).toContain('has 2 channel(s), but model.outputChannels is 3');
  });

  it("a model whose static input channels are not the input volume's", async () => {
    const { path } = await job({ url: model('two-channel-input.onnx') });
    const r = await plan([path]);
    expect((r.error as ModelSignatureError).fields).toEqual(['input.url']);
  });

  it('a model that fits: the plan names the input and output it uses', async () => {
    const { path } = await job({ url: model('two-outputs.onnx'), output: 'affinities' });
    const r = await plan([path]);
    expect(r.error).toBeUndefined();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^model +.*two-outputs\.onnx: input "input" float32 \[batch, 1, z, y, x\] → output "affinities" float32 \[batch, 2, z, y, x\] \(model\.output; 2 outputs\)$/m,
    );
  });
});

describe('model.output picks the output a run writes', () => {
  it("the run's output is the second output's values, as onnxruntime computes them", async () => {
    const shape = [12, 20, 20] as const;
    const { dir: d, path } = await job({ url: model('two-outputs.onnx'), output: 'affinities' });
    const loaded = await loadManifest(path);
    const ctx = await openJob(loaded.manifest, {
      jobId: loaded.jobId,
      work: new LocalStore(join(d, 'work'), { fsync: false }),
      baseDir: loaded.baseDir,
    });
    const ledger = new MemoryLedger();
    const output = await ensureOutput(ctx);
    await planJob(ctx, ledger, { leaseMs: 60_000 });
    // The runner as every worker opens it (local and cloud): with the manifest's expectation.
    const runner = await ModelRunner.open(
      { path: model('two-outputs.onnx') },
      { intraOpThreads: 1, expect: modelExpectation(loaded.manifest) },
    );
    try {
      const stats = await runWorker({
        ctx,
        ledger,
        output,
        owner: 'w',
        model: runner,
        idlePollMs: 0,
      });
      expect(stats.done).toBe(ctx.plan.counts.chunks);
    } finally {
      await runner.close();
    }
    // What the worker did not blend as last contributor (nothing, one worker).
    await finishLeftovers(ctx, output, await leftoverUnits(ctx, output));
    // The model is pointwise (1×1×1 convolutions), so the blended output is the model's
    // output on the whole volume at once: ask onnxruntime for each output by name.
    const volume = Float32Array.from(lcgVolume([...shape], 1), (v) => v / 255);
    const session = await InferenceSession.create(model('two-outputs.onnx'));
    const direct = await session.run({ input: new Tensor('float32', volume, [1, 1, ...shape]) }, [
      'boundaries',
      'affinities',
    ]);
    await session.release();
    const got = await readOutput(d, ctx.plan.region);
    const max = (a: ArrayLike<number>, b: ArrayLike<number>) => {
      let m = 0;
      for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
      return m;
    };
    expect(max(got, direct.affinities!.data as Float32Array)).toBeLessThan(1e-5);
    expect(max(got, direct.boundaries!.data as Float32Array)).toBeGreaterThan(0.1);
  });
});

describe('tessera plan refuses workers that cannot fit in memory', () => {
  it('a hand-written zarr.json claiming 10000³ voxels, planned in 2 chunks', async () => {
    const d = dir();
    handWrittenZarr(d, [10_000, 10_000, 10_000], [100, 100, 100]);
    const path = manifestFile(d, {
      model: { url: model('tiny.onnx'), patchShape: [64, 64, 64], outputChannels: 2 },
      overlap: [0, 0, 0],
      chunkShape: [5056, 10_048, 10_048],
    });
    const r = await plan([path, '--json']);
    expect(r.error).toBeInstanceOf(WorkerMemoryError);
    // The first chunk alone is 5056·10000·10000 voxels, ~20 TB of float32 input per copy.
    expect(r.error?.message).toMatch(/a worker needs about \d+(\.\d)? TiB at peak/);
    expect(r.error?.message).toContain('shrink chunkShape [5056, 10048, 10048]');
    // The run path's check (what `tessera run` calls before forking a worker) says the same.
    const loaded = await loadManifest(path);
    const ctx = await openJob(loaded.manifest, {
      jobId: loaded.jobId,
      work: new MemoryStore(),
      baseDir: loaded.baseDir,
    });
    expect(ctx.plan.counts.chunks).toBe(2);
    expect(() =>
      checkJobFits(ctx, { model: 'skip', memory: { bytes: 2 ** 40, source: '--memory 1T' } }),
    ).toThrow(WorkerMemoryError);
  });

  it('a patch far larger than the volume', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [16, 16, 16],
      manifest: {
        model: { url: model('tiny.onnx'), patchShape: [4096, 4096, 4096], outputChannels: 2 },
        overlap: [0, 0, 0],
        chunkShape: [4096, 4096, 4096],
      },
    });
    const r = await plan([path]);
    expect(r.error).toBeInstanceOf(WorkerMemoryError);
    // The chunk is already one patch: what can shrink is the patch.
    expect(r.error?.message).toContain('shrink model.patchShape [4096, 4096, 4096]');
  });

  it('a patch larger than the volume that fits is planned, with a warning', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [16, 16, 16],
      manifest: {
        model: { url: model('tiny.onnx'), patchShape: [32, 32, 32], outputChannels: 2 },
        overlap: [0, 0, 0],
        chunkShape: [32, 32, 32],
      },
    });
    const r = await plan([path]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^warning +the model's input patch \[32, 32, 32\] is larger than the region \[16, 16, 16\] on z, y, x/m,
    );
  });

  // 224×512×512 uint8 in one chunk, patch 32×64×64, 2 channels, batch 4: by hand
  // (test/unit/memory-estimate.test.ts) 2112.5 MiB ≈ 2.1 GiB per worker.
  const twoGig = () => {
    const d = dir();
    handWrittenZarr(d, [224, 512, 512], [224, 512, 512]);
    return manifestFile(d, {
      model: { url: model('tiny.onnx'), patchShape: [32, 64, 64], outputChannels: 2 },
      overlap: [0, 0, 0],
      chunkShape: [224, 512, 512],
    });
  };

  it('--memory 1G refuses a 2.1 GiB worker, naming the figure, the budget and the shape', async () => {
    const r = await plan([twoGig(), '--memory', '1G']);
    expect(r.error).toBeInstanceOf(WorkerMemoryError);
    expect(r.error?.message).toContain(
      'a worker needs about 2.1 GiB at peak, over the 1.0 GiB of --memory 1G',
    );
    expect(r.error?.message).toContain('shrink chunkShape [224, 512, 512] to about');
  });

  it('--memory 4G fits one such worker and the plan prints the figure (--workers counts only the workers its one chunk can use)', async () => {
    const path = twoGig();
    const r = await plan([path, '--memory', '4G', '--workers', '1']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^memory +2\.1 GiB per worker at peak \(input 896 MiB, accumulation 897 MiB, .*within the 4\.0 GiB of --memory 4G$/m,
    );
    // Two workers would not fit, but the job has one chunk: only one works.
    const two = await plan([path, '--memory', '4G', '--workers', '2']);
    expect(two.code).toBe(0);
  });
});

describe('the estimate against a real worker', () => {
  it('is an upper bound of what the work adds to a worker process, within 3×', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [128, 512, 512],
      inputChunks: [64, 128, 128],
      manifest: {
        model: { url: model('tiny.onnx'), patchShape: [32, 64, 64], outputChannels: 2 },
        overlap: [4, 8, 8],
        chunkShape: [56, 448, 448],
        blend: 'bump',
      },
    });
    const probe = fileURLToPath(new URL('../helpers/memory-probe.ts', import.meta.url));
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', probe, path, join(d, 'state'), '4'],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    const r = JSON.parse(out.trim().split('\n').at(-1)!) as {
      loadedRss: number;
      peak: number;
      done: number;
      chunks: number;
      estimate: { bytes: number; parts: Record<string, number> };
    };
    expect(r.done).toBe(r.chunks);
    expect(r.chunks).toBeGreaterThan(2); // prefetch and write-behind both happen
    // What the work adds once the runtime and model are loaded: the chunk, accumulation,
    // output and batch buffers, and the garbage awaiting collection.
    const { input, accumulation, output, batch, garbage } = r.estimate.parts;
    const work = input! + accumulation! + output! + batch! + garbage!;
    const measured = r.peak - r.loadedRss;
    expect(measured).toBeGreaterThan(0);
    expect(work).toBeGreaterThanOrEqual(measured);
    expect(work).toBeLessThanOrEqual(3 * measured);
    // And the whole figure bounds the whole process.
    expect(r.estimate.bytes).toBeGreaterThanOrEqual(r.peak);
  });
});
