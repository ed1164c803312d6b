// The oracle: whole-volume sliding-window inference, written as plainly as possible and
// independently of the chunk plan. Tests compare every pipeline result against it.
//
//   out(x) = Σ_p w_p(x)·f_p(x) / Σ_p w_p(x)   over all patches p of the global grid covering x
//
// Patch grid per axis: stride = patch − overlap, last patch shifted back to end at the
// region's edge; a region shorter than the patch gets one patch at its start. Input
// outside the volume is zero (in the normalised domain). Sums are kept in float64.

import type { BlendKind } from '../blend/weights.ts';
import { blendWeights } from '../blend/weights.ts';
import type { Vec3 } from '../geometry/index.ts';

export interface PatchModel {
  /** batch: [n, Cin, pz, py, px] → [n, Cout, pz, py, px]. */
  run(batch: Float32Array, n: number, patch: Vec3): Promise<Float32Array>;
  /**
   * Optional zero-copy variant: `batch`'s buffer is handed over (detached) and returned
   * with the result. A model on another thread offers it.
   */
  runTransfer?(
    batch: Float32Array,
    n: number,
    patch: Vec3,
  ): Promise<{ out: Float32Array; batch: Float32Array }>;
}

export interface ReferenceInput {
  /** Normalised input, [Cin][z][y][x] over the whole volume. */
  volume: Float32Array;
  volumeShape: Vec3;
  inputChannels: number;
  region?: { start: Vec3; stop: Vec3 } | undefined;
  patchShape: Vec3;
  overlap: Vec3;
  blend: BlendKind;
  outputChannels: number;
  model: PatchModel;
}

export function patchStarts(start: number, stop: number, patch: number, overlap: number): number[] {
  const n = stop - start;
  if (n <= patch) return [start];
  const stride = patch - overlap;
  const starts: number[] = [];
  for (let s = start; ; s += stride) {
    if (s + patch >= stop) {
      starts.push(stop - patch);
      break;
    }
    starts.push(s);
  }
  return starts;
}

/** Returns the blended output over the region, [Cout][rz][ry][rx]. */
export async function slidingWindowReference(o: ReferenceInput): Promise<Float32Array> {
  const [vz, vy, vx] = o.volumeShape;
  const rs = o.region?.start ?? [0, 0, 0];
  const re = o.region?.stop ?? o.volumeShape;
  const [rz, ry, rx] = [re[0] - rs[0], re[1] - rs[1], re[2] - rs[2]];
  const [pz, py, px] = o.patchShape;
  const pv = pz * py * px;
  const weights = blendWeights(o.blend, o.patchShape);
  const num = new Float64Array(o.outputChannels * rz * ry * rx);
  const den = new Float64Array(rz * ry * rx);
  const input = new Float32Array(o.inputChannels * pv);

  for (const z0 of patchStarts(rs[0], re[0], pz, o.overlap[0]))
    for (const y0 of patchStarts(rs[1], re[1], py, o.overlap[1]))
      for (const x0 of patchStarts(rs[2], re[2], px, o.overlap[2])) {
        input.fill(0);
        for (let c = 0; c < o.inputChannels; c++)
          for (let z = 0; z < pz; z++)
            for (let y = 0; y < py; y++)
              for (let x = 0; x < px; x++) {
                const [gz, gy, gx] = [z0 + z, y0 + y, x0 + x];
                if (gz < vz && gy < vy && gx < vx)
                  input[((c * pz + z) * py + y) * px + x] =
                    o.volume[((c * vz + gz) * vy + gy) * vx + gx]!;
              }
        const out = await o.model.run(input, 1, o.patchShape);
        for (let z = 0; z < pz; z++)
          for (let y = 0; y < py; y++)
            for (let x = 0; x < px; x++) {
              const [lz, ly, lx] = [z0 + z - rs[0], y0 + y - rs[1], x0 + x - rs[2]];
              if (lz < 0 || ly < 0 || lx < 0 || lz >= rz || ly >= ry || lx >= rx) continue;
              const wi = (z * py + y) * px + x;
              const w = weights[wi]!;
              const ri = (lz * ry + ly) * rx + lx;
              den[ri]! += w;
              for (let c = 0; c < o.outputChannels; c++)
                num[c * rz * ry * rx + ri]! += w * out[c * pv + wi]!;
            }
      }

  const result = new Float32Array(num.length);
  const n = den.length;
  for (let i = 0; i < num.length; i++) result[i] = num[i]! / den[i % n]!;
  return result;
}
