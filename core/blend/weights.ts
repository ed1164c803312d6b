// Blend weights over one patch: w(z,y,x) = wz(z)·wy(y)·wx(x), each 1D profile normalised
// to a maximum of 1, floored, and computed in float64.
//
// Why a floor: chunkflow's bump exp(−Σ 1/(1−u²)) reaches e^-97 at the corner of a 128³
// patch — below float32's smallest normal number, so it flushes to zero and a voxel seen
// only by patch corners (the corners of the volume) divides 0 by 0. chunkflow rescales
// by a large constant; instead each axis's profile is kept ≥ MIN_WEIGHT relative to its
// centre, so every weight is ≥ MIN_WEIGHT³ = 1e-18, far above float32's 1.2e-38. The
// floor changes the blend only where every covering patch is within a few voxels of its
// own edge, and the float32 division stays exact to a few ulps everywhere.
//
// Why per axis, not on the product: the weight stays separable, so Σw over the patch
// grid (a Cartesian product of per-axis starts) is the product of three 1-D sums
// (weight-sums.ts). Nobody stores, sends or adds Σw per voxel.

import type { Vec3 } from '../geometry/index.ts';

export type BlendKind = 'bump' | 'gaussian' | 'constant';

export const MIN_WEIGHT = 1e-6;

/** One axis of the weight as blended: the profile, floored at MIN_WEIGHT. */
export function axisWeights(kind: BlendKind, p: number): Float64Array {
  return profile1d(kind, p).map((v) => Math.max(MIN_WEIGHT, v));
}

/** One axis of the weight, length `p`, max 1. */
export function profile1d(kind: BlendKind, p: number): Float64Array {
  const w = new Float64Array(p);
  if (kind === 'constant') return w.fill(1);
  if (kind === 'bump') {
    // chunkflow's bump: u in (-1, 1) strictly, so 1 − u² > 0.
    const logs = new Float64Array(p);
    for (let i = 0; i < p; i++) {
      const u = (2 * (i + 1)) / (p + 1) - 1;
      logs[i] = -1 / (1 - u * u);
    }
    const top = Math.max(...logs);
    for (let i = 0; i < p; i++) w[i] = Math.exp(logs[i]! - top);
    return w;
  }
  // Gaussian, σ = p/8 (MONAI, nnU-Net), centred between the middle voxels.
  const sigma = p / 8;
  const c = (p - 1) / 2;
  for (let i = 0; i < p; i++) w[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
  const top = Math.max(...w);
  for (let i = 0; i < p; i++) w[i] = w[i]! / top;
  return w;
}

const cache = new Map<string, Float32Array>();

/** The 3D weight map of a patch, x fastest; shared and frozen by convention (never write to it). */
export function blendWeights(kind: BlendKind, patch: Vec3): Float32Array {
  const key = `${kind}:${patch.join(',')}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const [pz, py, px] = patch;
  const wz = axisWeights(kind, pz);
  const wy = axisWeights(kind, py);
  const wx = axisWeights(kind, px);
  const out = new Float32Array(pz * py * px);
  let i = 0;
  for (let z = 0; z < pz; z++)
    for (let y = 0; y < py; y++) {
      const zy = wz[z]! * wy[y]!;
      for (let x = 0; x < px; x++) out[i++] = zy * wx[x]!;
    }
  cache.set(key, out);
  return out;
}
