// Raw input values → the float32 the model sees. The padding outside the volume must
// be 0 in the normalised domain (that is what whole-volume inference pads with), so
// with `valid` only voxels inside it are mapped and the rest stay exactly 0 — even
// when offset ≠ 0 would have turned a raw 0 into something else.
//
// A mapping is one of two forms, frozen in the job description at plan time:
//
//   range   x = (v − low) / (high − low)     the dtype's range (uint16: v / 65535) or
//                                            two sampled percentiles of the input
//   affine  x = v · scale + offset           input.scale / input.offset as written
//
// optionally clipped to [0, 1]. NaN voxels (a float input's own NaN, or the NaN fill of
// its unwritten chunks) become 0, the padding's value, and are counted: the caller
// decides whether NaN is allowed (input.nan).

import type { Dense, NumericArray } from '../array/dense.ts';
import type { Box } from '../geometry/index.ts';

export type InputMapping =
  | { readonly kind: 'range'; readonly low: number; readonly high: number; readonly clip?: boolean }
  | {
      readonly kind: 'affine';
      readonly scale: number;
      readonly offset: number;
      readonly clip?: boolean;
    };

/**
 * The range each integer dtype maps onto [0, 1] by default (min → 0, max → 1); floats
 * are passed as they are. Signed types map their whole range too: int16's 0 becomes
 * 32768 / 65535 ≈ 0.5.
 */
export const DTYPE_RANGES: Readonly<Record<string, readonly [number, number]>> = {
  uint8: [0, 255],
  uint16: [0, 65_535],
  uint32: [0, 4_294_967_295],
  int8: [-128, 127],
  int16: [-32_768, 32_767],
  int32: [-2_147_483_648, 2_147_483_647],
};

/** This release's default for a dtype: its range onto [0, 1], or floats as they are. */
export function dtypeMapping(dtype: string): InputMapping {
  const range = DTYPE_RANGES[dtype];
  return range
    ? { kind: 'range', low: range[0], high: range[1] }
    : { kind: 'affine', scale: 1, offset: 0 };
}

/**
 * The rule releases before per-dtype defaults applied (job descriptions of version 1):
 * uint8 without scale/offset as v / 255, everything else v · (scale ?? 1) + (offset ?? 0).
 */
export function legacyMapping(dtype: string, scale?: number, offset?: number): InputMapping {
  return dtype === 'uint8' && scale === undefined && offset === undefined
    ? { kind: 'range', low: 0, high: 255 }
    : { kind: 'affine', scale: scale ?? 1, offset: offset ?? 0 };
}

/** The mapping as x = v · scale + offset, for people (the range form divides instead). */
export function scaleOffsetOf(m: InputMapping): { scale: number; offset: number } {
  if (m.kind === 'affine') return { scale: m.scale, offset: m.offset };
  const span = m.high - m.low;
  return { scale: 1 / span, offset: -m.low / span };
}

/** The mapping of one value, exactly as normalize computes it (before float32 rounding). */
export function mapValue(m: InputMapping): (v: number) => number {
  const base =
    m.kind === 'range'
      ? (
          (low: number, span: number) => (v: number) =>
            (v - low) / span
        )(m.low, m.high - m.low)
      : (
          (s: number, o: number) => (v: number) =>
            v * s + o
        )(m.scale, m.offset);
  if (!m.clip) return base;
  return (v) => Math.min(1, Math.max(0, base(v)));
}

export interface NormalizeOptions {
  /** The input's Zarr data type; used when no `mapping` is given. */
  readonly dtype: string;
  /**
   * The job's mapping (from its description). Without one: input.scale/offset when given,
   * else the dtype's default (dtypeMapping).
   */
  readonly mapping?: InputMapping;
  readonly scale?: number;
  readonly offset?: number;
  /** Only voxels inside this box are normalised; the rest are 0. Default: all of raw.box. */
  readonly valid?: Box;
  /**
   * Memory for the result, when large enough (a view of its start is used): a worker
   * keeps one per chunk in flight instead of allocating ~10⁸ bytes per chunk.
   */
  readonly reuse?: Float32Array;
}

export interface Normalized extends Dense<Float32Array> {
  /** NaN voxels inside `valid`, fed to the model as 0. */
  readonly nanCount: number;
}

export function normalize(raw: Dense<NumericArray>, o: NormalizeOptions): Normalized {
  const n = raw.data.length;
  const out = o.reuse && o.reuse.length >= n ? o.reuse.subarray(0, n).fill(0) : new Float32Array(n);
  const inside = o.valid === undefined ? raw.box : raw.box.intersect(o.valid);
  if (inside.isEmpty()) return { box: raw.box, channels: raw.channels, data: out, nanCount: 0 };

  const mapping =
    o.mapping ??
    (o.scale === undefined && o.offset === undefined
      ? dtypeMapping(o.dtype)
      : { kind: 'affine', scale: o.scale ?? 1, offset: o.offset ?? 0 });
  // Division in the range form, not multiplication by 1/255: v / 255 is what the
  // reference computes, and the two differ in the last bit for some v.
  const f = mapValue(mapping);
  const src = raw.data;
  // 8- and 16-bit inputs map through a table of every value, computed by the same
  // expression: identical floats, without a division or conversion per voxel.
  const table = lookupTable(src, f);
  // The other paths inline mapValue's arithmetic: a call per voxel cost several times the loop.
  const range = mapping.kind === 'range';
  const low = range ? mapping.low : 0;
  const span = range ? mapping.high - mapping.low : 1;
  const scale = range ? 1 : mapping.scale;
  const offset = range ? 0 : mapping.offset;
  const clip = mapping.clip === true;
  const floats = src instanceof Float32Array || src instanceof Float64Array;
  let nanCount = 0;
  const [sz, sy, sx] = raw.box.shape;
  const w = inside.shape[2];
  for (let c = 0; c < raw.channels; c++)
    for (let z = inside.start[0]; z < inside.stop[0]; z++)
      for (let y = inside.start[1]; y < inside.stop[1]; y++) {
        const row =
          ((c * sz + (z - raw.box.start[0])) * sy + (y - raw.box.start[1])) * sx +
          (inside.start[2] - raw.box.start[2]);
        const end = row + w;
        if (table) {
          for (let i = row; i < end; i++) out[i] = table[src[i]!]!;
          continue;
        }
        if (range) for (let i = row; i < end; i++) out[i] = (src[i]! - low) / span;
        else for (let i = row; i < end; i++) out[i] = src[i]! * scale + offset;
        // NaN (float inputs only) becomes 0, the padding's value, and is counted.
        if (floats) nanCount += zeroNaN(out, row, end);
        if (clip) for (let i = row; i < end; i++) out[i] = Math.min(1, Math.max(0, out[i]!));
      }
  return { box: raw.box, channels: raw.channels, data: out, nanCount };
}

/** Sets NaN in out[from, to) to 0; returns how many there were. */
function zeroNaN(out: Float32Array, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) {
    if (Number.isNaN(out[i]!)) {
      out[i] = 0;
      n++;
    }
  }
  return n;
}

function lookupTable(src: NumericArray, f: (v: number) => number): Float32Array | undefined {
  const size = src instanceof Uint8Array ? 256 : src instanceof Uint16Array ? 65_536 : 0;
  // A 16-bit table (256 KiB) pays off only on inputs much larger than itself.
  if (size === 0 || src.length < 4 * size) return undefined;
  const table = new Float32Array(size);
  for (let v = 0; v < size; v++) table[v] = f(v);
  return table;
}
