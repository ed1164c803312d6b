// The input normalisation of a new job, decided once at plan time (openJob without a
// frozen description) and frozen in its description; workers read it from there.
//
//   input.normalize.percentiles  → sample the input (input-sample.ts), map the two
//                                  percentiles to 0 and 1
//   input.scale / input.offset   → x = v · scale + offset, as written
//   neither, integer dtype       → the dtype's range onto [0, 1] (uint16: v / 65535)
//   neither, float dtype         → as it is

import type { Box } from '../geometry/index.ts';
import type { Manifest } from '../manifest/schema.ts';
import type { InputVolume } from '../volume/index.ts';
import { DTYPE_RANGES, dtypeMapping, scaleOffsetOf } from '../volume/normalize.ts';
import { InputNormalisationError } from './errors.ts';
import {
  DEFAULT_SAMPLE,
  fmt,
  type InputSample,
  percentileOf,
  readInputSample,
  type SampleBudget,
} from './input-sample.ts';
import type { InputNormalisation } from './job-description.ts';

export async function planNormalisation(
  manifest: Manifest,
  input: InputVolume,
  region: Box,
  o: { budget?: SampleBudget; sample?: InputSample } = {},
): Promise<InputNormalisation> {
  const { scale, offset, normalize } = manifest.input;
  // Default "fail": NaN is no data, and a model fed 0 there outputs what looks like a
  // prediction; the failure names the chunk and input.nan, and plan warns ahead of it.
  const nan = manifest.input.nan ?? 'fail';
  if (normalize !== undefined) {
    const sample = o.sample ?? (await readInputSample(input, region, o.budget ?? DEFAULT_SAMPLE));
    const [pLow, pHigh] = normalize.percentiles;
    const where = `input.url ${manifest.input.url}`;
    if (sample.sorted.length === 0)
      throw new InputNormalisationError(
        `input.normalize.percentiles: all ${sample.voxels} voxels sampled from ${sample.boxes} stored chunk(s) of ${where} are NaN, so no percentile exists; give input.scale and input.offset instead`,
        'input.normalize.percentiles',
      );
    const low = percentileOf(sample.sorted, pLow);
    const high = percentileOf(sample.sorted, pHigh);
    if (!(high > low) || !Number.isFinite(high - low))
      throw new InputNormalisationError(
        `input.normalize.percentiles [${pLow}, ${pHigh}] of ${where} are ${fmt(low)} and ${fmt(high)} over the ${sample.sorted.length} voxels sampled from ${sample.boxes} stored chunk(s): no range to map onto [0, 1]; widen the percentiles, or give input.scale and input.offset instead`,
        'input.normalize.percentiles',
      );
    return {
      rule: 'percentiles',
      mapping: { kind: 'range', low, high, ...(normalize.clip ? { clip: true } : {}) },
      nan,
      percentiles: {
        at: [pLow, pHigh],
        values: [low, high],
        sample: { boxes: sample.boxes, voxels: sample.voxels, nan: sample.nan },
      },
    };
  }
  if (scale !== undefined || offset !== undefined)
    return {
      rule: 'scale-offset',
      mapping: { kind: 'affine', scale: scale ?? 1, offset: offset ?? 0 },
      nan,
    };
  return {
    rule: DTYPE_RANGES[input.dtype] ? 'dtype' : 'as-is',
    mapping: dtypeMapping(input.dtype),
    nan,
  };
}

/** One line for people: the rule, the formula, scale and offset, and NaN's fate. */
export function describeNormalisation(n: InputNormalisation, dtype: string): string {
  const m = n.mapping;
  const { scale, offset } = scaleOffsetOf(m);
  const formula =
    m.kind === 'range'
      ? m.low === 0
        ? `x = v / ${fmt(m.high)}`
        : `x = (v − ${fmt(m.low)}) / ${fmt(m.high - m.low)}`
      : `x = v · ${fmt(m.scale)} + ${fmt(m.offset)}`;
  const rule = {
    dtype: `${dtype}'s range [${DTYPE_RANGES[dtype]?.join(', ') ?? '?'}] onto [0, 1]`,
    'as-is': `${dtype} as it is`,
    'scale-offset': 'input.scale / input.offset',
    percentiles: n.percentiles
      ? `percentiles ${n.percentiles.at[0]} and ${n.percentiles.at[1]} (${fmt(n.percentiles.values[0])} and ${fmt(n.percentiles.values[1])}, from ${n.percentiles.sample.voxels} voxels of ${n.percentiles.sample.boxes} stored chunk(s)) onto 0 and 1`
      : 'percentiles',
    legacy: `the rule of the release that planned this job (${m.kind === 'range' ? 'uint8 / 255' : 'v · scale + offset, raw by default'})`,
  }[n.rule];
  return (
    `${rule}: ${formula} (scale ${fmt(scale)}, offset ${fmt(offset)})` +
    `${m.clip ? ', clipped to [0, 1]' : ''}; NaN ${n.nan === 'zero' ? '→ 0' : 'fails the chunk'} (input.nan "${n.nan}")`
  );
}
