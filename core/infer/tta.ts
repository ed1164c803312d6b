// Test-time augmentation (model.tta): a PatchModel that runs the model on transformed
// copies of each batch and averages the outputs transformed back,
//
//     F(x) = (1/|T|) Σ_T T⁻¹( f( T(x) ) )
//
// per patch, BEFORE blending: the blend and the chunking never see the difference, so the
// output stays independent of how the volume was cut. One model call per transform per
// batch; the next transform's input is built while the model computes the current one.
//
// A transform is flips of the listed axes, then k quarter turns in yx as
// numpy.rot90(patch, k, axes=(y, x)):
//
//     y ┌──────┐   rot90 ×1   x' = y      out[y', x'] = in[x', N−1−y']
//       │ a  b │  ────────►  ┌──────┐
//       │ c  d │             │ b  d │
//       └──────┘ x           │ a  c │
//                            └──────┘
//
// Both directions are gathers: dest[p] = src[S(p)], with S affine in (z, y, x), so each
// is a strided copy; T⁻¹ is itself a transform (turns back, flips conjugated by the turn).

import type { Vec3 } from '../geometry/vec3.ts';
import type { Manifest } from '../manifest/schema.ts';
import { TtaOutputError, TtaShapeError } from './errors.ts';
import type { PatchModel } from './patch-model.ts';

/** model.tta as the manifest holds it. */
export type TtaSpec = NonNullable<Manifest['model']['tta']>;

export interface TtaTransform {
  /** Flip z, y, x (applied first). */
  readonly flip: readonly [boolean, boolean, boolean];
  /** Quarter turns in yx (applied after the flips), numpy.rot90's k. */
  readonly rot90: 0 | 1 | 2 | 3;
}

const AXIS = { z: 0, y: 1, x: 2 } as const;

/** `zx+rot1`, `identity`: a transform in messages. */
export function describeTransform(t: TtaTransform): string {
  const axes = ['z', 'y', 'x'].filter((_, a) => t.flip[a]).join('');
  const parts = [...(axes ? [`flip ${axes}`] : []), ...(t.rot90 ? [`rot90 ×${t.rot90}`] : [])];
  return parts.length > 0 ? parts.join(', ') : 'identity';
}

/**
 * The distinct transforms model.tta asks for, identity first. `patch` and `outPatch` are
 * the model's input and output patches: a flip of an axis both hold one voxel of is the
 * identity and is dropped, and quarter turns need both square in yx (TtaShapeError).
 */
export function ttaTransforms(
  spec: TtaSpec | undefined,
  patch: Vec3,
  outPatch: Vec3 = patch,
): TtaTransform[] {
  if (spec === undefined || spec === false) return [{ flip: [false, false, false], rot90: 0 }];
  const items = spec === true ? (['flips'] as const) : spec;
  const flips = items.includes('flips') ? [0, 1, 2, 3, 4, 5, 6, 7] : [0];
  const turns = items.includes('rot90') ? [0, 1, 2, 3] : [0];
  // The identity, every flip followed by every turn asked for, then the explicit ones.
  const set: TtaTransform[] = [];
  for (const m of flips)
    for (const k of turns)
      set.push({
        flip: [(m & 4) !== 0, (m & 2) !== 0, (m & 1) !== 0],
        rot90: k as TtaTransform['rot90'],
      });
  for (const item of items) {
    if (typeof item === 'string') continue;
    const flip: [boolean, boolean, boolean] = [false, false, false];
    for (const a of item.flip ?? []) flip[AXIS[a]] = true;
    set.push({ flip, rot90: ((item.rot90 ?? 0) % 4) as TtaTransform['rot90'] });
  }
  for (const t of set)
    for (const p of [patch, outPatch])
      if (t.rot90 % 2 === 1 && p[1] !== p[2]) throw new TtaShapeError(p, t.rot90);
  // Flipping an axis of one voxel changes nothing.
  const trivial = [0, 1, 2].map((a) => patch[a] === 1 && outPatch[a] === 1);
  const cleaned = set.map((t) => ({
    flip: t.flip.map((f, a) => f && !trivial[a]) as unknown as TtaTransform['flip'],
    rot90: trivial[1] && trivial[2] ? 0 : t.rot90,
  }));
  const seen = new Set<string>();
  return cleaned.filter((t) => {
    const key = canonicalKey(t);
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/** The transform that undoes `t`: turn back, with the flips seen through the turn. */
export function inverseTransform(t: TtaTransform): TtaTransform {
  const odd = t.rot90 % 2 === 1;
  return {
    flip: [t.flip[0], odd ? t.flip[2] : t.flip[1], odd ? t.flip[1] : t.flip[2]],
    rot90: ((4 - t.rot90) % 4) as TtaTransform['rot90'],
  };
}

/**
 * Applies `t` to `count` consecutive [z][y][x] volumes of `shape` (a batch's patches ×
 * channels): dest[p] = src[S(p)]. A quarter turn needs shape square in yx.
 */
export function transformVolumes(
  src: Float32Array,
  count: number,
  shape: Vec3,
  t: TtaTransform,
  dest: Float32Array = new Float32Array(src.length),
): Float32Array {
  const [nz, ny, nx] = shape;
  if (t.rot90 % 2 === 1 && ny !== nx) throw new TtaShapeError(shape, t.rot90);
  const volume = nz * ny * nx;
  const { base, sz, sy, sx } = sourceMap(shape, t);
  for (let v = 0; v < count; v++) {
    const off = v * volume;
    let d = off;
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++) {
        let s = off + base + z * sz + y * sy;
        for (let x = 0; x < nx; x++, s += sx) dest[d++] = src[s]!;
      }
  }
  return dest;
}

/**
 * `model` under test-time augmentation with `transforms` (ttaTransforms' list); the model
 * itself where that is the identity alone.
 */
export function withTta(model: PatchModel, transforms: readonly TtaTransform[]): PatchModel {
  if (transforms.length <= 1 && (transforms[0] === undefined || isIdentity(transforms[0])))
    return model;
  return {
    async run(batch, n, patch, outPatch = patch) {
      const iv = patch[0] * patch[1] * patch[2];
      const qv = outPatch[0] * outPatch[1] * outPatch[2];
      const inVolumes = batch.length / iv;
      const call = (t: TtaTransform): Promise<Float32Array> => {
        // A fresh array per call: a threaded model may take (detach) it.
        const input = transformVolumes(batch, inVolumes, patch, t);
        return model.runTransfer
          ? model.runTransfer(input, n, patch, outPatch).then((r) => r.out)
          : model.run(input, n, patch, outPatch);
      };
      let sum: Float32Array | undefined;
      let back: Float32Array | undefined;
      let pending = call(transforms[0]!);
      for (let i = 0; i < transforms.length; i++) {
        const next = i + 1 < transforms.length ? call(transforms[i + 1]!) : undefined;
        // If this one fails, the one already sent is abandoned: its rejection is handled.
        next?.catch(() => {});
        const out = await pending;
        if (sum === undefined) {
          sum = new Float32Array(out.length);
          back = new Float32Array(out.length);
        } else if (out.length !== sum.length)
          throw new TtaOutputError(describeTransform(transforms[i]!), sum.length, out.length);
        transformVolumes(out, out.length / qv, outPatch, inverseTransform(transforms[i]!), back);
        for (let j = 0; j < sum.length; j++) sum[j]! += back![j]!;
        if (next) pending = next;
      }
      const scale = 1 / transforms.length;
      for (let j = 0; j < sum!.length; j++) sum![j]! *= scale;
      return sum!;
    },
  };
}

function isIdentity(t: TtaTransform): boolean {
  return t.rot90 === 0 && !t.flip.some(Boolean);
}

// The yx part as a signed 2×2 matrix acting on centred coordinates (y, x) → M·(y, x):
// a flip of y is diag(−1, 1), of x diag(1, −1), a quarter turn (y, x) → (−x, y).
type Mat = readonly [number, number, number, number];
const mul = (a: Mat, b: Mat): Mat => [
  a[0] * b[0] + a[1] * b[2],
  a[0] * b[1] + a[1] * b[3],
  a[2] * b[0] + a[3] * b[2],
  a[2] * b[1] + a[3] * b[3],
];
const TURN: Mat = [0, -1, 1, 0];

function matrixOf(t: TtaTransform): Mat {
  let m: Mat = [t.flip[1] ? -1 : 1, 0, 0, t.flip[2] ? -1 : 1];
  for (let k = 0; k < t.rot90; k++) m = mul(TURN, m);
  return m;
}

function canonicalKey(t: TtaTransform): string {
  return `${t.flip[0] ? 1 : 0}:${matrixOf(t).join(',')}`;
}

/**
 * S as an affine map of the destination's (z, y, x) onto the source's linear index:
 * index = base + z·sz + y·sy + x·sx. Source of dest (z, y, x): undo the turn, then the flips.
 */
function sourceMap(
  shape: Vec3,
  t: TtaTransform,
): { base: number; sz: number; sy: number; sx: number } {
  const [nz, ny, nx] = shape;
  const at = (z: number, y: number, x: number): number => {
    // Where (y, x) of R^k(A) comes from in A (A: the flipped source, square if k is odd).
    let ay: number;
    let ax: number;
    if (t.rot90 === 0) [ay, ax] = [y, x];
    else if (t.rot90 === 1) [ay, ax] = [x, nx - 1 - y];
    else if (t.rot90 === 2) [ay, ax] = [ny - 1 - y, nx - 1 - x];
    else [ay, ax] = [ny - 1 - x, y];
    const sz = t.flip[0] ? nz - 1 - z : z;
    const sy = t.flip[1] ? ny - 1 - ay : ay;
    const sx = t.flip[2] ? nx - 1 - ax : ax;
    return (sz * ny + sy) * nx + sx;
  };
  const base = at(0, 0, 0);
  return { base, sz: at(1, 0, 0) - base, sy: at(0, 1, 0) - base, sx: at(0, 0, 1) - base };
}

/**
 * How many times over each patch is inferred under model.tta (1 without): the factor on
 * inference cost that `tessera plan` and report.json state. Throws TtaShapeError where
 * the transforms cannot apply to the patch.
 */
export function ttaFactor(
  model: Pick<Manifest['model'], 'tta' | 'patchShape' | 'outputPatchShape'>,
): number {
  return ttaTransforms(model.tta, model.patchShape, model.outputPatchShape ?? model.patchShape)
    .length;
}
