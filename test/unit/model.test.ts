import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InferenceSession } from 'onnxruntime-node';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  ModelChecksumError,
  ModelInputError,
  ModelLoadError,
  ModelOutputError,
  ModelRunError,
  ModelRunner,
  ThreadedModel,
} from '../../core/model/index.ts';
import { generateModels, REPO_ROOT, writeModels } from '../fixtures/generate-models.ts';
import { membraneDemoSpec } from '../fixtures/membrane-demo-spec.ts';
import {
  buildConvNet,
  mulberry32,
  realisticSpec,
  referenceForward,
  tinySpec,
} from '../fixtures/models.ts';

const fixture = (name: string) => join(REPO_ROOT, 'test/fixtures/models', name);
const TINY = fixture('tiny.onnx');

const open: ModelRunner[] = [];
async function track(runner: Promise<ModelRunner>): Promise<ModelRunner> {
  const r = await runner;
  open.push(r);
  return r;
}
afterEach(async () => {
  vi.restoreAllMocks();
  await Promise.all(open.splice(0).map((r) => r.close()));
});

function randomInput(length: number, seed: number): Float32Array {
  const rand = mulberry32(seed);
  return Float32Array.from({ length }, () => rand() * 2 - 1);
}

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function std(a: Float32Array): number {
  const mean = a.reduce((s, v) => s + v, 0) / a.length;
  return Math.sqrt(a.reduce((s, v) => s + (v - mean) ** 2, 0) / a.length);
}

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');

describe('ModelRunner.open', () => {
  it('opens from a path and reads the IO description', async () => {
    const runner = await track(ModelRunner.open({ path: TINY }, { log: () => {} }));
    expect(runner.name).toBe(TINY);
    expect(runner.inputName).toBe('input');
    expect(runner.outputName).toBe('output');
    expect(runner.inputChannels).toBe(1);
    expect(runner.outputChannels).toBe(2);
    expect(runner.device).toBe('cpu');
    expect(runner.providers).toEqual(['cpu']);
    expect(runner.sha256).toBe(sha256(await readFile(TINY)));
  });

  it('opens from bytes, named by the caller', async () => {
    const bytes = buildConvNet(tinySpec());
    const runner = await track(ModelRunner.open({ bytes, name: 'tiny-in-memory' }));
    expect(runner.name).toBe('tiny-in-memory');
    expect(runner.outputChannels).toBe(2);
    const unnamed = await track(ModelRunner.open({ bytes }));
    expect(unnamed.name).toBe('<in-memory model>');
  });

  it('accepts a matching sha256, in either case', async () => {
    const bytes = await readFile(TINY);
    const hash = sha256(bytes);
    await expect(track(ModelRunner.open({ path: TINY }, { sha256: hash }))).resolves.toBeDefined();
    await expect(
      track(ModelRunner.open({ bytes }, { sha256: hash.toUpperCase() })),
    ).resolves.toBeDefined();
  });

  it('rejects a sha256 mismatch before onnxruntime sees the bytes', async () => {
    const create = vi.spyOn(InferenceSession, 'create');
    // Garbage bytes: if the session were created first this would be a load error.
    const corrupted = new Uint8Array([0xde, 0xad, 0xbe, 0xef, 1, 2, 3]);
    const expected = 'a'.repeat(64);
    const err = await ModelRunner.open(
      { bytes: corrupted, name: 'weights/net.onnx' },
      { sha256: expected },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelChecksumError);
    const e = err as ModelChecksumError;
    expect(e.name).toBe('ModelChecksumError');
    expect(e.expected).toBe(expected);
    expect(e.actual).toBe(sha256(corrupted));
    expect(e.message).toContain('weights/net.onnx');
    expect(e.message).toContain(expected);
    expect(e.message).toContain(sha256(corrupted));
    expect(e.message).toContain('model.sha256');
    expect(create).not.toHaveBeenCalled();

    // A valid model with a wrong pin is refused too, also without a session.
    await expect(ModelRunner.open({ path: TINY }, { sha256: expected })).rejects.toBeInstanceOf(
      ModelChecksumError,
    );
    expect(create).not.toHaveBeenCalled();
  });

  it('turns invalid bytes into ModelLoadError', async () => {
    const err = await ModelRunner.open({
      bytes: new Uint8Array([1, 2, 3, 4]),
      name: 'junk.onnx',
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as ModelLoadError).name).toBe('ModelLoadError');
    expect((err as ModelLoadError).message).toContain('junk.onnx');
    expect((err as ModelLoadError).cause).toBeInstanceOf(Error);
  });

  it('turns a missing file into ModelLoadError naming the path', async () => {
    const path = join(tmpdir(), 'tessera-no-such-model.onnx');
    const err = await ModelRunner.open({ path }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as ModelLoadError).model).toBe(path);
    expect((err as ModelLoadError).message).toContain(path);
  });

  it('falls back from gpu to cpu with one warning where CUDA is unusable', async () => {
    const log = vi.fn<(msg: string) => void>();
    const runner = await track(
      ModelRunner.open(
        { path: TINY },
        {
          device: 'gpu',
          gpu: { deviceId: 0, memoryLimitBytes: 2 ** 30, arenaExtendStrategy: 'kSameAsRequested' },
          log,
        },
      ),
    );
    // Written for both kinds of machine, so it stays honest where CUDA works.
    if (runner.device === 'gpu') {
      expect(runner.providers).toEqual(['cuda', 'cpu']);
      expect(log).not.toHaveBeenCalled();
    } else {
      expect(runner.providers).toEqual(['cpu']);
      expect(log).toHaveBeenCalledTimes(1);
      expect(log.mock.calls[0]![0]).toMatch(/CUDA/);
    }
    const input = randomInput(6 * 7 * 8, 7);
    const out = await runner.run(input, 1, [6, 7, 8]);
    const ref = referenceForward(tinySpec(), input, [1, 1, 6, 7, 8]);
    expect(maxAbsDiff(out, ref.data)).toBeLessThan(1e-5);
  });

  it('respects intraOpThreads and rejects nonsense', async () => {
    const runner = await track(ModelRunner.open({ path: TINY }, { intraOpThreads: 1 }));
    const out = await runner.run(randomInput(4 * 4 * 4, 1), 1, [4, 4, 4]);
    expect(out.length).toBe(2 * 64);
    await expect(ModelRunner.open({ path: TINY }, { intraOpThreads: 0 })).rejects.toBeInstanceOf(
      RangeError,
    );
  });
});

describe('ModelRunner.run', () => {
  it('matches a plain-JS convolution on one patch and on a batch of 3', async () => {
    const runner = await track(ModelRunner.open({ path: TINY }));
    const spec = tinySpec();
    for (const n of [1, 3]) {
      const input = randomInput(n * 6 * 7 * 8, 100 + n);
      const out = await runner.run(input, n, [6, 7, 8]);
      const ref = referenceForward(spec, input, [n, 1, 6, 7, 8]);
      expect(ref.dims).toEqual([n, 2, 6, 7, 8]);
      expect(maxAbsDiff(out, ref.data)).toBeLessThan(1e-5);
    }
  });

  it('reads a batch that is a view into a larger buffer', async () => {
    const runner = await track(ModelRunner.open({ path: TINY }));
    const voxels = 5 * 5 * 5;
    const backing = randomInput(voxels + 17, 5);
    const view = backing.subarray(17);
    const out = await runner.run(view, 1, [5, 5, 5]);
    const ref = referenceForward(tinySpec(), Float32Array.from(view), [1, 1, 5, 5, 5]);
    expect(maxAbsDiff(out, ref.data)).toBeLessThan(1e-5);
  });

  it('computes identity2 exactly', async () => {
    const runner = await track(ModelRunner.open({ path: fixture('identity2.onnx') }));
    const input = randomInput(2 * 3 * 4 * 5, 9);
    const out = await runner.run(input, 2, [3, 4, 5]);
    const v = 3 * 4 * 5;
    for (let b = 0; b < 2; b++) {
      for (let i = 0; i < v; i++) {
        const x = input[b * v + i]!;
        expect(out[(b * 2 + 0) * v + i]).toBe(x);
        expect(out[(b * 2 + 1) * v + i]).toBe(Math.fround(x * 0.5 + 0.25));
      }
    }
  });

  it('realistic.onnx is not saturated and matches the plain-JS forward pass', async () => {
    const runner = await track(ModelRunner.open({ path: fixture('realistic.onnx') }));
    const input = randomInput(2 * 8 * 8 * 8, 11);
    const out = await runner.run(input, 2, [8, 8, 8]);
    expect(std(out)).toBeGreaterThan(0.01);
    expect(out.every((v) => v > 0.001 && v < 0.999)).toBe(true);
    const ref = referenceForward(realisticSpec(), input, [2, 1, 8, 8, 8]);
    expect(maxAbsDiff(out, ref.data)).toBeLessThan(1e-5);
  });

  it('passes NaN through (the caller decides)', async () => {
    const runner = await track(ModelRunner.open({ path: fixture('nan.onnx') }));
    const out = await runner.run(randomInput(4 * 4 * 4, 3), 1, [4, 4, 4]);
    expect(out.length).toBe(2 * 64);
    expect(out.every(Number.isNaN)).toBe(true);
  });

  it('rejects a wrong-shaped output with ModelOutputError', async () => {
    const runner = await track(ModelRunner.open({ path: fixture('wrong-shape.onnx') }));
    expect(runner.outputChannels).toBe(3);
    const err = await runner
      .run(randomInput(2 * 6 * 6 * 6, 4), 2, [6, 6, 6])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelOutputError);
    const e = err as ModelOutputError;
    expect(e.name).toBe('ModelOutputError');
    expect(e.expectedDims).toEqual([2, 3, 6, 6, 6]);
    expect(e.actualDims).toEqual([2, 3, 4, 4, 4]);
    expect(e.message).toContain('wrong-shape.onnx');
    expect(e.message).toMatch(/padding/);
  });

  it('infers input channels for a model that leaves them symbolic', async () => {
    const bytes = buildConvNet({ ...tinySpec(), symbolicChannels: true });
    const runner = await track(ModelRunner.open({ bytes, name: 'symbolic' }));
    expect(runner.inputChannels).toBeUndefined();
    // onnxruntime's shape inference still pins the output channels from the conv weights.
    expect(runner.outputChannels).toBe(2);
    const input = randomInput(2 * 4 * 4 * 4, 12);
    const out = await runner.run(input, 2, [4, 4, 4]);
    const ref = referenceForward(tinySpec(), input, [2, 1, 4, 4, 4]);
    expect(maxAbsDiff(out, ref.data)).toBeLessThan(1e-5);

    // Two channels fit the batch length but not the conv weights: onnxruntime fails.
    const err = await runner.run(randomInput(2 * 64, 13), 1, [4, 4, 4]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelRunError);
    expect((err as ModelRunError).inputDims).toEqual([1, 2, 4, 4, 4]);
    expect((err as ModelRunError).cause).toBeInstanceOf(Error);
    expect((err as ModelRunError).message).toContain('symbolic');
  });

  it('rejects a batch whose length does not match n and patch', async () => {
    const runner = await track(ModelRunner.open({ path: TINY }));
    await expect(runner.run(new Float32Array(63), 1, [4, 4, 4])).rejects.toBeInstanceOf(
      ModelInputError,
    );
    await expect(runner.run(new Float32Array(64), 0, [4, 4, 4])).rejects.toBeInstanceOf(
      ModelInputError,
    );
  });

  it('refuses to run after close, and close is idempotent', async () => {
    const runner = await ModelRunner.open({ path: TINY });
    await runner.close();
    await runner.close();
    await expect(runner.run(new Float32Array(64), 1, [4, 4, 4])).rejects.toBeInstanceOf(
      ModelRunError,
    );
  });
});

describe('ThreadedModel.close', () => {
  it('answers every run already sent, then releases the session and lets the thread exit', async () => {
    // Terminating the thread under a run crashed worker processes at exit (killed by a
    // signal after a failed chunk left a batch in flight). Close now drains first.
    const model = await ThreadedModel.open({ path: TINY }, { intraOpThreads: 1 });
    const patch: [number, number, number] = [6, 10, 10];
    const inputs = [1, 2, 3].map((seed) => randomInput(2 * 600, seed));
    const direct = await track(ModelRunner.open({ path: TINY }, { intraOpThreads: 1 }));
    const expected = await Promise.all(inputs.map((b) => direct.run(b, 2, patch)));
    const runs = inputs.map((b) => model.run(b, 2, patch));
    await Promise.all([model.close(), model.close()]);
    const outs = await Promise.all(runs);
    for (let i = 0; i < outs.length; i++) expect(maxAbsDiff(outs[i]!, expected[i]!)).toBe(0);
    // The thread is gone: a later run is refused rather than left hanging.
    await expect(model.run(inputs[0]!, 2, patch)).rejects.toThrow(/closed|exited/);
  });
});

describe('ThreadedModel errors', () => {
  it("arrive as the model module's classes, payload and message intact", async () => {
    const garbage = await ThreadedModel.open(
      { bytes: new Uint8Array([1, 2, 3]), name: 'garbage' },
      { intraOpThreads: 1 },
    ).catch((e: unknown) => e);
    expect(garbage).toBeInstanceOf(ModelLoadError);
    expect(garbage).toMatchObject({ model: 'garbage' });
    expect((garbage as Error).message).toMatch(/^model garbage: /);

    const model = await ThreadedModel.open({ path: TINY }, { intraOpThreads: 1 });
    try {
      const direct = await track(ModelRunner.open({ path: TINY }, { intraOpThreads: 1 }));
      const bad = new Float32Array(7);
      const here = await direct.run(bad, 1, [4, 4, 4]).catch((e: unknown) => e);
      const there = await model.run(bad, 1, [4, 4, 4]).catch((e: unknown) => e);
      expect(here).toBeInstanceOf(ModelInputError);
      expect(there).toBeInstanceOf(ModelInputError);
      expect((there as ModelInputError).message).toBe((here as ModelInputError).message);
      expect((there as ModelInputError).detail).toBe((here as ModelInputError).detail);
    } finally {
      await model.close();
    }
    await expect(model.run(new Float32Array(64), 1, [4, 4, 4])).rejects.toBeInstanceOf(
      ModelRunError,
    );
  });
});

describe('fixture models', () => {
  it('the generator is deterministic and matches the committed files', async () => {
    const again = generateModels();
    const dir = await mkdtemp(join(tmpdir(), 'tessera-models-'));
    try {
      await writeModels(dir);
      for (const [rel, bytes] of generateModels()) {
        const committed = await readFile(join(REPO_ROOT, rel));
        const regenerated = await readFile(join(dir, rel));
        expect(Buffer.compare(regenerated, committed), rel).toBe(0);
        expect(Buffer.compare(Buffer.from(bytes), Buffer.from(again.get(rel)!)), rel).toBe(0);
        expect(committed.length, rel).toBeLessThan(1_000_000);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('membrane-demo marks a bright sphere: foreground inside, boundary at its surface', async () => {
    const runner = await track(
      ModelRunner.open({ path: join(REPO_ROOT, 'models/membrane-demo.onnx') }),
    );
    expect(runner.inputChannels).toBe(1);
    expect(runner.outputChannels).toBe(2);
    const s = 24;
    const r = 7;
    const c = (s - 1) / 2;
    const volume = new Float32Array(s ** 3);
    for (let z = 0; z < s; z++)
      for (let y = 0; y < s; y++)
        for (let x = 0; x < s; x++) {
          const d = Math.hypot(z - c, y - c, x - c);
          volume[(z * s + y) * s + x] = d <= r ? 0.9 : 0.1;
        }
    const out = await runner.run(volume, 1, [s, s, s]);
    const at = (ch: number, z: number, y: number, x: number) =>
      out[ch * s ** 3 + (z * s + y) * s + x]!;
    const mid = Math.floor(c);
    const surface = Math.round(c + r);
    // Centre of the sphere, a voxel on its surface along x, and a far corner.
    expect(at(1, mid, mid, mid)).toBeGreaterThan(0.9);
    expect(at(1, 2, 2, 2)).toBeLessThan(0.1);
    expect(at(0, mid, mid, surface)).toBeGreaterThan(0.5);
    expect(at(0, mid, mid, mid)).toBeLessThan(0.2);
    expect(at(0, 2, 2, 2)).toBeLessThan(0.2);

    // A dark one-voxel sheet between bright regions, as a membrane looks in EM.
    const sheet = new Float32Array(s ** 3).map((_, i) => (i % s === mid ? 0.15 : 0.8));
    const sheetOut = await runner.run(sheet, 1, [s, s, s]);
    const onSheet = (mid * s + mid) * s + mid;
    const inCell = (mid * s + mid) * s + mid + 6;
    expect(sheetOut[onSheet]).toBeGreaterThan(0.8);
    expect(sheetOut[inCell]).toBeLessThan(0.2);
    expect(sheetOut[s ** 3 + onSheet]).toBeLessThan(0.2);
    expect(sheetOut[s ** 3 + inCell]).toBeGreaterThan(0.8);

    // Same weights as the committed file.
    const rebuilt = buildConvNet(membraneDemoSpec());
    expect(runner.sha256).toBe(sha256(rebuilt));
  });
});

describe('2D models', () => {
  it('run [n, c, y, x] on z = 1 patches and refuse thicker patches, naming the fix', async () => {
    const { ModelRunner: Runner, ModelInputError: InputError } = await import(
      '../../core/model/index.ts'
    );
    const runner = await Runner.open(
      { path: new URL('../fixtures/models/slice2d.onnx', import.meta.url).pathname },
      { intraOpThreads: 1 },
    );
    try {
      expect(runner.rank).toBe(4);
      const out = await runner.run(new Float32Array(2 * 5 * 6).fill(0.5), 2, [1, 5, 6]);
      expect(out.length).toBe(2 * 2 * 5 * 6);
      await expect(runner.run(new Float32Array(2 * 5 * 6), 1, [2, 5, 6])).rejects.toThrow(
        InputError,
      );
      await expect(runner.run(new Float32Array(2 * 5 * 6), 1, [2, 5, 6])).rejects.toThrow(
        /patchShape\[0\] must be 1/,
      );
    } finally {
      await runner.close();
    }
  });
});
