// Inference of one chunk: every patch of the chunk (and no other), batched through the
// model, accumulated with blend weights into the partial sums over the chunk's footprint.

import { type Dense, indexOf } from '../array/dense.ts';
import { PartialSum } from '../blend/accumulator.ts';
import { type BlendKind, blendWeights } from '../blend/weights.ts';
import type { Box, ChunkDescriptor, Plan } from '../geometry/index.ts';
import type { PatchModel } from '../reference/sliding-window.ts';

export interface InferChunkOptions {
  plan: Plan;
  chunk: ChunkDescriptor;
  /** Normalised input over chunk.readBox (zeros outside the volume). */
  input: Dense<Float32Array>;
  model: PatchModel;
  blend: BlendKind;
  outputChannels: number;
  batchSize?: number;
  /** Called after each batch; lets the worker heartbeat or abort between batches. */
  onBatch?: (patchesDone: number) => void | Promise<void>;
  /** Inspect each batch's raw output before it is accumulated (e.g. reject NaN). */
  checkOutput?: (out: Float32Array) => void;
}

export async function inferChunk(o: InferChunkOptions): Promise<PartialSum> {
  const { plan, chunk, input } = o;
  const batchSize = Math.max(1, o.batchSize ?? 4);
  const patch = plan.patchShape;
  const pv = patch[0] * patch[1] * patch[2];
  const cin = input.channels;
  const weights = blendWeights(o.blend, patch);
  const acc = new PartialSum(chunk.footprint, o.outputChannels);
  const batch = new Float32Array(batchSize * cin * pv);
  const boxes: Box[] = [];
  let done = 0;

  const flush = async (): Promise<void> => {
    if (boxes.length === 0) return;
    const n = boxes.length;
    const view = n === batchSize ? batch : batch.subarray(0, n * cin * pv);
    const out = await o.model.run(view, n, patch);
    o.checkOutput?.(out);
    const outPerItem = o.outputChannels * pv;
    for (let i = 0; i < n; i++) acc.addPatch(boxes[i]!, out, i * outPerItem, weights);
    done += n;
    boxes.length = 0;
    await o.onBatch?.(done);
  };

  for (const box of plan.patches(chunk)) {
    gatherPatch(input, box, batch, boxes.length * cin * pv);
    boxes.push(box);
    if (boxes.length === batchSize) await flush();
  }
  await flush();
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
        const si = indexOf(input, [box.start[0] + z, box.start[1] + y, box.start[2]], c);
        batch.set(input.data.subarray(si, si + px), offset + ((c * pz + z) * py + y) * px);
      }
}
