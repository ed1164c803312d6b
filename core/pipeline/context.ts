// A job, opened: the validated manifest, its plan, and the volumes and stores every step
// works on. Built once per process (CLI, Lambda invocation, worker container).

import { createHash } from 'node:crypto';
import { Plan, type Vec3 } from '../geometry/index.ts';
import { checkManifestAgainstVolume, type Manifest } from '../manifest/index.ts';
import type { Store } from '../store/index.ts';
import { openStoreForUrl } from '../store/index.ts';
import {
  createOutputVolume,
  type InputVolume,
  type OutputVolume,
  openInputVolume,
  VolumeFormatError,
} from '../volume/index.ts';

export interface JobContext {
  readonly jobId: string;
  readonly manifest: Manifest;
  readonly plan: Plan;
  readonly input: InputVolume;
  /** Opened lazily by the steps that write: planning creates it. */
  readonly outputStore: Store;
  /** Where seam partials live (local: the state dir; cloud: jobs/<jobId>/ in the bucket). */
  readonly work: Store;
}

export interface OpenJobOptions {
  jobId: string;
  work: Store;
  /** Directory relative URLs are resolved against (the manifest's directory). */
  baseDir?: string;
  /** Plan limits (the manifest cannot ask for more than the operator allows). */
  limits?: PlanLimits;
}

export interface PlanLimits {
  maxChunks?: number;
  maxVoxels?: number;
}

export const DEFAULT_LIMITS: Required<PlanLimits> = { maxChunks: 10_000_000, maxVoxels: 1e16 };

export class PlanLimitError extends Error {
  override readonly name = 'PlanLimitError';
}

/** A job id that changes whenever the manifest does: `<name>-<8 hex of its canonical JSON>`. */
export function jobIdFor(manifest: Manifest): string {
  const digest = createHash('sha256').update(canonicalJson(manifest)).digest('hex');
  return `${manifest.name}-${digest.slice(0, 8)}`;
}

export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(
          Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)),
        )
      : v,
  );
}

export async function openJob(manifest: Manifest, o: OpenJobOptions): Promise<JobContext> {
  const storeOpts = o.baseDir === undefined ? {} : { baseDir: o.baseDir };
  const inputStore = await openStoreForUrl(manifest.input.url, storeOpts);
  const input = await openInputVolume(inputStore, manifest.input.array);
  checkManifestAgainstVolume(manifest, input.shape);
  const plan = planFor(manifest, input.shape);
  const limits = { ...DEFAULT_LIMITS, ...o.limits };
  if (plan.counts.chunks > limits.maxChunks) {
    throw new PlanLimitError(
      `job ${o.jobId}: the plan has ${plan.counts.chunks} chunks, over the limit of ${limits.maxChunks}; ` +
        'raise chunkShape or process a smaller region',
    );
  }
  if (plan.counts.regionVoxels > limits.maxVoxels) {
    throw new PlanLimitError(
      `job ${o.jobId}: the region has ${plan.counts.regionVoxels} voxels, over the limit of ${limits.maxVoxels}; ` +
        'process a smaller region or ask the operator to raise the limit',
    );
  }
  const outputStore = await openStoreForUrl(manifest.output.url, storeOpts);
  return { jobId: o.jobId, manifest, plan, input, outputStore, work: o.work };
}

/**
 * The plan of a manifest over a volume. For a valid-convolution model the grid is laid
 * over its output patch, and each patch reads its input patch, centred around it.
 */
export function planFor(manifest: Manifest, volumeShape: Vec3): Plan {
  const input = manifest.model.patchShape;
  const output = manifest.model.outputPatchShape ?? input;
  return new Plan({
    volumeShape,
    region: manifest.region,
    patchShape: output,
    inputMargin: [0, 1, 2].map((a) => (input[a]! - output[a]!) / 2) as unknown as Vec3,
    overlap: manifest.overlap,
    chunkShape: manifest.chunkShape,
    blockShape: manifest.output.blockShape,
  });
}

/**
 * Creates (or re-opens, unchanged) the output array of a job. Several workers may do this
 * at once: they write identical metadata, and S3 PUTs are atomic; stores that are not
 * (emulators) can show a reader a half-written document, so that case is read again.
 */
export async function ensureOutput(ctx: JobContext): Promise<OutputVolume> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createOutputVolume(ctx.outputStore, {
        shape: ctx.plan.volumeShape,
        channels: ctx.manifest.model.outputChannels,
        dtype: ctx.manifest.output.dtype,
        blockShape: ctx.plan.blockShape,
      });
    } catch (error) {
      if (
        !(error instanceof VolumeFormatError) ||
        !(error.cause instanceof SyntaxError) ||
        attempt >= 5
      )
        throw error;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

export const partialKey = (blockKey: string, chunkId: string): `/${string}` =>
  `/partials/${blockKey}/${chunkId}.bin`;

export type { Vec3 };
