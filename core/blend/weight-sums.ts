// Σw, the denominator of the invariance formula, from geometry alone. Weights are
// separable (weights.ts) and the patches covering a voxel are a Cartesian product of the
// patches covering its z, its y and its x, so
//
//   Σ_p w_p(z, y, x) = (Σ_pz wz(z − z0)) · (Σ_py wy(y − y0)) · (Σ_px wx(x − x0))
//
// Three 1-D tables over the region replace a float per voxel that every chunk would
// otherwise accumulate, store in its seam partials, and the blender add up.

import type { Box, Plan } from '../geometry/index.ts';
import { axisWeights, type BlendKind } from './weights.ts';

export interface WeightSums {
  /** Per axis, Σ of that axis's weights over the patches covering each coordinate. */
  readonly axes: readonly [Float64Array, Float64Array, Float64Array];
  /** The region the axes span: index 0 of each is the region's start on that axis. */
  readonly region: Box;
}

const cache = new WeakMap<Plan, Map<BlendKind, WeightSums>>();

export function weightSums(plan: Plan, kind: BlendKind): WeightSums {
  const hit = cache.get(plan)?.get(kind);
  if (hit) return hit;
  const axes = plan.axes.map((a) => {
    const w = axisWeights(kind, a.patch);
    const sums = new Float64Array(a.stop - a.start);
    for (let i = 0; i < a.patchCount; i++) {
      const s = a.patchStart(i) - a.start;
      for (let k = 0; k < a.patch; k++)
        if (s + k >= 0 && s + k < sums.length) sums[s + k]! += w[k]!;
    }
    return sums;
  }) as unknown as [Float64Array, Float64Array, Float64Array];
  const sums: WeightSums = { axes, region: plan.region };
  const perPlan = cache.get(plan) ?? new Map<BlendKind, WeightSums>();
  perPlan.set(kind, sums);
  cache.set(plan, perPlan);
  return sums;
}
