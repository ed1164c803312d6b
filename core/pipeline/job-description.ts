// The job described once: at plan time the planner writes what the job was planned for
// (the input's shape and dtype, the plan's parameters and chunk count, the manifest's
// canonical id) into the job's work store, and every later step (workers, blend,
// finalize, status) that opens the job checks what it opens against it. An input whose
// shape or dtype changed under a running job is refused by name, instead of each process
// quietly re-deriving a different plan from the input's metadata.
//
// Version 2 adds the input normalisation (the mapping every worker applies, percentiles
// already sampled): workers read it from here and never derive it themselves. A version-1
// description (written before per-dtype defaults) is read as the rule of its time
// (legacyMapping), so a job planned then keeps feeding its model what its first chunks got.
//
//   plan ──► work store /job.json (local: <state dir>/work/<jobId>/; cloud: jobs/<jobId>/)
//   worker, blend, finalize, status ──► openJob ──► checkJobDescription ──► Plan

import { createHash } from 'node:crypto';
import type { Plan, Vec3 } from '../geometry/index.ts';
import { canonicalJson } from '../manifest/identity.ts';
import type { Manifest } from '../manifest/schema.ts';
import type { Store } from '../store/index.ts';
import { type InputMapping, legacyMapping } from '../volume/normalize.ts';
import { InputChangedError, JobDescriptionError, PlanChangedError } from './errors.ts';

/** Key of the description in the job's work store (cloud: KEYS.jobDescription). */
export const JOB_DESCRIPTION_KEY = '/job.json';

/** A description as this release writes it: version 2, normalisation included. */
export type PlannedDescription = JobDescription & { version: 2; normalization: InputNormalisation };

/** How the job's input values become model inputs, decided once at plan time. */
export interface InputNormalisation {
  /**
   * dtype: the dtype's range onto [0, 1]; as-is: a float input unchanged; scale-offset:
   * input.scale/offset; percentiles: input.normalize, sampled; legacy: a version-1 job's rule.
   */
  rule: 'dtype' | 'as-is' | 'scale-offset' | 'percentiles' | 'legacy';
  mapping: InputMapping;
  /** What NaN input voxels do (input.nan). */
  nan: 'zero' | 'fail';
  /** For rule percentiles: which, the raw values found, and the sample they came from. */
  percentiles?: {
    at: [number, number];
    values: [number, number];
    sample: { boxes: number; voxels: number; nan: number };
  };
}

export interface JobDescription {
  version: 1 | 2;
  jobId: string;
  /** sha256 of the parsed manifest's canonical JSON: the job as it was planned. */
  manifestId: string;
  input: { url: string; array?: string; shape: Vec3; dtype: string };
  chunks: number;
  plan: {
    patch: Vec3;
    inputPatch: Vec3;
    overlap: Vec3;
    chunk: Vec3;
    block: Vec3;
    region: { start: Vec3; stop: Vec3 };
  };
  /** Version 2 on; a version-1 description is read with its legacy rule (normalisationOf). */
  normalization?: InputNormalisation;
}

/** The canonical id of a parsed manifest (what JobDescription.manifestId holds). */
export function manifestId(manifest: Manifest): string {
  return createHash('sha256').update(canonicalJson(manifest)).digest('hex');
}

export function describeJob(
  jobId: string,
  manifest: Manifest,
  input: { shape: Vec3; dtype: string },
  plan: Plan,
  normalization: InputNormalisation = normalisationOf(undefined, manifest, input.dtype),
): PlannedDescription {
  return {
    version: 2,
    jobId,
    manifestId: manifestId(manifest),
    input: {
      url: manifest.input.url,
      ...(manifest.input.array === undefined ? {} : { array: manifest.input.array }),
      shape: [...input.shape] as unknown as Vec3,
      dtype: input.dtype,
    },
    chunks: plan.counts.chunks,
    plan: {
      patch: plan.patchShape,
      inputPatch: plan.inputPatchShape,
      overlap: plan.overlap,
      chunk: manifest.chunkShape,
      block: plan.blockShape,
      region: { start: plan.region.start, stop: plan.region.stop },
    },
    normalization,
  };
}

/**
 * The normalisation a described job applies: its own (version 2), or for a version-1
 * description the rule releases of that version applied, with the manifest's input.nan.
 * Without a description (`d` undefined): the legacy rule too, as the fallback for callers
 * that have not planned (planNormalisation in input-normalisation.ts decides for new jobs).
 */
export function normalisationOf(
  d: JobDescription | undefined,
  manifest: Manifest,
  dtype: string,
): InputNormalisation {
  if (d?.normalization) return d.normalization;
  const { scale, offset } = manifest.input;
  return {
    rule: 'legacy',
    mapping: legacyMapping(dtype, scale, offset),
    // As planNormalisation's default; a version-1 job fed NaN to the model, which failed.
    nan: manifest.input.nan ?? 'fail',
  };
}

/** The description the planner wrote into `work`, or undefined before the job is planned. */
export async function readJobDescription(work: Store): Promise<JobDescription | undefined> {
  const bytes = await work.get(JOB_DESCRIPTION_KEY);
  if (bytes === undefined) return undefined;
  const where = `${work.location ?? 'the work store'}${JOB_DESCRIPTION_KEY}`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new JobDescriptionError(
      `${where} is not valid JSON (${error.message}); it is written once at plan time: delete it and plan the job again`,
      where,
      { cause: error },
    );
  }
  if (!isDescription(parsed))
    throw new JobDescriptionError(
      `${where} is not a job description this release reads (version 1 or 2 with input.shape, input.dtype, chunks, plan; version 2 with normalization); delete it and plan the job again`,
      where,
    );
  return parsed;
}

/** Writes the description once: an existing one is kept (the checks at open compare it). */
export async function writeJobDescription(work: Store, d: JobDescription): Promise<void> {
  if ((await work.get(JOB_DESCRIPTION_KEY)) !== undefined) return;
  await work.set(JOB_DESCRIPTION_KEY, new TextEncoder().encode(`${JSON.stringify(d, null, 2)}\n`));
}

/**
 * Refuses an input that is not the one the job was planned for (InputChangedError), or
 * a plan that comes out differently from the frozen one (PlanChangedError).
 */
export function checkInputAgainst(d: JobDescription, input: { shape: Vec3; dtype: string }): void {
  const url = d.input.url;
  if (!sameVec(d.input.shape, input.shape))
    throw new InputChangedError(
      `input.url ${url} now has shape [${input.shape.join(', ')}], the job was planned for [${d.input.shape.join(', ')}]: the input changed under a running job; restore it, or start a new job for the new input`,
      d.jobId,
      'shape',
    );
  if (d.input.dtype !== input.dtype)
    throw new InputChangedError(
      `input.url ${url} now has dtype ${input.dtype}, the job was planned for ${d.input.dtype}: the input changed under a running job; restore it, or start a new job for the new input`,
      d.jobId,
      'dtype',
    );
}

export function checkPlanAgainst(d: JobDescription, now: JobDescription): void {
  const was = canonicalJson({ chunks: d.chunks, plan: d.plan });
  const is = canonicalJson({ chunks: now.chunks, plan: now.plan });
  if (was === is) return;
  throw new PlanChangedError(
    `job ${d.jobId} was planned as ${describePlan(d)}, but this release plans it as ${describePlan(now)}: finish it with the release that planned it, or start a new job`,
    d.jobId,
  );
}

const describePlan = (d: JobDescription): string =>
  `${d.chunks} chunk(s) of [${d.plan.chunk.join(', ')}] (patch [${d.plan.patch.join(', ')}], overlap [${d.plan.overlap.join(', ')}], block [${d.plan.block.join(', ')}], region [${d.plan.region.start.join(', ')}]-[${d.plan.region.stop.join(', ')}])`;

const sameVec = (a: readonly number[], b: readonly number[]): boolean =>
  a.length === b.length && a.every((v, i) => v === b[i]);

function isDescription(x: unknown): x is JobDescription {
  if (typeof x !== 'object' || x === null) return false;
  const d = x as Partial<JobDescription>;
  return (
    (d.version === 1 || (d.version === 2 && isNormalisation(d.normalization))) &&
    typeof d.jobId === 'string' &&
    typeof d.chunks === 'number' &&
    typeof d.input?.dtype === 'string' &&
    Array.isArray(d.input.shape) &&
    d.input.shape.length === 3 &&
    typeof d.plan === 'object' &&
    d.plan !== null
  );
}

function isNormalisation(x: unknown): x is InputNormalisation {
  if (typeof x !== 'object' || x === null) return false;
  const n = x as Partial<InputNormalisation>;
  const m = n.mapping as Partial<Record<string, unknown>> | undefined;
  const finite = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v);
  const mappingOk =
    m !== undefined &&
    ((m.kind === 'range' && finite(m.low) && finite(m.high) && m.high !== m.low) ||
      (m.kind === 'affine' && finite(m.scale) && finite(m.offset)));
  return typeof n.rule === 'string' && (n.nan === 'zero' || n.nan === 'fail') && mappingOk;
}
