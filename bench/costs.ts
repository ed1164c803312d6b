// `npm run bench -- --only costs`: what the per-voxel stages of a chunk cost, in core-ns
// per voxel, each beside a floor measured in the same run on the same bytes. Single
// thread, CPU time (process.cpuUsage), so other load on a shared machine mostly drops out.
//
// Measured with the real functions: PartialSum.addPatch (accumulate), normalizeInto with
// and without a convert hook (normalise output), FastZstd at the output level (encode),
// and process start-up with and without the TypeScript loader. Stages not measured here
// yet (read + decode, normalise input, gather, seam work, ledger, IPC) are listed as such.

import { spawnSync } from 'node:child_process';
import { PartialSum } from '../core/blend/accumulator.ts';
import { weightSums } from '../core/blend/weight-sums.ts';
import { blendWeights } from '../core/blend/weights.ts';
import { Box, Plan, type Vec3 } from '../core/geometry/index.ts';
import { ZSTD_LEVEL } from '../core/volume/block-codec.ts';
import { FastZstd } from '../core/volume/zstd.ts';

export interface CostRow {
  stage: string;
  coreNsPerVoxel: number | undefined;
  floor: string;
  floorNsPerVoxel: number | undefined;
}

const PATCH: Vec3 = [32, 128, 128];
const OVERLAP: Vec3 = [8, 32, 32];
const CHANNELS = 2;

/** CPU nanoseconds `f` takes, the best of `reps` (the least disturbed by other load). */
async function cpuNs(f: () => unknown, reps = 5): Promise<number> {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) {
    const t0 = process.cpuUsage();
    await f();
    const d = process.cpuUsage(t0);
    best = Math.min(best, (d.user + d.system) * 1000);
  }
  return best;
}

/** Wall ns of a child process (start-up is single-threaded enough to read as core time). */
function spawnNs(args: string[], reps = 3): number {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`start-up probe ${args.join(' ')} exited ${r.status}`);
    best = Math.min(best, Number(process.hrtime.bigint() - t0));
  }
  return best;
}

export async function costsBench(o: {
  chunkShape: Vec3;
  volumeVoxels: number;
}): Promise<CostRow[]> {
  const shape = o.chunkShape;
  const plan = new Plan({
    volumeShape: shape,
    patchShape: PATCH,
    overlap: OVERLAP,
    chunkShape: shape,
  });
  const sums = weightSums(plan, 'bump');
  const box = new Box([0, 0, 0], shape);
  const voxels = box.size;
  const weights = blendWeights('bump', PATCH);
  const pv = PATCH[0] * PATCH[1] * PATCH[2];
  const out = new Float32Array(CHANNELS * pv);
  for (let i = 0; i < out.length; i++) out[i] = 1 / (1 + Math.exp(-((i % 997) / 100 - 5)));
  const patches: Box[] = [];
  const stride = PATCH.map((p, a) => p - OVERLAP[a]!);
  for (let z = 0; z + PATCH[0] <= shape[0]; z += stride[0]!)
    for (let y = 0; y + PATCH[1] <= shape[1]; y += stride[1]!)
      for (let x = 0; x + PATCH[2] <= shape[2]; x += stride[2]!)
        patches.push(new Box([z, y, x], [z + PATCH[0], y + PATCH[1], x + PATCH[2]]));
  const patchVoxels = patches.length * pv;
  const partial = new PartialSum(box, CHANNELS, sums);

  // Accumulate, and its floor: the same multiply-adds as one flat loop over the patch voxels.
  const accumulate = await cpuNs(() => {
    for (const p of patches) partial.addPatch(p, out, 0, weights);
  });
  const flat = new Float32Array(CHANNELS * pv);
  const bareLoop = await cpuNs(() => {
    for (let k = 0; k < patches.length; k++)
      for (let i = 0; i < pv; i++) {
        const wt = weights[i]!;
        flat[i]! += wt * out[i]!;
        flat[pv + i]! += wt * out[pv + i]!;
      }
  });

  // Normalise output: float32 (no convert) and uint8 (the convert hook), beside memcpy.
  const f32 = { box, channels: CHANNELS, data: new Float32Array(CHANNELS * voxels) };
  const u8 = { box, channels: CHANNELS, data: new Uint8Array(CHANNELS * voxels) };
  const normF32 = await cpuNs(() => partial.normalizeInto(f32, box));
  const normU8 = await cpuNs(() =>
    partial.normalizeInto(u8, box, (v) => Math.round(Math.min(1, Math.max(0, v)) * 255)),
  );
  const copy = new Float32Array(CHANNELS * voxels);
  const memcpy = await cpuNs(() => copy.set(partial.num.data));

  // Encode: the output codec (zstd at ZSTD_LEVEL) on the normalised float32 bytes, beside
  // zstd level 1 on the same bytes (the floor; equal while ZSTD_LEVEL is 1).
  const bytes = new Uint8Array(f32.data.buffer);
  const zstdOut = new FastZstd(ZSTD_LEVEL);
  const zstd1 = new FastZstd(1);
  const encode = await cpuNs(() => zstdOut.encode(bytes), 3);
  const encodeFloor = await cpuNs(() => zstd1.encode(bytes), 3);

  // Start-up: a worker process that loads the pipeline through tsx, beside bare node.
  const bare = spawnNs(['-e', '0']);
  const worker = spawnNs([
    '--import',
    'tsx',
    '-e',
    `await import(${JSON.stringify(new URL('../core/pipeline/worker.ts', import.meta.url).href)})`,
  ]);

  const per = (ns: number, n: number) => Math.round((ns / n) * 100) / 100;
  const notYet = (stage: string, floor: string): CostRow => ({
    stage,
    coreNsPerVoxel: undefined,
    floor,
    floorNsPerVoxel: undefined,
  });
  return [
    notYet('read + decode', 'zstd decode of the same bytes'),
    notYet('normalise', 'a bare loop over the voxels'),
    notYet('gather', 'memcpy of the patch bytes'),
    {
      stage: `accumulate (addPatch, ${CHANNELS} channels, per patch voxel)`,
      coreNsPerVoxel: per(accumulate, patchVoxels),
      floor: 'the same multiply-adds as one flat loop',
      floorNsPerVoxel: per(bareLoop, patchVoxels),
    },
    {
      stage: 'normalise output → float32 (per output voxel, both channels)',
      coreNsPerVoxel: per(normF32, voxels),
      floor: 'memcpy of the float32 sums',
      floorNsPerVoxel: per(memcpy, voxels),
    },
    {
      stage: 'normalise output → uint8 (convert hook)',
      coreNsPerVoxel: per(normU8, voxels),
      floor: 'memcpy of the float32 sums',
      floorNsPerVoxel: per(memcpy, voxels),
    },
    {
      stage: `encode (zstd level ${ZSTD_LEVEL}, float32 × ${CHANNELS})`,
      coreNsPerVoxel: per(encode, voxels),
      floor: 'zstd level 1 on the same bytes',
      floorNsPerVoxel: per(encodeFloor, voxels),
    },
    notYet('write', 'memcpy of the encoded bytes'),
    notYet('seam work', '—'),
    {
      stage: `start-up (node + tsx + worker modules, one worker process, per voxel of the ${o.volumeVoxels}-voxel bench volume)`,
      coreNsPerVoxel: per(worker, o.volumeVoxels),
      floor: 'node -e 0',
      floorNsPerVoxel: per(bare, o.volumeVoxels),
    },
    notYet('ledger', '—'),
    notYet('IPC', 'memcpy of the patch bytes'),
  ];
}

export function costsTable(rows: readonly CostRow[], when: string): string {
  const v = (n: number | undefined) => (n === undefined ? 'not measured yet' : String(n));
  return `<!-- costs -->
Per-stage costs (issue 17; \`npm run bench -- --only costs\`, ${when}): core-ns per voxel, one thread, CPU time (best of several repetitions), each stage beside its floor measured in the same run on the same bytes.

| stage | core-ns per voxel | floor | floor core-ns per voxel |
| --- | --- | --- | --- |
${rows.map((r) => `| ${r.stage} | ${v(r.coreNsPerVoxel)} | ${r.floor} | ${v(r.floorNsPerVoxel)} |`).join('\n')}
<!-- /costs -->`;
}
