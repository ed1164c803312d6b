// How a blended float becomes the stored output value, and the block it is stored in.
//
// One path for every writer of a final block (a worker's owned blocks, the seam blend,
// a shard's assembly): the block's blended values (Σw·f / Σw) are normalised, then
// `output.transform` runs across channels voxel by voxel, then the result is converted to
// the stored dtype. Because the transform sees only the blended value of one voxel, labels
// are as chunking-invariant as the blend itself.

import { type Dense, fillBox, offsetOf } from '../array/dense.ts';
import type { PartialSum } from '../blend/index.ts';
import type { Box } from '../geometry/index.ts';
import type { Manifest } from '../manifest/index.ts';

export type OutputDtype = 'float32' | 'uint8';

/** output.transform, as the manifest writes it. */
export type OutputTransform = 'argmax' | 'sigmoid' | 'softmax' | { readonly threshold: number };

/** What the output array holds: its channels, dtype, and the transform that makes them. */
export interface StoredOutput {
  readonly channels: number;
  readonly dtype: OutputDtype;
  /** The model's channels, which the blend sums (the stored ones differ under argmax). */
  readonly modelChannels: number;
  readonly transform?: OutputTransform | undefined;
}

/** The stored output of a manifest: argmax makes one channel; the others keep the model's. */
export function storedOutput(m: {
  output: Pick<Manifest['output'], 'dtype' | 'transform'>;
  model: Pick<Manifest['model'], 'outputChannels'>;
}): StoredOutput {
  const t = m.output.transform;
  return {
    channels: t === 'argmax' ? 1 : m.model.outputChannels,
    dtype: m.output.dtype,
    modelChannels: m.model.outputChannels,
    transform: t,
  };
}

/** True when the stored values are labels (argmax) or masks (threshold), not intensities. */
export function isLabelOutput(t: OutputTransform | undefined): boolean {
  return t === 'argmax' || typeof t === 'object';
}

const toUint8 = (v: number): number => Math.round(Math.min(1, Math.max(0, v)) * 255);

/**
 * The conversion for a stored dtype; undefined when values are stored as they are
 * (float32, or labels and masks, which are small integers already), so the normalising
 * loop makes no call per voxel.
 */
export function outputConverter(
  dtype: OutputDtype,
  transform?: OutputTransform,
): ((v: number) => number) | undefined {
  return dtype === 'uint8' && !isLabelOutput(transform) ? toUint8 : undefined;
}

/**
 * A zeroed block of the output's dtype. `reuse`, when it is of that dtype and large
 * enough, provides the memory (a view of its start): the caller must be done with the
 * block it held before.
 */
export function outputBlock(
  dtype: OutputDtype,
  box: Box,
  channels: number,
  reuse?: Float32Array | Uint8Array,
): Dense<Float32Array | Uint8Array> {
  const n = channels * box.size;
  const fits =
    reuse !== undefined &&
    reuse.length >= n &&
    reuse.byteOffset === 0 &&
    (dtype === 'uint8' ? reuse instanceof Uint8Array : reuse instanceof Float32Array);
  const data = fits
    ? reuse.subarray(0, n)
    : dtype === 'uint8'
      ? new Uint8Array(n)
      : new Float32Array(n);
  const block = { box, channels, data };
  // Voxels outside the region keep the fill value (0).
  fillBox(block, box, 0);
  return block;
}

/**
 * Applies `transform` to one voxel's channel values `v` (modified in place for sigmoid and
 * softmax), writing the stored channels into `out`: argmax writes out[0] (the lowest index
 * among equal maxima), threshold 1 where v[c] > t else 0.
 */
export function transformVoxel(
  transform: OutputTransform,
  v: Float64Array,
  out: Float64Array,
): void {
  const n = v.length;
  if (transform === 'argmax') {
    let best = 0;
    for (let c = 1; c < n; c++) if (v[c]! > v[best]!) best = c;
    out[0] = best;
  } else if (transform === 'sigmoid') {
    for (let c = 0; c < n; c++) out[c] = 1 / (1 + Math.exp(-v[c]!));
  } else if (transform === 'softmax') {
    // Shifted by the maximum so that large logits do not overflow exp.
    let max = -Infinity;
    for (let c = 0; c < n; c++) max = Math.max(max, v[c]!);
    let sum = 0;
    for (let c = 0; c < n; c++) {
      out[c] = Math.exp(v[c]! - max);
      sum += out[c]!;
    }
    for (let c = 0; c < n; c++) out[c] = out[c]! / sum;
  } else {
    for (let c = 0; c < n; c++) out[c] = v[c]! > transform.threshold ? 1 : 0;
  }
}

/** Reusable memory for finalBlock: the stored block and, under a transform, the blended one. */
export interface FinalScratch {
  out?: Float32Array | Uint8Array | undefined;
  blended?: Float32Array | Uint8Array | undefined;
}

/**
 * The blended float block → the stored block: `sum` normalised over `regionBox` (voxels of
 * `box` outside it stay 0), transformed across channels, converted to the stored dtype.
 */
export function finalBlock(
  stored: StoredOutput,
  sum: PartialSum,
  box: Box,
  regionBox: Box,
  scratch: FinalScratch = {},
): Dense<Float32Array | Uint8Array> {
  const out = outputBlock(stored.dtype, box, stored.channels, scratch.out);
  if (out.data.buffer !== scratch.out?.buffer) scratch.out = out.data;
  const t = stored.transform;
  if (t === undefined) {
    sum.normalizeInto(out, regionBox, outputConverter(stored.dtype));
    return out;
  }
  const blended = outputBlock('float32', box, stored.modelChannels, scratch.blended);
  if (blended.data.buffer !== scratch.blended?.buffer) scratch.blended = blended.data;
  sum.normalizeInto(blended, regionBox);
  const convert = outputConverter(stored.dtype, t);
  const r = regionBox.intersect(box);
  if (r.isEmpty()) return out;
  const v = new Float64Array(stored.modelChannels);
  const o = new Float64Array(stored.modelChannels);
  const stride = box.size;
  const src = blended.data;
  const dst = out.data;
  for (let z = r.start[0]; z < r.stop[0]; z++)
    for (let y = r.start[1]; y < r.stop[1]; y++)
      for (let x = r.start[2]; x < r.stop[2]; x++) {
        const i = offsetOf(box, 0, z, y, x);
        for (let c = 0; c < v.length; c++) v[c] = src[c * stride + i]!;
        transformVoxel(t, v, o);
        for (let c = 0; c < stored.channels; c++)
          dst[c * stride + i] = convert ? convert(o[c]!) : o[c]!;
      }
  return out;
}
