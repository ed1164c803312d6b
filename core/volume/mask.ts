// input.mask: a volume at a coarser scale (e.g. a tissue mask at mip 4) that says where
// there is anything to infer. A patch whose INPUT box, mapped to mask scale, holds no mask
// voxel above the threshold is not sent to the model: it contributes 0 with its usual
// weight (the weight sums are geometry's, core/blend/weight-sums.ts), so the result does
// not depend on chunking.
//
// Mapping: input voxel i lies in mask voxel floor(i / f). An input box [a, b) on an axis
// covers mask voxels [floor(a / f), ceil(b / f)), clipped to the mask; what lies outside
// the volume (the zero padding of edge patches) is no tissue.

import { Box, type ChunkDescriptor, type Plan, type Vec3 } from '../geometry/index.ts';
import type { InputVolume } from './input.ts';

export interface MaskSpec {
  /** Input voxels per mask voxel, [z, y, x], positive integers. */
  readonly factor: Vec3;
  /** Mask voxels above it are tissue. */
  readonly threshold: number;
}

/** Thrown when input.mask does not fit the input: names the field and what to do. */
export class MaskMismatchError extends Error {
  override readonly name = 'MaskMismatchError';
  constructor(
    readonly field: 'input.mask.factor' | 'input.mask.url',
    detail: string,
  ) {
    super(`${field}: ${detail}`);
  }
}

/** The mask box (at mask scale) an input box maps onto, clipped to the mask's shape. */
export function maskBoxOf(inputBox: Box, factor: Vec3, maskShape: Vec3): Box {
  const start: number[] = [];
  const stop: number[] = [];
  for (let a = 0; a < 3; a++) {
    const f = factor[a]!;
    const lo = Math.floor(inputBox.start[a]! / f);
    const hi = Math.ceil(inputBox.stop[a]! / f);
    start.push(Math.min(Math.max(lo, 0), maskShape[a]!));
    stop.push(Math.min(Math.max(hi, 0), maskShape[a]!));
  }
  return new Box(start as unknown as Vec3, stop as unknown as Vec3);
}

/**
 * The factor relative to the input: `factor` as given, else the ratio of the mask's voxel
 * size to the input's (OME-Zarr), which must be a whole number per axis. Checks that the
 * mask covers ceil(input / factor).
 */
export function maskFactor(
  input: { shape: Vec3; voxelSize?: Vec3 | undefined },
  mask: { shape: Vec3; voxelSize?: Vec3 | undefined; channels: number },
  factor: Vec3 | undefined,
): Vec3 {
  let f = factor;
  if (f === undefined) {
    if (!input.voxelSize || !mask.voxelSize)
      throw new MaskMismatchError(
        'input.mask.factor',
        'is not given and cannot be derived: the input or the mask has no OME-Zarr voxel size; give the factor, e.g. [16, 16, 16] for a mip-4 mask',
      );
    const derived = [0, 1, 2].map((a) => mask.voxelSize![a]! / input.voxelSize![a]!);
    const rounded = derived.map((r) => Math.round(r));
    if (derived.some((r, a) => rounded[a]! < 1 || Math.abs(r - rounded[a]!) > 1e-6 * r))
      throw new MaskMismatchError(
        'input.mask.factor',
        `the mask's voxel size [${mask.voxelSize.join(', ')}] over the input's [${input.voxelSize.join(', ')}] is [${derived.join(', ')}], not whole numbers >= 1; give the factor explicitly`,
      );
    f = rounded as unknown as Vec3;
  }
  if (mask.channels !== 1)
    throw new MaskMismatchError(
      'input.mask.url',
      `the mask has ${mask.channels} channels; it must have one (a [z, y, x] array)`,
    );
  const need = input.shape.map((s, a) => Math.ceil(s / f[a]!));
  if (mask.shape.some((s, a) => s < need[a]!))
    throw new MaskMismatchError(
      'input.mask.url',
      `the mask's shape [${mask.shape.join(', ')}] does not cover the input [${input.shape.join(', ')}] at factor [${f.join(', ')}]: it needs at least [${need.join(', ')}]. Check input.mask.factor, or regenerate the mask`,
    );
  return f;
}

/** Which patches of one chunk the mask skips, from the mask values over the chunk's read box. */
export class ChunkMask {
  constructor(
    /** Mask voxels over `box` (mask scale), C order; at or below threshold: no tissue. */
    private readonly values: ArrayLike<number>,
    private readonly box: Box,
    private readonly spec: MaskSpec,
    private readonly maskShape: Vec3,
  ) {}

  /** True when no mask voxel under the input box is above the threshold. */
  empty(inputBox: Box): boolean {
    const m = maskBoxOf(inputBox, this.spec.factor, this.maskShape);
    const [, by, bx] = this.box.shape;
    for (let z = m.start[0]; z < m.stop[0]; z++)
      for (let y = m.start[1]; y < m.stop[1]; y++)
        for (let x = m.start[2]; x < m.stop[2]; x++) {
          const i =
            ((z - this.box.start[0]) * by + (y - this.box.start[1])) * bx + (x - this.box.start[2]);
          if (this.values[i]! > this.spec.threshold) return false;
        }
    return true;
  }
}

/** An opened mask: reads what one chunk needs, one small read at mask scale. */
export class MaskVolume {
  constructor(
    private readonly volume: Pick<InputVolume, 'readBox' | 'shape'>,
    readonly spec: MaskSpec,
  ) {}

  async forReadBox(readBox: Box): Promise<ChunkMask> {
    const box = maskBoxOf(readBox, this.spec.factor, this.volume.shape);
    const values = box.size === 0 ? new Float32Array(0) : (await this.volume.readBox(box)).data;
    return new ChunkMask(values, box, this.spec, this.volume.shape);
  }
}

/** The patches of `chunk` the mask skips. */
export function maskedPatches(plan: Plan, chunk: ChunkDescriptor, mask: ChunkMask): number {
  let n = 0;
  for (const box of plan.patches(chunk)) if (mask.empty(plan.inputBox(box))) n++;
  return n;
}

export interface MaskScan {
  /** Patches not inferred, of `totalPatches`. */
  skippedPatches: number;
  totalPatches: number;
  /** Chunks every patch of which is masked (their input is not read). */
  skippedChunks: number;
  totalChunks: number;
}

/** What the mask skips over the whole plan: reads the mask only, a chunk's box at a time. */
export async function scanMask(plan: Plan, mask: MaskVolume): Promise<MaskScan> {
  const scan: MaskScan = {
    skippedPatches: 0,
    totalPatches: 0,
    skippedChunks: 0,
    totalChunks: 0,
  };
  for (const chunk of plan.chunks()) {
    const n = maskedPatches(plan, chunk, await mask.forReadBox(chunk.readBox));
    scan.skippedPatches += n;
    scan.totalPatches += chunk.patchCount;
    scan.totalChunks++;
    if (n === chunk.patchCount) scan.skippedChunks++;
  }
  return scan;
}
