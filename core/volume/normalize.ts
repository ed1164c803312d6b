// Raw input values → the float32 the model sees. The padding outside the volume must
// be 0 in the normalised domain (that is what whole-volume inference pads with), so
// with `valid` only voxels inside it are mapped and the rest stay exactly 0 — even
// when offset ≠ 0 would have turned a raw 0 into something else.

import type { Dense, NumericArray } from '../array/dense.ts';
import type { Box } from '../geometry/index.ts';

export interface NormalizeOptions {
  /** The input's Zarr data type; uint8 without scale/offset maps v → v / 255. */
  readonly dtype: string;
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

export function normalize(raw: Dense<NumericArray>, o: NormalizeOptions): Dense<Float32Array> {
  const n = raw.data.length;
  const out = o.reuse && o.reuse.length >= n ? o.reuse.subarray(0, n).fill(0) : new Float32Array(n);
  const inside = o.valid === undefined ? raw.box : raw.box.intersect(o.valid);
  const result = { box: raw.box, channels: raw.channels, data: out };
  if (inside.isEmpty()) return result;

  // Division, not multiplication by 1/255: v / 255 is what the reference computes,
  // and the two differ in the last bit for some v.
  const byteDefault = o.dtype === 'uint8' && o.scale === undefined && o.offset === undefined;
  const scale = o.scale ?? 1;
  const offset = o.offset ?? 0;
  const src = raw.data;
  // 8- and 16-bit inputs map through a table of every value, computed by the same
  // expression: identical floats, without a division or conversion per voxel.
  const table = lookupTable(src, byteDefault ? (v) => v / 255 : (v) => v * scale + offset);
  const [sz, sy, sx] = raw.box.shape;
  const w = inside.shape[2];
  for (let c = 0; c < raw.channels; c++)
    for (let z = inside.start[0]; z < inside.stop[0]; z++)
      for (let y = inside.start[1]; y < inside.stop[1]; y++) {
        const row =
          ((c * sz + (z - raw.box.start[0])) * sy + (y - raw.box.start[1])) * sx +
          (inside.start[2] - raw.box.start[2]);
        const end = row + w;
        if (table) for (let i = row; i < end; i++) out[i] = table[src[i]!]!;
        else if (byteDefault) for (let i = row; i < end; i++) out[i] = src[i]! / 255;
        else for (let i = row; i < end; i++) out[i] = src[i]! * scale + offset;
      }
  return result;
}

function lookupTable(src: NumericArray, f: (v: number) => number): Float32Array | undefined {
  const size = src instanceof Uint8Array ? 256 : src instanceof Uint16Array ? 65_536 : 0;
  // A 16-bit table (256 KiB) pays off only on inputs much larger than itself.
  if (size === 0 || src.length < 4 * size) return undefined;
  const table = new Float32Array(size);
  for (let v = 0; v < size; v++) table[v] = f(v);
  return table;
}
