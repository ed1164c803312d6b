// A model's declared signature against the manifest, on real ONNX files written by the
// fixture generator (test/fixtures/generate-models.ts): read through onnxruntime, checked
// once at load (the runner, threaded or not) with one error naming the manifest field.

import { InferenceSession, Tensor } from 'onnxruntime-node';
import { describe, expect, it } from 'vitest';
import {
  ModelLoadError,
  ModelRunner,
  ModelSignatureError,
  modelExpectation,
  readModelSignature,
  resolveModelIo,
  ThreadedModel,
} from '../../core/model/index.ts';
import { TWO_OUTPUTS } from '../fixtures/generate-models.ts';
import { FIXTURE_MODELS } from '../helpers/job-dir.ts';

const path = (name: string) => `${FIXTURE_MODELS}${name}`;
const TWO = path('two-outputs.onnx');
const HUGE = path('static-huge.onnx');
const TINY = path('tiny.onnx');

async function signatureError(f: () => Promise<unknown>): Promise<ModelSignatureError> {
  const err = await f().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ModelSignatureError);
  return err as ModelSignatureError;
}

describe('readModelSignature', () => {
  it("reads every output's name, dtype and shape as the generator declared them", async () => {
    const { signature, bytes } = await readModelSignature({ path: TWO });
    expect(signature.inputs).toEqual([
      { name: 'input', isTensor: true, type: 'float32', shape: ['batch', 1, 'z', 'y', 'x'] },
    ]);
    expect(signature.outputs.map((o) => [o.name, o.shape])).toEqual([
      ['boundaries', ['batch', 2, 'z', 'y', 'x']],
      ['affinities', ['batch', 2, 'z', 'y', 'x']],
    ]);
    expect(bytes).toBeGreaterThan(0);
  });

  it('reads static spatial dims', async () => {
    const { signature } = await readModelSignature({ path: HUGE });
    expect(signature.inputs[0]?.shape).toEqual(['batch', 1, 100_000, 100_000, 100_000]);
  });
});

describe('checks against the manifest', () => {
  const manifest = (model: Record<string, unknown>) =>
    ({ model: { url: 'm.onnx', patchShape: [8, 16, 16], outputChannels: 2, ...model } }) as never;

  it('a model with two outputs needs model.output; the message lists both with their shapes', async () => {
    const { signature } = await readModelSignature({ path: TWO });
    const err = await signatureError(async () =>
      resolveModelIo('two.onnx', signature, modelExpectation(manifest({}))),
    );
    expect(err.issues).toHaveLength(1);
    expect(err.fields).toEqual(['model.output']);
    expect(err.message).toContain('"boundaries" float32 [batch, 2, z, y, x]');
    expect(err.message).toContain('"affinities" float32 [batch, 2, z, y, x]');
    expect(err.message).toContain('set model.output');
  });

  it('a model.output that names no output is refused, listing the outputs', async () => {
    const { signature } = await readModelSignature({ path: TWO });
    const err = await signatureError(async () =>
      resolveModelIo('two.onnx', signature, modelExpectation(manifest({ output: 'probs' }))),
    );
    expect(err.fields).toEqual(['model.output']);
    expect(err.message).toContain('"probs" names no output');
    expect(err.message).toContain('"affinities"');
  });

  it('static spatial dims that are not model.patchShape: one issue naming model.patchShape and the dims', async () => {
    const { signature } = await readModelSignature({ path: HUGE });
    const err = await signatureError(async () =>
      resolveModelIo('huge.onnx', signature, modelExpectation(manifest({}))),
    );
    expect(err.fields).toEqual(['model.patchShape']);
    expect(err.message).toContain('fixed at [100000, 100000, 100000]');
    expect(err.message).toContain('set model.patchShape to [100000, 100000, 100000]');
  });

  it('a static output channel dim that is not model.outputChannels names that field', async () => {
    const { signature } = await readModelSignature({ path: TINY });
    const err = await signatureError(async () =>
      resolveModelIo('tiny.onnx', signature, modelExpectation(manifest({ outputChannels: 3 }))),
    );
    expect(err.fields).toEqual(['model.outputChannels']);
    expect(err.message).toContain('has 2 channel(s), but model.outputChannels is 3');
  });

  it("a static input channel dim that is not the input volume's channels names input.url", async () => {
    const { signature } = await readModelSignature({ path: path('two-channel-input.onnx') });
    const err = await signatureError(async () =>
      resolveModelIo(
        'two-channel-input.onnx',
        signature,
        modelExpectation(manifest({}), { inputChannels: 1 }),
      ),
    );
    expect(err.fields).toEqual(['input.url']);
    expect(err.message).toContain('takes 2 channel(s), but the input volume has 1');
  });

  it('a 2D model needs model.patchShape z = 1', async () => {
    const { signature } = await readModelSignature({ path: path('slice2d.onnx') });
    const err = await signatureError(async () =>
      resolveModelIo('slice2d.onnx', signature, modelExpectation(manifest({}))),
    );
    expect(err.fields).toEqual(['model.patchShape']);
    expect(err.message).toContain('set model.patchShape to [1, 16, 16]');
    expect(
      resolveModelIo(
        'slice2d.onnx',
        signature,
        modelExpectation(manifest({ patchShape: [1, 16, 16] })),
      ).rank,
    ).toBe(4);
  });

  it('a model that fits passes and says how to run it', async () => {
    const { signature } = await readModelSignature({ path: TINY });
    expect(resolveModelIo('tiny.onnx', signature, modelExpectation(manifest({})))).toEqual({
      rank: 5,
      inputName: 'input',
      outputName: 'output',
      inputType: 'float32',
      outputType: 'float32',
      inputChannels: 1,
      outputChannels: 2,
    });
  });

  it('an unreadable model is a ModelLoadError at plan too', async () => {
    const err = await readModelSignature({ bytes: new Uint8Array([1, 2, 3]), name: 'junk.onnx' })
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ModelLoadError);
    expect((err as Error).message).toContain('junk.onnx');
  });
});

describe('at load: the runner', () => {
  it('refuses a model with two outputs when no output is chosen (it used to take the first)', async () => {
    const err = await signatureError(() => ModelRunner.open({ path: TWO }, { intraOpThreads: 1 }));
    expect(err.fields).toEqual(['model.output']);
  });

  it('refuses static 100000³ dims once, at open, not when a batch runs', async () => {
    const expect_ = modelExpectation({
      model: { url: 'm.onnx', patchShape: [4, 4, 4], outputChannels: 2 },
    } as never);
    const err = await signatureError(() =>
      ModelRunner.open({ path: HUGE }, { intraOpThreads: 1, expect: expect_ }),
    );
    expect(err.fields).toEqual(['model.patchShape']);
  });

  it('across the inference thread the error keeps its class and fields', async () => {
    const expect_ = modelExpectation({
      model: { url: 'm.onnx', patchShape: [4, 4, 4], outputChannels: 2 },
    } as never);
    const err = await signatureError(() =>
      ThreadedModel.open({ path: HUGE }, { intraOpThreads: 1, expect: expect_ }),
    );
    expect(err.fields).toEqual(['model.patchShape']);
    expect(err.message).toContain('fixed at [100000, 100000, 100000]');
  });

  it('model.output picks the second output: its values, as onnxruntime computes them', async () => {
    const runner = await ModelRunner.open(
      { path: TWO },
      {
        intraOpThreads: 1,
        expect: modelExpectation({
          model: { url: 'm.onnx', patchShape: [2, 3, 4], outputChannels: 2, output: 'affinities' },
        } as never),
      },
    );
    const input = Float32Array.from({ length: 24 }, (_, i) => i / 24);
    try {
      const got = await runner.run(input, 1, [2, 3, 4]);
      // The reference: onnxruntime itself, asked for "affinities" by name.
      const direct = await InferenceSession.create(TWO);
      const r = await direct.run({ input: new Tensor('float32', input, [1, 1, 2, 3, 4]) }, [
        'affinities',
      ]);
      await direct.release();
      expect(Array.from(got)).toEqual(Array.from(r.affinities!.data as Float32Array));
      // And the generator's weights by hand: channel 1 = 2·x − 1.
      const { weight, bias } = TWO_OUTPUTS.affinities;
      expect(got[24 + 5]).toBeCloseTo(weight[1] * input[5]! + bias[1], 6);
    } finally {
      await runner.close();
    }
  });
});
