// A finished job's output written straight through the volume module (no workers): every
// level-0 block of the region, a pyramid, the root group. For tests of the output check
// (test/unit/output-check.test.ts, test/integration/output-check-s3.test.ts).
//
// Geometry, chosen so blocks of each kind sit at known coordinates (z has one block):
//
//   y: patches 4, overlap 2 → chunks [0,6) [4,10) [8,12);  blocks of 4: owned, seam, seam
//   x: patches 4, overlap 2 → chunks [0,10) [8,18) [16,24); blocks of 4:
//      owned owned seam owned seam owned
//
//   block (0,0,1): owned by chunk 0_0_0          block (0,1,2): chunks 0_0_0 0_0_1 0_1_0 0_1_1
//   block (0,0,3): owned by chunk 0_0_1          block (0,2,3): chunks 0_1_1 0_2_1

import { Plan } from '../../core/geometry/index.ts';
import type { OutputCheckContext } from '../../core/pipeline/output-check.ts';
import type { Store } from '../../core/store/index.ts';
import { createOutputVolume } from '../../core/volume/index.ts';
import { buildPyramid } from '../../core/volume/pyramid.ts';

export function fixturePlan(): Plan {
  return new Plan({
    volumeShape: [4, 12, 24],
    patchShape: [4, 4, 4],
    overlap: [0, 2, 2],
    chunkShape: [4, 6, 10],
    blockShape: [4, 4, 4],
  });
}

export async function writeFinishedOutput(
  store: Store,
  o: { pyramid?: number; jobId?: string } = {},
): Promise<OutputCheckContext> {
  const plan = fixturePlan();
  const channels = 2;
  const out = await createOutputVolume(store, {
    shape: plan.volumeShape,
    channels,
    dtype: 'float32',
    blockShape: plan.blockShape,
    ...(o.jobId ? { owner: o.jobId } : {}),
  });
  for (const b of plan.blocks()) {
    const data = new Float32Array(channels * b.box.size);
    for (let i = 0; i < data.length; i++) data[i] = Math.sin(i + b.coord[2] * 7 + b.coord[1]);
    await out.writeBlock(b.coord, { box: b.box, channels, data });
  }
  const pyramid = o.pyramid ?? 1;
  if (pyramid > 0) await buildPyramid(store, { levels: pyramid });
  return {
    plan,
    manifest: { model: { outputChannels: channels }, output: { dtype: 'float32', pyramid } },
    outputStore: store,
    input: { voxelSize: undefined },
  } as unknown as OutputCheckContext;
}
