// `tessera plan <manifest.json> [--json]`: what a run would do, without doing it.

import { openJob } from '../core/pipeline/index.ts';
import { MemoryStore } from '../core/store/index.ts';
import { loadManifest } from './job-files.ts';
import { parse } from './main.ts';

const USAGE = `Usage: tessera plan <manifest.json> [--json]

Prints chunk, patch, block and voxel counts and the inference saved compared with
chunk-margin cropping (chunkflow's scheme), without running anything.`;

export async function planCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(args, { json: { type: 'boolean' } }, USAGE);
  if (help) return 0;
  const [path] = positionals;
  if (!path) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const loaded = await loadManifest(path);
  const ctx = await openJob(loaded.manifest, {
    jobId: loaded.jobId,
    work: new MemoryStore(),
    baseDir: loaded.baseDir,
  });
  const { plan } = ctx;
  const c = plan.counts;
  const saved = 1 - c.patchVoxels / c.marginCroppingPatchVoxels;
  const summary = {
    jobId: loaded.jobId,
    volumeShape: plan.volumeShape,
    region: plan.region.toJSON(),
    patchShape: plan.patchShape,
    stride: plan.stride,
    chunkGrid: plan.chunkGrid,
    patchesPerChunk: plan.patchesPerChunk,
    blockShape: plan.blockShape,
    counts: c,
    redundancy: 1,
    marginCroppingRedundancy: c.marginCroppingPatchVoxels / c.patchVoxels,
    inferenceSavedVsMarginCropping: saved,
    objectsPerChunk: {
      ownedBlocks: c.ownedBlocks / c.chunks,
      seamPartials: c.seamPartials / c.chunks,
    },
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return 0;
  }
  const v = (x: readonly number[]): string => x.join('×');
  process.stdout.write(
    `${[
      `job        ${loaded.jobId}`,
      `volume     ${v(plan.volumeShape)} (z×y×x), region ${plan.region}`,
      `patches    ${v(plan.patchGrid)} = ${c.patches} of ${v(plan.patchShape)}, stride ${v(plan.stride)}`,
      `chunks     ${v(plan.chunkGrid)} = ${c.chunks}, ${v(plan.patchesPerChunk)} patches each`,
      `blocks     ${c.blocks} output blocks of ${v(plan.blockShape)}: ${c.ownedBlocks} written by one chunk, ${c.seamBlocks} seam blocks blended`,
      `voxels     ${c.regionVoxels} in the region, ${c.patchVoxels} patch voxels inferred`,
      `savings    margin cropping would infer ${c.marginCroppingPatchVoxels} patch voxels (${summary.marginCroppingRedundancy.toFixed(2)}×); Tessera infers each patch once (${(saved * 100).toFixed(1)}% less)`,
    ].join('\n')}\n`,
  );
  return 0;
}
