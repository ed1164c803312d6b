// The model lines of `tessera plan`: what the ONNX file declares (names, dtypes, static or
// symbolic dims) and what each declared dim was checked against. The checks themselves
// are core/model/signature.ts's; a mismatch never gets here (plan refuses it first).

import type { ModelIo, ReadSignature, TensorSignature } from '../core/model/signature.ts';

export interface ModelSides {
  /** Channels of the input volume. */
  inputChannels: number;
  outputChannels: number;
  patchShape: readonly number[];
  outputPatchShape: readonly number[] | undefined;
}

const LABEL = 'model      ';
const MORE = '           ';

export function modelLines(
  model: { signature: ReadSignature; io: ModelIo },
  sides: ModelSides,
): string[] {
  const { signature: read, io } = model;
  const { inputs, outputs } = read.signature;
  const input = inputs.find((t) => t.name === io.inputName);
  const output = outputs.find((t) => t.name === io.outputName);
  const lines = [
    `${LABEL}${read.model}: input ${tensor(io.inputName, input)} → output ${tensor(io.outputName, output)}` +
      (outputs.length > 1 ? ` (model.output; ${outputs.length} outputs)` : ''),
  ];
  for (const other of outputs)
    if (other.name !== io.outputName)
      lines.push(`${MORE}unused output ${tensor(other.name, other)}`);
  const outPatch = sides.outputPatchShape ?? sides.patchShape;
  lines.push(
    `${MORE}checked: ${channels('input', io.inputChannels, `the input volume's ${sides.inputChannels}`)}, ` +
      `${channels('output', io.outputChannels, `model.outputChannels ${sides.outputChannels}`)}; ` +
      `spatial ${spatial(input, io.rank, 'model.patchShape', sides.patchShape)}, ` +
      `${spatial(output, io.rank, sides.outputPatchShape ? 'model.outputPatchShape' : 'model.patchShape (no model.outputPatchShape)', outPatch)}`,
  );
  return lines;
}

/** `"input" float32 [batch, 1, z, y, x]`: strings are symbolic dims, numbers static. */
function tensor(name: string, t: TensorSignature | undefined): string {
  if (t === undefined) return `"${name}"`;
  const shape = t.shape.length === 0 ? 'of unknown rank' : `[${t.shape.join(', ')}]`;
  return `"${name}" ${t.type} ${shape}`;
}

function channels(role: string, declared: number | undefined, other: string): string {
  return declared === undefined
    ? `${role} channels symbolic (${other})`
    : `${role} channels ${declared} = ${other}`;
}

function spatial(
  t: TensorSignature | undefined,
  rank: 4 | 5,
  field: string,
  patch: readonly number[],
): string {
  const role = t === undefined ? '' : `"${t.name}" `;
  const dims = t?.shape.slice(2) ?? [];
  const wanted = rank === 4 ? patch.slice(1) : patch;
  if (dims.length === 0 || dims.every((d) => typeof d !== 'number' || d <= 0))
    return `${role}symbolic (takes ${field} [${wanted.join(', ')}])`;
  return `${role}[${dims.join(', ')}] = ${field} [${wanted.join(', ')}]`;
}
