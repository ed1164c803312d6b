// Inference of one chunk: every patch of the chunk (and no other), batched through the
// model, accumulated with blend weights into the partial sums over the chunk's footprint.

import { type Dense, offsetOf } from '../array/dense.ts';
import { PartialSum } from '../blend/accumulator.ts';
import { weightSums } from '../blend/weight-sums.ts';
import { type BlendKind, blendWeights } from '../blend/weights.ts';
import type { Box, ChunkDescriptor, Plan } from '../geometry/index.ts';
import type { PatchModel } from './patch-model.ts';
import { type TtaSpec, ttaTransforms, withTta } from './tta.ts';

export interface InferChunkOptions {
  plan: Plan;
  chunk: ChunkDescriptor;
  /** Normalised input over chunk.readBox (zeros outside the volume). */
  input: Dense<Float32Array>;
  model: PatchModel;
  /**
   * model.tta: each patch's output is the mean over the transforms, before blending (see
   * tta.ts). The worker passes the manifest's value, so every path that infers chunks gets it.
   */
  tta?: TtaSpec | undefined;
  blend: BlendKind;
  outputChannels: number;
  batchSize?: number;
  /** Called after each batch; lets the worker heartbeat or abort between batches. */
  onBatch?: (patchesDone: number) => void | Promise<void>;
  /** Called when a batch's output holds NaN or ±Infinity (it should throw). */
  onNonFinite?: () => void;
  /** Reused accumulator memory (see PartialSum). */
  buffer?: Float32Array;
  /**
   * input.mask: true for a patch (given its input box) not to infer. It adds nothing; the
   * weight sums are geometry's, so it counts as 0 with its usual weight.
   */
  skipPatch?: ((inputBox: Box) => boolean) | undefined;
}

export async function inferChunk(o: InferChunkOptions): Promise<PartialSum> {
  const { plan, chunk, input } = o;
  const batchSize = Math.max(1, o.batchSize ?? 4);
  // The grid is over output patches; a valid-convolution model reads a larger input patch.
  const patch = plan.patchShape;
  const pv = patch[0] * patch[1] * patch[2];
  const inPatch = plan.inputPatchShape;
  const iv = inPatch[0] * inPatch[1] * inPatch[2];
  const cin = input.channels;
  const model = withTta(o.model, ttaTransforms(o.tta, inPatch, patch));
  const weights = blendWeights(o.blend, patch);
  const acc = new PartialSum(
    chunk.footprint,
    o.outputChannels,
    weightSums(plan, o.blend),
    o.buffer,
  );
  const outPerItem = o.outputChannels * pv;
  // Two batch buffers: one is being filled while the model works on the other, and the
  // previous result is accumulated while the next batch computes (depth-2 pipeline).
  const buffers = [new Float32Array(batchSize * cin * iv), new Float32Array(batchSize * cin * iv)];
  let fill = 0;
  let boxes: Box[] = [];
  let inflight: Promise<{ out: Float32Array; boxes: Box[] }> | undefined;
  let done = 0;

  const drain = async (): Promise<void> => {
    if (!inflight) return;
    const { out, boxes: done_ } = await inflight;
    inflight = undefined;
    if (out.length !== done_.length * outPerItem) {
      throw new RangeError(
        `chunk ${chunk.id}: the model returned ${out.length} values for ${done_.length} patch(es); expected ${done_.length * outPerItem} (${o.outputChannels} channels × ${patch.join('×')}). Check model.outputChannels and model.outputPatchShape in the manifest`,
      );
    }
    let check = 0;
    for (let i = 0; i < done_.length; i++)
      check += acc.addPatch(done_[i]!, out, i * outPerItem, weights);
    if (!Number.isFinite(check)) o.onNonFinite?.();
    done += done_.length;
    await o.onBatch?.(done);
  };

  const dispatch = async (): Promise<void> => {
    if (boxes.length === 0) return;
    const n = boxes.length;
    const buf = buffers[fill]!;
    const view = n === batchSize ? buf : buf.subarray(0, n * cin * iv);
    const sent = boxes;
    const slot = fill;
    const transfer = model.runTransfer?.bind(model);
    // A threaded model takes the buffer itself (no copy) and hands it back with the result.
    const next = transfer
      ? transfer(view, n, inPatch, patch).then((r) => {
          buffers[slot] = new Float32Array(r.batch.buffer as ArrayBuffer);
          return { out: r.out, boxes: sent };
        })
      : model.run(view, n, inPatch, patch).then((out) => ({ out, boxes: sent }));
    // If accumulating the previous batch throws (abort, lost lease), this one is abandoned:
    // mark its rejection handled so it cannot crash the process.
    next.catch(() => {});
    await drain();
    inflight = next;
    fill = 1 - fill;
    boxes = [];
  };

  for (const box of plan.patches(chunk)) {
    const inBox = plan.inputBox(box);
    if (o.skipPatch?.(inBox)) continue;
    gatherPatch(input, inBox, buffers[fill]!, boxes.length * cin * iv);
    boxes.push(box);
    if (boxes.length === batchSize) await dispatch();
  }
  await dispatch();
  await drain();
  return acc;
}

/** Copies one patch (all channels) from the chunk input into the batch at `offset`. */
function gatherPatch(
  input: Dense<Float32Array>,
  box: Box,
  batch: Float32Array,
  offset: number,
): void {
  const [pz, py, px] = box.shape;
  for (let c = 0; c < input.channels; c++)
    for (let z = 0; z < pz; z++)
      for (let y = 0; y < py; y++) {
        const si = offsetOf(input.box, c, box.start[0] + z, box.start[1] + y, box.start[2]);
        batch.set(input.data.subarray(si, si + px), offset + ((c * pz + z) * py + y) * px);
      }
}
