// Partial sums of the invariance formula over a box: num = Σ w·f per channel. A chunk
// accumulates its patches into one; a seam block sums the partials of every contributing
// chunk. Dividing by Σw, known from geometry (weight-sums.ts), gives the blended output.
//
// These loops run once per inferred voxel and share the CPU with inference: they work
// row by row on typed arrays with offsets computed per row, and allocate nothing.

import { copyBox, type Dense, offsetOf } from '../array/dense.ts';
import { Box } from '../geometry/index.ts';
import type { WeightSums } from './weight-sums.ts';

export class PartialSum {
  readonly num: Dense<Float32Array>;

  /**
   * `buffer`, when given, is reused (zeroed) instead of allocating: a worker keeps one
   * per chunk in flight so the garbage collector does not churn through 10⁸-float arrays.
   */
  constructor(
    readonly box: Box,
    readonly channels: number,
    /** Σw of the job's patch grid, for normalising. */
    readonly sums: WeightSums,
    buffer?: Float32Array,
    /** Take `buffer` as the contents, without zeroing: a decoded partial. */
    wrap = false,
  ) {
    const n = channels * box.size;
    const data =
      buffer && buffer.length >= n
        ? wrap
          ? buffer.subarray(0, n)
          : buffer.subarray(0, n).fill(0)
        : new Float32Array(n);
    this.num = { box, channels, data };
  }

  /** The backing memory, for reuse by the next PartialSum. */
  get buffer(): Float32Array {
    return new Float32Array(this.num.data.buffer, this.num.data.byteOffset, this.num.data.length);
  }

  /**
   * Adds one patch's output, weighted, for the voxels where patch and box overlap.
   * `out` holds [C][pz][py][px] starting at `offset` (one item of a batch). Returns the
   * sum of the patch's output values read, so a caller can reject NaN/Infinity (they
   * propagate into the sum) without a second pass over the data.
   */
  addPatch(patch: Box, out: Float32Array, offset: number, weights: Float32Array): number {
    const b = patch.intersect(this.box);
    if (b.isEmpty()) return 0;
    const ps = patch.start;
    const py = patch.stop[1] - ps[1];
    const px = patch.stop[2] - ps[2];
    const pv = (patch.stop[0] - ps[0]) * py * px;
    const w = b.stop[2] - b.start[2];
    const x0 = b.start[2];
    const num = this.num.data;
    const channels = this.channels;
    const n = this.box.size;
    let check = 0;
    // One pass per row, every array read once per voxel: faster than a pass per channel
    // (measured on 2×32×128×128 patches). One and two channels (a probability map, a
    // foreground/boundary pair) get their own loop; V8 keeps those tight.
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++) {
        const wi = ((z - ps[0]) * py + (y - ps[1])) * px + (x0 - ps[2]);
        const di = offsetOf(this.box, 0, z, y, x0);
        const fi = offset + wi;
        if (channels === 1) {
          for (let x = 0; x < w; x++) {
            const wt = weights[wi + x]!;
            const v = out[fi + x]!;
            check += v;
            num[di + x]! += wt * v;
          }
        } else if (channels === 2) {
          const n1 = n + di;
          const f1 = fi + pv;
          for (let x = 0; x < w; x++) {
            const wt = weights[wi + x]!;
            const v0 = out[fi + x]!;
            const v1 = out[f1 + x]!;
            check += v0 + v1;
            num[di + x]! += wt * v0;
            num[n1 + x]! += wt * v1;
          }
        } else {
          for (let x = 0; x < w; x++) {
            const wt = weights[wi + x]!;
            for (let c = 0, ni = di + x, f = fi + x; c < channels; c++, ni += n, f += pv) {
              const v = out[f]!;
              check += v;
              num[ni]! += wt * v;
            }
          }
        }
      }
    return check;
  }

  /** Adds another partial (num over `other.box`) where the boxes overlap. */
  addPartial(other: PartialSum): void {
    const b = other.box.intersect(this.box);
    if (b.isEmpty()) return;
    const w = b.stop[2] - b.start[2];
    const n = this.box.size;
    const on = other.box.size;
    const num = this.num.data;
    const onum = other.num.data;
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++) {
        const di = offsetOf(this.box, 0, z, y, b.start[2]);
        const si = offsetOf(other.box, 0, z, y, b.start[2]);
        for (let c = 0; c < this.channels; c++) {
          const dc = c * n + di;
          const sc = c * on + si;
          for (let x = 0; x < w; x++) num[dc + x]! += onum[sc + x]!;
        }
      }
  }

  /** The partial restricted to `box` (inside this.box): what a chunk stores for a seam block. */
  extract(box: Box): PartialSum {
    const out = new PartialSum(box, this.channels, this.sums);
    copyBox(this.num, out.num, box);
    return out;
  }

  /**
   * Writes num / Σw for the voxels of `box` into dst (any numeric array type; the
   * `convert` hook maps a blended value to the stored one, e.g. float → uint8).
   */
  normalizeInto(
    dst: { box: Box; channels: number; data: { [i: number]: number } },
    box: Box,
    convert?: (v: number) => number,
  ): void {
    const { axes, region } = this.sums;
    const [sz, sy, sx] = axes;
    const origin = region.start;
    // Σw is defined over the region the sums cover.
    const b = box.intersect(this.box).intersect(dst.box).intersect(region);
    if (b.isEmpty()) return;
    const w = b.stop[2] - b.start[2];
    const num = this.num.data;
    const out = dst.data;
    const n = this.box.size;
    const x0 = b.start[2] - origin[2];
    for (let c = 0; c < this.channels; c++)
      for (let z = b.start[0]; z < b.stop[0]; z++)
        for (let y = b.start[1]; y < b.stop[1]; y++) {
          const zy = sz[z - origin[0]]! * sy[y - origin[1]]!;
          const ni = c * n + offsetOf(this.box, 0, z, y, b.start[2]);
          const oi = offsetOf(dst.box, c, z, y, b.start[2]);
          if (convert)
            for (let x = 0; x < w; x++) out[oi + x] = convert(num[ni + x]! / (zy * sx[x0 + x]!));
          else for (let x = 0; x < w; x++) out[oi + x] = num[ni + x]! / (zy * sx[x0 + x]!);
        }
  }
}

export { Box };
