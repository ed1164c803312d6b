// Partial sums of the invariance formula over a box: num = Σ w·f per channel and
// den = Σ w. A chunk accumulates its patches into one; a seam block sums the partials
// of every contributing chunk. Normalising num/den gives the blended output.

import { copyBox, type Dense, indexOf } from '../array/dense.ts';
import { Box } from '../geometry/index.ts';

export class PartialSum {
  readonly num: Dense<Float32Array>;
  readonly den: Dense<Float32Array>;

  constructor(
    readonly box: Box,
    readonly channels: number,
  ) {
    this.num = { box, channels, data: new Float32Array(channels * box.size) };
    this.den = { box, channels: 1, data: new Float32Array(box.size) };
  }

  /**
   * Adds one patch's output, weighted, for the voxels where patch and box overlap.
   * `out` holds [C][pz][py][px] starting at `offset` (one item of a batch).
   */
  addPatch(patch: Box, out: Float32Array, offset: number, weights: Float32Array): void {
    const b = patch.intersect(this.box);
    if (b.isEmpty()) return;
    const [pz, py, px] = patch.shape;
    const pv = pz * py * px;
    const w = b.shape[2];
    const ox = b.start[2] - patch.start[2];
    const num = this.num.data;
    const den = this.den.data;
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++) {
        const wi = ((z - patch.start[0]) * py + (y - patch.start[1])) * px + ox;
        const di = indexOf(this.den, [z, y, b.start[2]]);
        for (let x = 0; x < w; x++) den[di + x]! += weights[wi + x]!;
        for (let c = 0; c < this.channels; c++) {
          const ni = indexOf(this.num, [z, y, b.start[2]], c);
          const fi = offset + c * pv + wi;
          for (let x = 0; x < w; x++) num[ni + x]! += weights[wi + x]! * out[fi + x]!;
        }
      }
  }

  /** Adds another partial (num, den over `other.box`) where the boxes overlap. */
  addPartial(other: { num: Dense<Float32Array>; den: Dense<Float32Array> }): void {
    const b = other.den.box.intersect(this.box);
    if (b.isEmpty()) return;
    const w = b.shape[2];
    for (let z = b.start[0]; z < b.stop[0]; z++)
      for (let y = b.start[1]; y < b.stop[1]; y++) {
        const p: [number, number, number] = [z, y, b.start[2]];
        addRow(this.den.data, indexOf(this.den, p), other.den.data, indexOf(other.den, p), w);
        for (let c = 0; c < this.channels; c++)
          addRow(
            this.num.data,
            indexOf(this.num, p, c),
            other.num.data,
            indexOf(other.num, p, c),
            w,
          );
      }
  }

  /** The partial restricted to `box` (inside this.box): what a chunk stores for a seam block. */
  extract(box: Box): PartialSum {
    const out = new PartialSum(box, this.channels);
    copyBox(this.num, out.num, box);
    copyBox(this.den, out.den, box);
    return out;
  }

  /**
   * Writes num/den for the voxels of `box` into dst (any numeric array type; the
   * `convert` hook maps a blended value to the stored one, e.g. float → uint8).
   */
  normalizeInto(
    dst: { box: Box; channels: number; data: { [i: number]: number } },
    box: Box,
    convert: (v: number) => number = (v) => v,
  ): void {
    const b = box.intersect(this.box).intersect(dst.box);
    if (b.isEmpty()) return;
    const w = b.shape[2];
    for (let c = 0; c < this.channels; c++)
      for (let z = b.start[0]; z < b.stop[0]; z++)
        for (let y = b.start[1]; y < b.stop[1]; y++) {
          const p: [number, number, number] = [z, y, b.start[2]];
          const di = indexOf(this.den, p);
          const ni = indexOf(this.num, p, c);
          const oi = indexOf(dst, p, c);
          for (let x = 0; x < w; x++)
            dst.data[oi + x] = convert(this.num.data[ni + x]! / this.den.data[di + x]!);
        }
  }
}

function addRow(dst: Float32Array, di: number, src: Float32Array, si: number, n: number): void {
  for (let x = 0; x < n; x++) dst[di + x]! += src[si + x]!;
}

export { Box };
