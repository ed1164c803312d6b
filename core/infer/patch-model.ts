// What the pipeline asks of a model: a batch of patches in, a batch of outputs out. The
// ONNX runner, the threaded runner, the tests' JS models and the reference all meet here.

import type { Vec3 } from '../geometry/vec3.ts';

export interface PatchModel {
  /** batch: [n, Cin, pz, py, px] → [n, Cout, oz, oy, ox] (outPatch defaults to patch). */
  run(batch: Float32Array, n: number, patch: Vec3, outPatch?: Vec3): Promise<Float32Array>;
  /**
   * Optional zero-copy variant: `batch`'s buffer is handed over (detached) and returned
   * with the result. A model on another thread offers it.
   */
  runTransfer?(
    batch: Float32Array,
    n: number,
    patch: Vec3,
    outPatch?: Vec3,
  ): Promise<{ out: Float32Array; batch: Float32Array }>;
}
