// float16 models: the converter at the runner's boundary against numpy's rounding
// (test/fixtures/float16/conversions.json, written by generate.py beside it), and the
// fp16 fixture models (float16 weights, input and outputs; test/fixtures/generate-models.ts)
// against their float32 originals within float16 tolerance, through the runner, its
// thread, a chosen one of several outputs, and test-time augmentation.

import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ttaTransforms, withTta } from '../../core/infer/index.ts';
import {
  fromFloat16Bits,
  ModelLoadError,
  ModelRunner,
  resolveModelIo,
  ThreadedModel,
  toFloat16Bits,
} from '../../core/model/index.ts';
import { TWO_OUTPUTS } from '../fixtures/generate-models.ts';
import { FIXTURE_MODELS } from '../helpers/job-dir.ts';

const fixture = JSON.parse(
  readFileSync(new URL('../fixtures/float16/conversions.json', import.meta.url), 'utf8'),
) as { narrow: [number, number][]; widen: [number, number][] };

const isHalfNaN = (h: number): boolean => (h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0;

describe('float16 conversion (core/model/float16.ts) against numpy', () => {
  it('rounds float32 to the float16 numpy gives: nearest even, subnormals, overflow to ∞', () => {
    const bits = new Uint32Array(fixture.narrow.map(([f]) => f));
    const got = toFloat16Bits(new Float32Array(bits.buffer));
    expect(fixture.narrow.length).toBeGreaterThan(1000);
    fixture.narrow.forEach(([f, h], i) => {
      const where = `float32 bits 0x${f.toString(16)}`;
      if (isHalfNaN(h)) expect(isHalfNaN(got[i]!), where).toBe(true);
      else expect(got[i], where).toBe(h);
    });
  });

  it('widens float16 bits exactly, as numpy does', () => {
    const got = fromFloat16Bits(new Uint16Array(fixture.widen.map(([h]) => h)));
    const want = new Float32Array(new Uint32Array(fixture.widen.map(([, f]) => f)).buffer);
    fixture.widen.forEach(([h], i) => {
      if (isHalfNaN(h)) expect(Number.isNaN(got[i]!)).toBe(true);
      else expect(Object.is(got[i], want[i]), `float16 bits 0x${h.toString(16)}`).toBe(true);
    });
  });
});

/** A smooth input with values in [-1, 1]. */
const input = (n: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => Math.sin(0.37 * i) * Math.cos(0.11 * i));

const maxAbsDiff = (a: Float32Array, b: Float32Array): number => {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
};

describe('float16 models', () => {
  it('accepts float16 input and output in the signature and says so', () => {
    const sig = (type: string) => ({
      inputs: [{ name: 'x', isTensor: true, type, shape: ['n', 1, 'z', 'y', 'x'] }],
      outputs: [{ name: 'y', isTensor: true, type, shape: ['n', 2, 'z', 'y', 'x'] }],
    });
    const io = resolveModelIo('m.onnx', sig('float16'));
    expect([io.inputType, io.outputType]).toEqual(['float16', 'float16']);
    expect(() => resolveModelIo('m.onnx', sig('int64'))).toThrow(ModelLoadError);
  });

  it('tiny-fp16 runs, fed and read as float32, within float16 tolerance of tiny', async () => {
    const full = await ModelRunner.open(
      { path: `${FIXTURE_MODELS}tiny.onnx` },
      { intraOpThreads: 1 },
    );
    const half = await ModelRunner.open(
      { path: `${FIXTURE_MODELS}tiny-fp16.onnx` },
      { intraOpThreads: 1 },
    );
    try {
      expect([half.inputType, half.outputType]).toEqual(['float16', 'float16']);
      const x = input(3 * 4 * 5 * 6);
      const a = await full.run(x, 3, [4, 5, 6]);
      const b = await half.run(x, 3, [4, 5, 6]);
      expect(b).toBeInstanceOf(Float32Array);
      // Sigmoid outputs in (0, 1): float16's spacing there is ≤ 2^-11; weights, input and
      // intermediates rounded too: a few units of it.
      const d = maxAbsDiff(a, b);
      expect(d).toBeLessThan(4e-3);
      // And it did run in float16: every output is a float16 value, not float32's.
      expect(d).toBeGreaterThan(0);
      expect(Array.from(fromFloat16Bits(toFloat16Bits(b)))).toEqual(Array.from(b));
    } finally {
      await full.close();
      await half.close();
    }
  });

  it('runs on the inference thread too', async () => {
    const threaded = await ThreadedModel.open(
      { path: `${FIXTURE_MODELS}tiny-fp16.onnx` },
      { intraOpThreads: 1 },
    );
    const full = await ModelRunner.open(
      { path: `${FIXTURE_MODELS}tiny.onnx` },
      { intraOpThreads: 1 },
    );
    try {
      const x = input(2 * 3 * 4 * 4);
      const b = await threaded.run(x, 2, [3, 4, 4]);
      expect(maxAbsDiff(await full.run(x, 2, [3, 4, 4]), b)).toBeLessThan(4e-3);
    } finally {
      await threaded.close();
      await full.close();
    }
  });

  it('several outputs: model.output picks one of a float16 model by name, with and without TTA', async () => {
    const open = (output: string) =>
      ModelRunner.open(
        { path: `${FIXTURE_MODELS}two-outputs-fp16.onnx` },
        { intraOpThreads: 1, expect: { output, outputChannels: 2 } },
      );
    const aff = await open('affinities');
    const bnd = await open('boundaries');
    try {
      const shape = [2, 4, 4] as const;
      const v = 2 * 4 * 4;
      const x = input(2 * v);
      const ttaAff = withTta(aff, ttaTransforms(['flips', 'rot90'], [...shape]));
      for (const [runner, model, name] of [
        [aff, aff, 'affinities'],
        [bnd, bnd, 'boundaries'],
        [aff, ttaAff, 'affinities'],
      ] as const) {
        const out = await model.run(x, 2, [...shape]);
        expect(runner.outputName).toBe(name);
        const { weight, bias, sigmoid } = TWO_OUTPUTS[name];
        // The generator's weights by hand (a 1×1×1 convolution: equivariant, so TTA keeps it).
        for (let b = 0; b < 2; b++)
          for (let c = 0; c < 2; c++)
            for (let i = 0; i < v; i++) {
              const lin = weight[c]! * x[b * v + i]! + bias[c]!;
              const want = sigmoid ? 1 / (1 + Math.exp(-lin)) : lin;
              expect(Math.abs(out[(b * 2 + c) * v + i]! - want)).toBeLessThan(4e-3);
            }
      }
    } finally {
      await aff.close();
      await bnd.close();
    }
  });
});
