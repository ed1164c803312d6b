// A model's declared interface (its inputs' and outputs' names, dtypes and shapes) and the
// checks of it against Tessera's contract and the job's manifest. A mismatch here fails
// every chunk the same way, so it is found once: at plan (`tessera plan`, the run's plan
// step) and when a worker loads the model, never per chunk.
//
//   input  [n, inC, z, y, x]   float32 or float16, one of them   (4-D [n, c, y, x]: a 2D
//   output [n, outC, z, y, x]  float32 or float16, the chosen one  model, run slice by slice)
//            │   │    └──────── static sizes = model.patchShape / model.outputPatchShape
//            │   └───────────── static = the input volume's channels / model.outputChannels
//            └───────────────── static batch only with batches of exactly that size
//
// This module is pure (no inference runtime): the plan step imports it, and so does the
// planner Lambda, which must not carry the native runtime. Reading a signature from a file
// is readModelSignature, in runner.ts.

import type { InferenceSession } from 'onnxruntime-node';
// Types only: the runner is loaded by workers, which must not load the validator (zod).
import type { Manifest } from '../manifest/schema.ts';
import { type ModelIssue, ModelLoadError, ModelSignatureError } from './errors.ts';

type Triple = readonly [number, number, number];

export interface TensorSignature {
  readonly name: string;
  readonly isTensor: boolean;
  /** 'float32', 'int64', …; '' for a value that is not a tensor (a sequence, a map). */
  readonly type: string;
  /** Declared dims: a number is static, a string symbolic; [] when the rank is unknown. */
  readonly shape: readonly (number | string)[];
}

export interface ModelSignature {
  readonly inputs: readonly TensorSignature[];
  readonly outputs: readonly TensorSignature[];
}

/** What the job says about the model; every field optional (unknown: not checked). */
export interface ModelExpectation {
  /** model.output: the output to use. Required when the model has several. */
  readonly output?: string | undefined;
  readonly patchShape?: Triple | undefined;
  readonly outputPatchShape?: Triple | undefined;
  readonly outputChannels?: number | undefined;
  /** Channels of the input volume. */
  readonly inputChannels?: number | undefined;
  /** Patches per model call (the workers' --batch); a chunk's last call may hold fewer. */
  readonly batchSize?: number | undefined;
}

/** How the runner feeds the model and reads its result. */
/** A signature read from a model file (readModelSignature in runner.ts). */
export interface ReadSignature {
  /** The model's name in messages: its path, or the caller's name for bytes. */
  readonly model: string;
  readonly sha256: string;
  /** Size of the model file. */
  readonly bytes: number;
  readonly signature: ModelSignature;
}

/** The element types Tessera feeds and reads; float16 is converted at the boundary (float16.ts). */
export type TensorFloat = 'float32' | 'float16';

export interface ModelIo {
  /** 5 for a 3D model [n, c, z, y, x]; 4 for a 2D model [n, c, y, x]. */
  readonly rank: 4 | 5;
  readonly inputName: string;
  readonly outputName: string;
  readonly inputType: TensorFloat;
  readonly outputType: TensorFloat;
  /** Undefined where the model leaves the dim symbolic. */
  readonly inputChannels: number | undefined;
  readonly outputChannels: number | undefined;
}

/** The signature of an open session, as onnxruntime reports it. */
export function signatureOf(
  session: Pick<InferenceSession, 'inputMetadata' | 'outputMetadata'>,
): ModelSignature {
  const one = (m: InferenceSession.ValueMetadata): TensorSignature =>
    m.isTensor
      ? { name: m.name, isTensor: true, type: m.type, shape: [...m.shape] }
      : { name: m.name, isTensor: false, type: '', shape: [] };
  return { inputs: session.inputMetadata.map(one), outputs: session.outputMetadata.map(one) };
}

/** The expectation a manifest (and, once opened, its input volume) sets. */
export function modelExpectation(
  manifest: Pick<Manifest, 'model'>,
  o: { inputChannels?: number; batchSize?: number } = {},
): ModelExpectation {
  const m = manifest.model;
  // A plain object of plain values: it travels to the inference thread as workerData.
  return {
    ...(m.output !== undefined ? { output: m.output } : {}),
    patchShape: [...m.patchShape],
    ...(m.outputPatchShape ? { outputPatchShape: [...m.outputPatchShape] } : {}),
    outputChannels: m.outputChannels,
    ...(o.inputChannels !== undefined ? { inputChannels: o.inputChannels } : {}),
    ...(o.batchSize !== undefined ? { batchSize: o.batchSize } : {}),
  };
}

/**
 * Checks the signature against Tessera's contract and `expect`, and says how to run the
 * model. Throws ModelLoadError for what no manifest can fix (two inputs, a non-float32
 * input, an unusable rank), and ModelSignatureError listing every manifest mismatch.
 */
export function resolveModelIo(
  model: string,
  sig: ModelSignature,
  expect: ModelExpectation = {},
): ModelIo {
  const [input, ...moreInputs] = sig.inputs;
  if (input === undefined || moreInputs.length > 0) {
    throw new ModelLoadError(
      model,
      `has ${sig.inputs.length} inputs (${list(sig.inputs)}); Tessera feeds exactly one float32 ` +
        'tensor [n, c, z, y, x]. Export the model with a single image input.',
    );
  }
  if (sig.outputs.length === 0) {
    throw new ModelLoadError(model, 'has no outputs. Export the model with a float32 output.');
  }
  checkTensor(model, 'input', input);
  const issues: ModelIssue[] = [];
  const output = chooseOutput(sig.outputs, expect.output, issues);
  if (output === undefined) throw new ModelSignatureError(model, issues);
  checkTensor(model, 'output', output);
  const inRank: 4 | 5 = input.shape.length === 4 ? 4 : 5;
  const outRank = output.shape.length === 0 ? inRank : output.shape.length;
  if (outRank !== inRank) {
    throw new ModelLoadError(
      model,
      `input is ${inRank}-D but output "${output.name}" is ${outRank}-D; they must match.`,
    );
  }
  const io: ModelIo = {
    rank: inRank,
    inputName: input.name,
    outputName: output.name,
    inputType: input.type as TensorFloat,
    outputType: output.type as TensorFloat,
    inputChannels: staticDim(input, 1),
    outputChannels: staticDim(output, 1),
  };
  issues.push(...manifestIssues(io, input, output, expect));
  if (issues.length > 0) throw new ModelSignatureError(model, issues);
  return io;
}

/** resolveModelIo with the manifest's expectation: what `tessera plan` checks. */
export function checkModelAgainstManifest(
  model: string,
  sig: ModelSignature,
  manifest: Pick<Manifest, 'model'>,
  o: { inputChannels?: number; batchSize?: number } = {},
): ModelIo {
  return resolveModelIo(model, sig, modelExpectation(manifest, o));
}

function chooseOutput(
  outputs: readonly TensorSignature[],
  wanted: string | undefined,
  issues: ModelIssue[],
): TensorSignature | undefined {
  if (wanted !== undefined) {
    const found = outputs.find((o) => o.name === wanted);
    if (found === undefined)
      issues.push({
        field: 'model.output',
        message: `"${wanted}" names no output of the model; its outputs are ${list(outputs)}: set model.output to one of them`,
      });
    return found;
  }
  if (outputs.length > 1) {
    issues.push({
      field: 'model.output',
      message: `the model has ${outputs.length} outputs, ${list(outputs)}: set model.output to the name of the one to use`,
    });
    return undefined;
  }
  return outputs[0];
}

function checkTensor(model: string, role: 'input' | 'output', t: TensorSignature): void {
  if (!t.isTensor || (t.type !== 'float32' && t.type !== 'float16')) {
    throw new ModelLoadError(
      model,
      `${role} "${t.name}" is ${t.isTensor ? t.type : 'not a tensor'}; Tessera needs a ` +
        `float32 or float16 tensor. Export the model with a float32 (or float16) ${role}.`,
    );
  }
  // An empty shape means "unknown rank" (taken as 3D); a known rank must be 5, or 4 for
  // a 2D model applied slice by slice.
  if (t.shape.length !== 0 && t.shape.length !== 5 && t.shape.length !== 4) {
    throw new ModelLoadError(
      model,
      `${role} "${t.name}" has rank ${t.shape.length} ([${t.shape.join(', ')}]); ` +
        'Tessera needs 5-D [n, c, z, y, x] (3D) or 4-D [n, c, y, x] (2D, with patchShape z = 1).',
    );
  }
}

function manifestIssues(
  io: ModelIo,
  input: TensorSignature,
  output: TensorSignature,
  e: ModelExpectation,
): ModelIssue[] {
  const issues: ModelIssue[] = [];
  const batch = staticDim(input, 0);
  if (batch !== undefined && e.batchSize !== undefined && !(batch === 1 && e.batchSize === 1)) {
    issues.push({
      field: 'batch size (--batch)',
      message:
        `the model's input "${input.name}" has a fixed batch dim of ${batch}, but workers send up to ${e.batchSize} patches per call (fewer at a chunk's end): ` +
        `export the model with a dynamic batch dim${batch === 1 ? ', or run with --batch 1' : ''}`,
    });
  }
  if (
    io.inputChannels !== undefined &&
    e.inputChannels !== undefined &&
    io.inputChannels !== e.inputChannels
  ) {
    issues.push({
      field: 'input.url',
      message:
        `the model's input "${input.name}" takes ${io.inputChannels} channel(s), but the input volume has ${e.inputChannels}: ` +
        `give an input with ${io.inputChannels} channel(s) (input.url, input.array) or a model for ${e.inputChannels}`,
    });
  }
  if (
    io.outputChannels !== undefined &&
    e.outputChannels !== undefined &&
    io.outputChannels !== e.outputChannels
  ) {
    issues.push({
      field: 'model.outputChannels',
      message:
        `the model's output "${output.name}" has ${io.outputChannels} channel(s), but model.outputChannels is ${e.outputChannels}: ` +
        `set model.outputChannels to ${io.outputChannels}${e.output === undefined ? '' : ', or choose another model.output'}`,
    });
  }
  const patch = e.patchShape;
  if (patch === undefined) return issues;
  if (io.rank === 4 && patch[0] !== 1) {
    issues.push({
      field: 'model.patchShape',
      message: `the model is 2D (input [n, c, y, x]) and runs slice by slice, so model.patchShape[0] must be 1, not ${patch[0]}: set model.patchShape to [1, ${patch[1]}, ${patch[2]}]`,
    });
  }
  const inFixed = spatialMismatch(input, io.rank, patch);
  if (inFixed !== undefined) {
    issues.push({
      field: 'model.patchShape',
      message:
        `the model's input "${input.name}" is fixed at ${inFixed.declared} (z, y, x), but model.patchShape is [${patch.join(', ')}]: ` +
        `set model.patchShape to ${inFixed.suggested}, or export the model with dynamic spatial dims`,
    });
  }
  const outPatch = e.outputPatchShape ?? patch;
  const outFixed = spatialMismatch(output, io.rank, outPatch);
  // A model fixed at one size in and out needs one fix (the patch), not two.
  if (outFixed !== undefined && !(inFixed !== undefined && e.outputPatchShape === undefined)) {
    issues.push({
      field: 'model.outputPatchShape',
      message:
        `the model's output "${output.name}" is fixed at ${outFixed.declared} (z, y, x), but the job expects [${outPatch.join(', ')}]: ` +
        "outputs are blended voxel for voxel, so set model.outputPatchShape to the model's output size (a valid-convolution model), or export it with 'same' padding",
    });
  }
  return issues;
}

/**
 * The tensor's static spatial dims where they differ from `patch`, as written for a
 * message ('?' for symbolic ones), and the patch that would match; undefined if none differ.
 */
function spatialMismatch(
  t: TensorSignature,
  rank: 4 | 5,
  patch: Triple,
): { declared: string; suggested: string } | undefined {
  if (t.shape.length === 0) return undefined;
  // A 2D model's [y, x] are patch axes 1 and 2 (z is 1).
  const axes = rank === 4 ? [1, 2] : [0, 1, 2];
  const dims = axes.map((a, i) => ({ axis: a, dim: staticDim(t, 2 + i) }));
  if (dims.every((d) => d.dim === undefined || d.dim === patch[d.axis])) return undefined;
  const declared = `[${dims.map((d) => d.dim ?? '?').join(', ')}]`;
  const suggested = [...patch];
  for (const d of dims) if (d.dim !== undefined) suggested[d.axis] = d.dim;
  return { declared, suggested: `[${suggested.join(', ')}]` };
}

function staticDim(t: TensorSignature, i: number): number | undefined {
  const d = t.shape[i];
  return typeof d === 'number' && d > 0 ? d : undefined;
}

/** `"a" [batch, 1, z, y, x], "b" [batch, 3, z, y, x]`: names and declared shapes. */
function list(ts: readonly TensorSignature[]): string {
  return ts
    .map(
      (t) => `"${t.name}" ${t.isTensor ? `${t.type} [${t.shape.join(', ')}]` : '(not a tensor)'}`,
    )
    .join(', ');
}
