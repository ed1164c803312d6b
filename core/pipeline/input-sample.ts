// A deterministic sample of the input: a fixed, strided selection of its stored chunks
// over the region, read once at plan time. Percentile normalisation is computed from it
// (and frozen in the job description), and `tessera plan` shows what the model will
// receive from it. It depends on the input and the region only, never on chunkShape or
// on the workers: two chunkings of one input sample the same voxels.
//
//   stored chunk grid over the region, C order:  0 1 2 3 4 5 6 7 8 9 10 11 …  N − 1
//   K boxes, the middle of K equal strides:           ^       ^        ^      …
//   (K ≤ maxBoxes, and K × chunk voxels ≤ maxVoxels; a chunk larger than the whole
//    budget is cut to its centre)

import { Box, type Vec3 } from '../geometry/index.ts';
import type { InputVolume } from '../volume/index.ts';
import { type InputMapping, mapValue, scaleOffsetOf } from '../volume/normalize.ts';

export interface SampleBudget {
  /** Most stored chunks read. */
  maxBoxes: number;
  /** Most voxels (all channels) read in all. */
  maxVoxels: number;
}

export const DEFAULT_SAMPLE: SampleBudget = { maxBoxes: 64, maxVoxels: 4 * 2 ** 20 };

export interface InputSample {
  /** Boxes read. */
  boxes: number;
  /** Voxels read (all channels), NaN included. */
  voxels: number;
  /** NaN voxels among them. */
  nan: number;
  /** The other values, ascending. */
  sorted: Float64Array;
}

/** The boxes a sample reads: see the module header. */
export function sampleBoxes(
  chunkShape: Vec3,
  region: Box,
  channels: number,
  budget: SampleBudget = DEFAULT_SAMPLE,
): Box[] {
  const lo = [0, 1, 2].map((a) => Math.floor(region.start[a]! / chunkShape[a]!));
  const n = [0, 1, 2].map((a) => Math.ceil(region.stop[a]! / chunkShape[a]!) - lo[a]!);
  const total = n[0]! * n[1]! * n[2]!;
  const perChunk = chunkShape[0] * chunkShape[1] * chunkShape[2] * channels;
  const k = Math.max(1, Math.min(budget.maxBoxes, total, Math.floor(budget.maxVoxels / perChunk)));
  const boxes: Box[] = [];
  for (let j = 0; j < k; j++) {
    const i = Math.floor(((2 * j + 1) * total) / (2 * k));
    const coord = [Math.floor(i / (n[1]! * n[2]!)), Math.floor(i / n[2]!) % n[1]!, i % n[2]!];
    const start = [0, 1, 2].map((a) => (lo[a]! + coord[a]!) * chunkShape[a]!) as unknown as Vec3;
    const stop = [0, 1, 2].map((a) => start[a]! + chunkShape[a]!) as unknown as Vec3;
    boxes.push(centreWithin(new Box(start, stop).intersect(region), budget.maxVoxels / channels));
  }
  return boxes;
}

/** `box`, or its centre halved along its longest axis until it holds at most `voxels`. */
function centreWithin(box: Box, voxels: number): Box {
  let b = box;
  while (b.size > voxels) {
    const s = b.shape;
    const a = s[0] >= s[1] && s[0] >= s[2] ? 0 : s[1] >= s[2] ? 1 : 2;
    const keep = Math.max(1, Math.floor(s[a] / 2));
    const start = [...b.start] as unknown as [number, number, number];
    const stop = [...b.stop] as unknown as [number, number, number];
    start[a] += Math.floor((s[a] - keep) / 2);
    stop[a] = start[a] + keep;
    b = new Box(start, stop);
  }
  return b;
}

/** Reads the sample of `input` over `region` (a few boxes at a time). */
export async function readInputSample(
  input: InputVolume,
  region: Box,
  budget: SampleBudget = DEFAULT_SAMPLE,
): Promise<InputSample> {
  const boxes = sampleBoxes(input.chunkShape, region, input.channels, budget);
  const parts: ArrayLike<number>[] = new Array(boxes.length);
  const PARALLEL = 8;
  for (let i = 0; i < boxes.length; i += PARALLEL)
    await Promise.all(
      boxes.slice(i, i + PARALLEL).map(async (box, k) => {
        parts[i + k] = (await input.readBox(box)).data;
      }),
    );
  let voxels = 0;
  for (const p of parts) voxels += p.length;
  const values = new Float64Array(voxels);
  let kept = 0;
  for (const p of parts)
    for (let i = 0; i < p.length; i++) {
      const v = p[i]!;
      if (!Number.isNaN(v)) values[kept++] = v;
    }
  const sorted = values.subarray(0, kept).sort();
  return { boxes: boxes.length, voxels, nan: voxels - kept, sorted };
}

/**
 * The p-th percentile (0..100) of ascending `sorted`, interpolated linearly between the
 * two nearest ranks (numpy's default: rank (n − 1) · p / 100).
 */
export function percentileOf(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return Number.NaN;
  const h = ((n - 1) * p) / 100;
  const i = Math.floor(h);
  const a = sorted[i]!;
  const b = sorted[Math.min(n - 1, i + 1)]!;
  return h === i ? a : a + (h - i) * (b - a);
}

/** What the model receives from the sample, after normalisation. */
export interface InputRange {
  min: number;
  p1: number;
  p50: number;
  p99: number;
  max: number;
  /** Share (0..1) of the sampled non-NaN voxels at or above 1 after mapping. */
  atOrAboveOne: number;
  /** Share of them within 0.05 of 0. */
  nearZero: number;
}

export function inputRange(sample: InputSample, mapping: InputMapping): InputRange | undefined {
  const n = sample.sorted.length;
  if (n === 0) return undefined;
  const f = mapValue(mapping);
  // The mapping is monotone: increasing, or decreasing for a negative scale.
  const ascending = scaleOffsetOf(mapping).scale >= 0;
  const mapped = Float64Array.from(sample.sorted, (v) => Math.fround(f(v)));
  if (!ascending) mapped.reverse();
  let above = 0;
  let near = 0;
  for (const v of mapped) {
    if (v >= 1) above++;
    if (Math.abs(v) < 0.05) near++;
  }
  return {
    min: mapped[0]!,
    p1: percentileOf(mapped, 1),
    p50: percentileOf(mapped, 50),
    p99: percentileOf(mapped, 99),
    max: mapped[n - 1]!,
    atOrAboveOne: above / n,
    nearZero: near / n,
  };
}

/** Warnings about what the model would receive: mostly saturated, mostly near 0, NaN to fail. */
export function inputRangeWarnings(
  range: InputRange | undefined,
  sample: InputSample,
  nan: 'zero' | 'fail',
): string[] {
  const pct = (x: number): string => `${(100 * x).toFixed(x < 0.1 ? 1 : 0)} %`;
  const warnings: string[] = [];
  if (range && range.atOrAboveOne > 0.5)
    warnings.push(
      `${pct(range.atOrAboveOne)} of the sampled model inputs are at or above 1 (max ${fmt(range.max)}): ` +
        'the model would see a mostly saturated image; map the input onto [0, 1] with input.scale ' +
        'or input.normalize { "percentiles": [0.5, 99.5] }',
    );
  if (range && range.nearZero > 0.5)
    warnings.push(
      `${pct(range.nearZero)} of the sampled model inputs are within 0.05 of 0 (p99 ${fmt(range.p99)}): ` +
        "the model would see a mostly black image (data using a small part of the dtype's range, " +
        'e.g. 12-bit data in uint16?); consider input.normalize { "percentiles": [0.5, 99.5] }',
    );
  if (sample.nan > 0 && nan === 'fail')
    warnings.push(
      `${sample.nan} of the ${sample.voxels} sampled input voxels are NaN and input.nan is "fail": ` +
        'every chunk holding NaN will fail before inference; set input.nan: "zero" to feed them as 0',
    );
  return warnings;
}

/** A number for people: 4 significant digits. */
export const fmt = (x: number): string =>
  Number.isInteger(x) ? String(x) : String(+x.toPrecision(4));
