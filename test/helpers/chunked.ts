// Assembles a chunked result exactly the way the pipeline does (owned blocks normalised
// from their one chunk, seam blocks from the sum of every contributor's partial), in
// memory, so the core invariance can be tested without any storage.

import { type Dense, dense } from '../../core/array/dense.ts';
import type { BlendKind } from '../../core/blend/index.ts';
import { PartialSum, weightSums } from '../../core/blend/index.ts';
import { Box, type Plan } from '../../core/geometry/index.ts';
import { inferChunk } from '../../core/infer/index.ts';
import type { PatchModel } from '../../core/reference/index.ts';

export function paddedInput(
  volume: Float32Array,
  shape: readonly [number, number, number],
  channels: number,
  box: Box,
): Dense<Float32Array> {
  const src = { box: Box.ofShape(shape), channels, data: volume };
  const out = dense(box, channels);
  // zero outside the volume: dense() starts at zero and copyBox clips.
  const b = box.intersect(src.box);
  for (let c = 0; c < channels; c++)
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++)
        for (let x = b.start[2]; x < b.stop[2]; x++) {
          const si = ((c * shape[0] + z) * shape[1] + y) * shape[2] + x;
          const bs = box.shape;
          const di =
            ((c * bs[0] + z - box.start[0]) * bs[1] + y - box.start[1]) * bs[2] + x - box.start[2];
          out.data[di] = volume[si]!;
        }
  return out;
}

export async function chunkedInference(o: {
  plan: Plan;
  volume: Float32Array;
  inputChannels: number;
  model: PatchModel;
  blend: BlendKind;
  outputChannels: number;
  batchSize?: number;
  chunkOrder?: number[];
}): Promise<Float32Array> {
  const { plan } = o;
  const region = plan.region;
  const result = dense(region, o.outputChannels);
  result.data.fill(Number.NaN);
  const partials = new Map<string, PartialSum[]>();
  const order = o.chunkOrder ?? [...Array(plan.counts.chunks).keys()];
  for (const index of order) {
    const chunk = plan.describeChunk(plan.chunkCoordAt(index));
    const input = paddedInput(o.volume, plan.volumeShape, o.inputChannels, chunk.readBox);
    const acc = await inferChunk({
      plan,
      chunk,
      input,
      model: o.model,
      blend: o.blend,
      outputChannels: o.outputChannels,
      batchSize: o.batchSize ?? 3,
    });
    for (const b of plan.ownedBlocks(chunk)) acc.normalizeInto(result, b.regionBox);
    for (const b of plan.seamBlocks(chunk)) {
      const list = partials.get(b.key) ?? [];
      list.push(acc.extract(b.box.intersect(chunk.footprint)));
      partials.set(b.key, list);
    }
  }
  for (const b of plan.seamBlockList()) {
    const sum = new PartialSum(b.box, o.outputChannels, weightSums(plan, o.blend));
    for (const p of partials.get(b.key) ?? []) sum.addPartial(p);
    sum.normalizeInto(result, b.regionBox);
  }
  return result.data;
}
