// `tessera plan`'s account of what the model will receive: the job's normalisation (rule,
// scale, offset, NaN), and the range of model inputs over the deterministic input sample
// (min, p1, p50, p99, max after normalisation), with warnings when they would mostly
// saturate, mostly sit near 0, or hold NaN that input.nan "fail" refuses.

import type { JobContext } from '../core/pipeline/context.ts';
import { describeNormalisation } from '../core/pipeline/input-normalisation.ts';
import {
  fmt,
  type InputRange,
  inputRange,
  inputRangeWarnings,
  readInputSample,
} from '../core/pipeline/input-sample.ts';
import type { InputNormalisation } from '../core/pipeline/job-description.ts';
import { scaleOffsetOf } from '../core/volume/normalize.ts';

export interface PlanNormalisation {
  normalization: InputNormalisation & { scale: number; offset: number };
  sample: { boxes: number; voxels: number; nan: number };
  /** Over the sample's non-NaN voxels, after normalisation; absent when all are NaN. */
  range?: InputRange;
  warnings: string[];
}

export async function sampleModelInputs(ctx: JobContext): Promise<PlanNormalisation> {
  const n = ctx.description.normalization;
  const sample = await readInputSample(ctx.input, ctx.plan.region);
  const range = inputRange(sample, n.mapping);
  return {
    normalization: { ...n, ...scaleOffsetOf(n.mapping) },
    sample: { boxes: sample.boxes, voxels: sample.voxels, nan: sample.nan },
    ...(range ? { range } : {}),
    warnings: inputRangeWarnings(range, sample, n.nan),
  };
}

export function normalisationLines(p: PlanNormalisation, dtype: string): string[] {
  const s = p.sample;
  const r = p.range;
  const nan = s.nan > 0 ? `; ${s.nan} NaN` : '';
  return [
    `input      ${describeNormalisation(p.normalization, dtype)}`,
    `           model inputs over ${s.voxels} voxels of ${s.boxes} stored chunk(s)${nan}: ` +
      (r
        ? `min ${fmt(r.min)}, p1 ${fmt(r.p1)}, p50 ${fmt(r.p50)}, p99 ${fmt(r.p99)}, max ${fmt(r.max)}`
        : 'every sampled voxel is NaN'),
    ...p.warnings.map((w) => `warning    ${w}`),
  ];
}
