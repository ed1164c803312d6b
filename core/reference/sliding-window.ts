// The oracle: whole-volume sliding-window inference, written as plainly as possible from
// the README's definitions and independently of the pipeline. Tests compare every
// pipeline result against it, so it shares no code with what it checks: not the blend
// weights (core/blend), not the patch grid (core/geometry's plan), not the chunking.
// Only types are imported.
//
//   out(x) = Σ_p w_p(x)·f_p(x) / Σ_p w_p(x)   over all patches p of the global grid covering x
//
// Patch grid per axis (README, `overlap`): stride = patch − overlap from the region's
// start; the last patch is shifted back to end flush with the region's end; a region
// shorter than the patch gets one patch at its start. Input outside the volume is zero
// (in the normalised domain). Sums are kept in float64.
//
// Weights (README, `blend`): w(z, y, x) = wz(z)·wy(y)·wx(x), each 1-D profile taken
// relative to its peak and floored at 1e-6 of it:
//   bump      chunkflow's: exp(−1 / (1 − u²)), u = 2(i + 1)/(p + 1) − 1 ∈ (−1, 1)
//   gaussian  exp(−(i − c)² / 2σ²), σ = p/8, c = (p − 1)/2 (MONAI's, centred between
//             the middle voxels of an even patch)
//   constant  1

import type { Vec3 } from '../geometry/vec3.ts';
import type { PatchModel } from '../infer/patch-model.ts';

/** The blend kinds of the manifest's `blend` (the same strings as core/blend's BlendKind). */
export type ReferenceBlend = 'bump' | 'gaussian' | 'constant';

/** The README's per-axis floor, relative to the profile's peak. */
export const REFERENCE_FLOOR = 1e-6;

// The model interface is the pipeline's (a type only: the reference shares no code with it).
export type { PatchModel };

export interface ReferenceInput {
  /** Normalised input, [Cin][z][y][x] over the whole volume. */
  volume: Float32Array;
  volumeShape: Vec3;
  inputChannels: number;
  region?: { start: Vec3; stop: Vec3 } | undefined;
  /** The model's input patch. */
  patchShape: Vec3;
  /** A valid-convolution model's (smaller, centred) output patch; default patchShape. */
  outputPatchShape?: Vec3 | undefined;
  overlap: Vec3;
  blend: ReferenceBlend;
  outputChannels: number;
  model: PatchModel;
  /** model.tta, as the manifest writes it (README, `model.tta`); default none. */
  tta?: ReferenceTta | undefined;
  /** output.transform (README, `output.transform`), applied to the blended result. */
  transform?: ReferenceOutputTransform | undefined;
  /** input.mask (README, `input.mask`): patches with no tissue under their input box output 0. */
  mask?: ReferenceMask | undefined;
}

/** input.mask, restated: [z][y][x] values, input voxel i in mask voxel floor(i / factor). */
export interface ReferenceMask {
  data: ArrayLike<number>;
  shape: Vec3;
  factor: Vec3;
  /** Tissue above it; default 0. */
  threshold?: number | undefined;
}

/** Whether any mask voxel under the input box [lo, lo + size) (per axis) is tissue. */
function referenceHasTissue(m: ReferenceMask, lo: Vec3, size: Vec3): boolean {
  const t = m.threshold ?? 0;
  const from = [0, 1, 2].map((a) => Math.max(0, Math.floor(lo[a]! / m.factor[a]!)));
  const to = [0, 1, 2].map((a) =>
    Math.min(m.shape[a]!, Math.ceil((lo[a]! + size[a]!) / m.factor[a]!)),
  );
  for (let z = from[0]!; z < to[0]!; z++)
    for (let y = from[1]!; y < to[1]!; y++)
      for (let x = from[2]!; x < to[2]!; x++)
        if (m.data[(z * m.shape[1] + y) * m.shape[2] + x]! > t) return true;
  return false;
}

/** output.transform's forms, restated here so the reference shares no code. */
export type ReferenceOutputTransform =
  | 'argmax'
  | 'sigmoid'
  | 'softmax'
  | { readonly threshold: number };

/** model.tta's forms (the manifest's), restated here so the reference shares no code. */
export type ReferenceTta =
  | boolean
  | readonly (
      | 'flips'
      | 'rot90'
      | { readonly flip?: readonly ('z' | 'y' | 'x')[]; readonly rot90?: number }
    )[];

/** One axis's weight profile over a patch of length `p`, peak 1, floored (see the header). */
export function referenceProfile(kind: ReferenceBlend, p: number): Float64Array {
  const raw = new Float64Array(p);
  for (let i = 0; i < p; i++) {
    if (kind === 'constant') raw[i] = 1;
    else if (kind === 'bump') {
      const u = (2 * (i + 1)) / (p + 1) - 1;
      raw[i] = Math.exp(-1 / (1 - u * u));
    } else {
      const sigma = p / 8;
      const c = (p - 1) / 2;
      raw[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
    }
  }
  let peak = 0;
  for (const v of raw) peak = Math.max(peak, v);
  return raw.map((v) => Math.max(v / peak, REFERENCE_FLOOR));
}

/**
 * Patch starts along one axis of the region [start, stop): start, start + stride, … while
 * a patch there still ends before `stop`, then one patch flush with `stop`.
 */
export function patchStarts(start: number, stop: number, patch: number, overlap: number): number[] {
  if (stop - start <= patch) return [start];
  const stride = patch - overlap;
  const starts: number[] = [];
  for (let s = start; s + patch < stop; s += stride) starts.push(s);
  starts.push(stop - patch);
  return starts;
}

/** Returns the blended output over the region, [Cout][rz][ry][rx]. */
export async function slidingWindowReference(o: ReferenceInput): Promise<Float32Array> {
  const [vz, vy, vx] = o.volumeShape;
  const rs = o.region?.start ?? [0, 0, 0];
  const re = o.region?.stop ?? o.volumeShape;
  const [rz, ry, rx] = [re[0] - rs[0], re[1] - rs[1], re[2] - rs[2]];
  // The grid is over OUTPUT patches (q); each reads its input patch (p), centred: the
  // output box grown by the margin m = (p − q) / 2, zeros outside the volume.
  const [pz, py, px] = o.patchShape;
  const [qz, qy, qx] = o.outputPatchShape ?? o.patchShape;
  const [mz, my, mx] = [(pz - qz) / 2, (py - qy) / 2, (px - qx) / 2];
  const qv = qz * qy * qx;
  const [wz, wy, wx] = [
    referenceProfile(o.blend, qz),
    referenceProfile(o.blend, qy),
    referenceProfile(o.blend, qx),
  ];
  const num = new Float64Array(o.outputChannels * rz * ry * rx);
  const den = new Float64Array(rz * ry * rx);
  const input = new Float32Array(o.inputChannels * pz * py * px);
  const transforms = referenceTransforms(o.tta, o.patchShape, [qz, qy, qx]);

  for (const z0 of patchStarts(rs[0], re[0], qz, o.overlap[0]))
    for (const y0 of patchStarts(rs[1], re[1], qy, o.overlap[1]))
      for (const x0 of patchStarts(rs[2], re[2], qx, o.overlap[2])) {
        input.fill(0);
        for (let c = 0; c < o.inputChannels; c++)
          for (let z = 0; z < pz; z++)
            for (let y = 0; y < py; y++)
              for (let x = 0; x < px; x++) {
                const [gz, gy, gx] = [z0 - mz + z, y0 - my + y, x0 - mx + x];
                if (gz >= 0 && gy >= 0 && gx >= 0 && gz < vz && gy < vy && gx < vx)
                  input[((c * pz + z) * py + y) * px + x] =
                    o.volume[((c * vz + gz) * vy + gy) * vx + gx]!;
              }
        const masked =
          o.mask !== undefined &&
          !referenceHasTissue(o.mask, [z0 - mz, y0 - my, x0 - mx], o.patchShape);
        const out = masked
          ? new Float32Array(o.outputChannels * qv)
          : await augmented(
              o.model,
              input,
              o.inputChannels,
              o.outputChannels,
              o.patchShape,
              [qz, qy, qx],
              transforms,
            );
        for (let z = 0; z < qz; z++)
          for (let y = 0; y < qy; y++)
            for (let x = 0; x < qx; x++) {
              const [lz, ly, lx] = [z0 + z - rs[0], y0 + y - rs[1], x0 + x - rs[2]];
              if (lz < 0 || ly < 0 || lx < 0 || lz >= rz || ly >= ry || lx >= rx) continue;
              const w = wz[z]! * wy[y]! * wx[x]!;
              const ri = (lz * ry + ly) * rx + lx;
              den[ri]! += w;
              for (let c = 0; c < o.outputChannels; c++)
                num[c * rz * ry * rx + ri]! += w * out[c * qv + (z * qy + y) * qx + x]!;
            }
      }

  const result = new Float32Array(num.length);
  const n = den.length;
  for (let i = 0; i < num.length; i++) result[i] = num[i]! / den[i % n]!;
  return o.transform === undefined
    ? result
    : referenceTransform(o.transform, result, o.outputChannels, n);
}

/**
 * output.transform from the README's words, over [C][n] values (the blended float32 ones):
 * argmax → [1][n], the first channel holding the maximum; {threshold: t} → 1 where the
 * value exceeds t, else 0; sigmoid 1/(1 + e^−v); softmax e^v / Σ_c e^v (shifted by the
 * maximum, which leaves it unchanged).
 */
export function referenceTransform(
  t: ReferenceOutputTransform,
  values: Float32Array,
  channels: number,
  n: number,
): Float32Array {
  const at = (c: number, i: number): number => values[c * n + i]!;
  if (t === 'argmax') {
    const labels = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      let best = 0;
      for (let c = 0; c < channels; c++) if (at(c, i) > at(best, i)) best = c;
      labels[i] = best;
    }
    return labels;
  }
  const out = new Float32Array(values.length);
  for (let i = 0; i < n; i++) {
    if (t === 'softmax') {
      const top = Math.max(...Array.from({ length: channels }, (_, c) => at(c, i)));
      const e = Array.from({ length: channels }, (_, c) => Math.exp(at(c, i) - top));
      const total = e.reduce((a, b) => a + b, 0);
      for (let c = 0; c < channels; c++) out[c * n + i] = e[c]! / total;
    } else
      for (let c = 0; c < channels; c++)
        out[c * n + i] =
          t === 'sigmoid' ? 1 / (1 + Math.exp(-at(c, i))) : at(c, i) > t.threshold ? 1 : 0;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Test-time augmentation, from the README's words: a transform flips the listed axes,
// then turns the yx plane k quarter turns as numpy.rot90(patch, k, axes=(y, x)), i.e.
// one turn of an n×n plane is out[i][j] = in[j][n − 1 − i]. A patch's output is the mean
// over the distinct transforms T of T⁻¹(f(T(x))).

interface RefTransform {
  flips: [boolean, boolean, boolean];
  turns: number;
}

/**
 * The distinct transforms of `tta`: the identity, each of the 8 flips ("flips" or true),
 * each of the 4 turns ("rot90"), each flip followed by each turn (both), and the explicit
 * ones. Two count as one when they move every voxel of both patches to the same place.
 */
export function referenceTransforms(
  tta: ReferenceTta | undefined,
  patch: Vec3,
  outPatch: Vec3,
): RefTransform[] {
  const wanted: RefTransform[] = [{ flips: [false, false, false], turns: 0 }];
  if (tta !== undefined && tta !== false) {
    const words = tta === true ? ['flips'] : tta;
    const flipSets = words.includes('flips')
      ? [false, true].flatMap((z) =>
          [false, true].flatMap((y) =>
            [false, true].map((x): [boolean, boolean, boolean] => [z, y, x]),
          ),
        )
      : [[false, false, false] as [boolean, boolean, boolean]];
    const turnCounts = words.includes('rot90') ? [0, 1, 2, 3] : [0];
    for (const flips of flipSets) for (const turns of turnCounts) wanted.push({ flips, turns });
    for (const w of words)
      if (typeof w === 'object')
        wanted.push({
          flips: [
            w.flip?.includes('z') ?? false,
            w.flip?.includes('y') ?? false,
            w.flip?.includes('x') ?? false,
          ],
          turns: (w.rot90 ?? 0) % 4,
        });
  }
  const seen = new Set<string>();
  return wanted.filter((t) => {
    const key = `${sourcesOf(t, patch).join(',')}|${sourcesOf(t, outPatch).join(',')}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * For each voxel of the transformed patch, the index of the voxel of the original patch
 * it holds. Turns are undone one at a time, last first (after an odd number of turns the
 * plane's y and x sizes are swapped), then the flips.
 */
function sourcesOf(t: RefTransform, shape: Vec3): number[] {
  const [nz, ny, nx] = shape;
  if (t.turns % 2 === 1 && ny !== nx)
    throw new RangeError(
      `reference: a quarter turn needs a square yx patch, got ${shape.join('×')}`,
    );
  const sources: number[] = [];
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        let [cy, cx] = [y, x];
        for (let step = t.turns; step >= 1; step--) {
          // Before turn `step`, the plane had (step − 1) turns: its x size.
          const xSize = (step - 1) % 2 === 0 ? nx : ny;
          [cy, cx] = [cx, xSize - 1 - cy];
        }
        const sz = t.flips[0] ? nz - 1 - z : z;
        const sy = t.flips[1] ? ny - 1 - cy : cy;
        const sx = t.flips[2] ? nx - 1 - cx : cx;
        sources.push((sz * ny + sy) * nx + sx);
      }
  return sources;
}

/** One patch through the model under every transform, the outputs put back and averaged. */
async function augmented(
  model: PatchModel,
  input: Float32Array,
  inChannels: number,
  outChannels: number,
  patch: Vec3,
  outPatch: Vec3,
  transforms: readonly RefTransform[],
): Promise<Float32Array> {
  const iv = patch[0] * patch[1] * patch[2];
  const qv = outPatch[0] * outPatch[1] * outPatch[2];
  const sum = new Float64Array(outChannels * qv);
  for (const t of transforms) {
    const inSrc = sourcesOf(t, patch);
    const moved = new Float32Array(input.length);
    for (let c = 0; c < inChannels; c++)
      for (let i = 0; i < iv; i++) moved[c * iv + i] = input[c * iv + inSrc[i]!]!;
    const out = await model.run(moved, 1, patch, outPatch);
    // Output voxel i of the transformed patch belongs where its source voxel was.
    const outSrc = sourcesOf(t, outPatch);
    for (let c = 0; c < outChannels; c++)
      for (let i = 0; i < qv; i++) sum[c * qv + outSrc[i]!]! += out[c * qv + i]!;
  }
  return Float32Array.from(sum, (v) => v / transforms.length);
}
