// `tessera plan` reads the ONNX model (issue 18, item 4): it prints what the file declares
// (names, dtypes, static or symbolic dims) and what each dim was checked against, and
// refuses a mismatch naming both sides: the model's declared value and the manifest's
// (or the volume's). Models are written by test/fixtures/generate-models.ts;
// static-valid.onnx is a valid convolution declared 6×10×10 in, 4×8×8 out.

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planCommand } from '../../cli/plan-command.ts';
import { ModelSignatureError } from '../../core/model/index.ts';
import { FIXTURE_MODELS, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** `tessera plan` on a fresh job: its exit code and stdout, or what it threw. */
async function plan(modelFields: Record<string, unknown>) {
  const t = tempDir('tessera-plan-model-');
  cleanups.push(t.cleanup);
  const path = await writeJobDir(t.dir, {
    shape: [12, 20, 20],
    manifest: {
      model: { url: join(FIXTURE_MODELS, 'tiny.onnx'), outputChannels: 2, ...modelFields },
      overlap: [0, 0, 0],
      chunkShape: [8, 16, 16],
      blend: 'constant',
    },
  });
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await planCommand([path]), out };
  } catch (error) {
    return { out, error: error as Error };
  } finally {
    process.stdout.write = write;
  }
}

const valid = join(FIXTURE_MODELS, 'static-valid.onnx');

describe('tessera plan prints the model as declared and as checked', () => {
  it('a static valid-convolution model: dtypes, static dims, each checked against its field', async () => {
    const r = await plan({ url: valid, patchShape: [6, 10, 10], outputPatchShape: [4, 8, 8] });
    expect(r.error).toBeUndefined();
    expect(r.code).toBe(0);
    expect(r.out).toMatch(
      /^model +.*static-valid\.onnx: input "input" float32 \[batch, 1, 6, 10, 10\] → output "output" float32 \[batch, 2, 4, 8, 8\]$/m,
    );
    expect(r.out).toContain(
      `checked: input channels 1 = the input volume's 1, output channels 2 = model.outputChannels 2; ` +
        'spatial "input" [6, 10, 10] = model.patchShape [6, 10, 10], "output" [4, 8, 8] = model.outputPatchShape [4, 8, 8]',
    );
  });

  it('a model with symbolic spatial dims: said symbolic, taking the patch', async () => {
    const r = await plan({ patchShape: [4, 8, 8] });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/input "input" float32 \[batch, 1, z, y, x\]/);
    expect(r.out).toContain(
      'spatial "input" symbolic (takes model.patchShape [4, 8, 8]), "output" symbolic (takes model.patchShape (no model.outputPatchShape) [4, 8, 8])',
    );
  });

  it('a model with two outputs names the one it does not use', async () => {
    const r = await plan({
      url: join(FIXTURE_MODELS, 'two-outputs.onnx'),
      output: 'affinities',
      patchShape: [4, 8, 8],
    });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/^ +unused output "boundaries" float32 \[batch, 2, z, y, x\]$/m);
  });
});

describe('tessera plan refuses a mismatch, naming both sides', () => {
  const refused = (r: { error?: Error; out: string }) => {
    expect(r.error).toBeInstanceOf(ModelSignatureError);
    expect(r.out).toBe(''); // refused before any figure is printed
    return r.error as ModelSignatureError;
  };

  it('spatial output: the model says 4×8×8, model.outputPatchShape says 2×6×6', async () => {
    const e = refused(
      await plan({ url: valid, patchShape: [6, 10, 10], outputPatchShape: [2, 6, 6] }),
    );
    expect(e.fields).toEqual(['model.outputPatchShape']);
    expect(e.message).toContain('"output" is fixed at [4, 8, 8] (z, y, x)');
    expect(e.message).toContain('the job expects [2, 6, 6]');
  });

  it('spatial output: no model.outputPatchShape, so the job expects the input patch 6×10×10', async () => {
    const e = refused(await plan({ url: valid, patchShape: [6, 10, 10] }));
    expect(e.fields).toEqual(['model.outputPatchShape']);
    expect(e.message).toContain('fixed at [4, 8, 8]');
    expect(e.message).toContain('the job expects [6, 10, 10]');
  });

  it('spatial input: the model says 6×10×10, model.patchShape says 4×8×8', async () => {
    const e = refused(
      await plan({ url: valid, patchShape: [4, 8, 8], outputPatchShape: [4, 8, 8] }),
    );
    expect(e.fields).toEqual(['model.patchShape']);
    expect(e.message).toContain('"input" is fixed at [6, 10, 10] (z, y, x)');
    expect(e.message).toContain('model.patchShape is [4, 8, 8]');
  });

  it('input channels: the model takes 2, the volume has 1', async () => {
    const e = refused(
      await plan({ url: join(FIXTURE_MODELS, 'two-channel-input.onnx'), patchShape: [4, 8, 8] }),
    );
    expect(e.fields).toEqual(['input.url']);
    expect(e.message).toContain('takes 2 channel(s), but the input volume has 1');
  });

  it('output channels: the model gives 2, model.outputChannels says 3', async () => {
    const e = refused(await plan({ patchShape: [4, 8, 8], outputChannels: 3 }));
    expect(e.fields).toEqual(['model.outputChannels']);
    expect(e.message).toContain('has 2 channel(s), but model.outputChannels is 3');
  });
});
