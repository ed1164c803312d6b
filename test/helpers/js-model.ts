// A small deterministic "network" in plain JS for fast unit tests: each output channel is
// a nonlinear function of the voxel and its 6-neighbourhood inside the patch (zeros past
// the patch edge), so patch borders and blending genuinely matter.

import type { Vec3 } from '../../core/geometry/index.ts';
import type { PatchModel } from '../../core/infer/index.ts';

export function jsModel(
  inputChannels: number,
  outputChannels: number,
): PatchModel & { calls: number; patches: number } {
  const m = {
    calls: 0,
    patches: 0,
    // A valid-convolution stand-in when outPatch < patch: computes on the input patch and
    // returns the centred outPatch.
    async run(
      batch: Float32Array,
      n: number,
      patch: Vec3,
      outPatch: Vec3 = patch,
    ): Promise<Float32Array> {
      m.calls++;
      m.patches += n;
      const [pz, py, px] = patch;
      const pv = pz * py * px;
      const [oz, oy, ox] = outPatch;
      const [mz, my, mx] = [(pz - oz) / 2, (py - oy) / 2, (px - ox) / 2];
      const ov = oz * oy * ox;
      const out = new Float32Array(n * outputChannels * ov);
      const at = (b: number, c: number, z: number, y: number, x: number): number =>
        z < 0 || y < 0 || x < 0 || z >= pz || y >= py || x >= px
          ? 0
          : batch[(b * inputChannels + c) * pv + (z * py + y) * px + x]!;
      for (let b = 0; b < n; b++)
        for (let z = mz; z < mz + oz; z++)
          for (let y = my; y < my + oy; y++)
            for (let x = mx; x < mx + ox; x++) {
              let v = 0;
              let nb = 0;
              for (let c = 0; c < inputChannels; c++) {
                v += at(b, c, z, y, x) * (c + 1);
                nb += at(b, c, z - 1, y, x) + at(b, c, z + 1, y, x) + at(b, c, z, y - 1, x);
                nb += at(b, c, z, y + 1, x) + at(b, c, z, y, x - 1) + at(b, c, z, y, x + 1);
              }
              for (let k = 0; k < outputChannels; k++)
                out[(b * outputChannels + k) * ov + ((z - mz) * oy + (y - my)) * ox + (x - mx)] =
                  Math.tanh(0.7 * v - 0.3 * (k + 1) * nb + 0.1 * k);
            }
      return out;
    },
  };
  return m;
}
