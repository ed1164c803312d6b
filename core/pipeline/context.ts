// A job, opened: the validated manifest, its plan, and the volumes and stores every step
// works on. Built once per process (CLI, Lambda invocation, worker container).

import { createHash } from 'node:crypto';
import { Plan, type PlanInput, type PlanSize, planSize, type Vec3 } from '../geometry/index.ts';
// The manifest's modules one by one, not its index: a worker opens jobs from a manifest
// already validated, and the index would load the validator (zod) into every worker.
import type { Manifest } from '../manifest/schema.ts';
import { canonicalStorageUrl } from '../manifest/url.ts';
import { checkManifestAgainstVolume } from '../manifest/volume.ts';
import type { Store } from '../store/index.ts';
import { openStoreForUrl } from '../store/index.ts';
import {
  createOutputVolume,
  defaultShardShape,
  type InputVolume,
  type OutputVolume,
  openInputVolume,
  openOutputVolume,
  VolumeFormatError,
} from '../volume/index.ts';
import type { MaskVolume } from '../volume/mask.ts';
import { openMask } from '../volume/mask-open.ts';
import { PrecomputedInfoError } from '../volume/precomputed/errors.ts';
import { outputFormat } from '../volume/precomputed/output.ts';
import { storedOutput } from './convert.ts';
import { planNormalisation } from './input-normalisation.ts';
import {
  checkInputAgainst,
  checkPlanAgainst,
  describeJob,
  normalisationOf,
  type PlannedDescription,
  readJobDescription,
} from './job-description.ts';

// Moved to the manifest module with job identity; re-exported for callers of this one.
export { canonicalJson } from '../manifest/identity.ts';

export interface JobContext {
  readonly jobId: string;
  readonly manifest: Manifest;
  readonly plan: Plan;
  readonly input: InputVolume;
  /** Opened lazily by the steps that write: the first worker creates it (ensureOutput). */
  readonly outputStore: Store;
  /** output.url in one spelling per place (see canonicalStorageUrl): the ledger's output claim key. */
  readonly outputUrl: string;
  /** Where seam partials live (local: the state dir; cloud: jobs/<jobId>/ in the bucket). */
  readonly work: Store;
  /** Writers also keep the planes preview.png shows, in `work` (see preview-tiles.ts). */
  readonly previewTiles?: boolean;
  /**
   * What the job is planned for; planJob writes it once into `work` (JOB_DESCRIPTION_KEY)
   * and openJob checks every later opening against that copy.
   */
  readonly description: PlannedDescription;
  /**
   * The output's shard shape (output.shardShape, or the chunk pitch's for a job opened
   * with defaultSharding: cloud jobs); undefined: one object per block.
   */
  readonly shardShape?: Vec3;
  /** input.mask, opened and checked against the input (core/volume/mask.ts). */
  readonly mask?: MaskVolume;
}

export interface OpenJobOptions {
  jobId: string;
  work: Store;
  /** Directory relative URLs are resolved against (the manifest's directory). */
  baseDir?: string;
  /** Plan limits (the manifest cannot ask for more than the operator allows). */
  limits?: PlanLimits;
  /** See JobContext.previewTiles; local runs set it. */
  previewTiles?: boolean;
  /**
   * Shard a Zarr output that names no output.shardShape at the chunk pitch
   * (defaultShardShape): what every step of a cloud job opens it with.
   */
  defaultSharding?: boolean;
}

export interface PlanLimits {
  maxChunks?: number;
  maxVoxels?: number;
  /** Output blocks (storage objects) the region touches: the request bill of a job. */
  maxBlocks?: number;
}

export const DEFAULT_LIMITS: Required<PlanLimits> = {
  maxChunks: 10_000_000,
  maxVoxels: 1e16,
  maxBlocks: 1e9,
};

export class PlanLimitError extends Error {
  override readonly name = 'PlanLimitError';
  constructor(
    message: string,
    /** The quantity over its limit. */
    readonly quantity: 'chunks' | 'voxels' | 'blocks',
    readonly value: number,
    readonly limit: number,
  ) {
    super(message);
  }
}

/**
 * MIGRATION ONLY: the job id earlier releases gave a manifest, `<name>-<8 hex>` of the
 * PARSED manifest with its defaults filled in (so it changed whenever a release changed a
 * default). Job ids now come from the document as written (jobIdForDocument in
 * core/manifest/identity.ts); this one is kept only to find a job that a state directory
 * written by an earlier release holds under it (cli/job-files.ts resolveJobId).
 */
export function legacyJobIdFor(manifest: Manifest): string {
  const digest = createHash('sha256').update(legacyCanonicalJson(manifest)).digest('hex');
  return `${manifest.name}-${digest.slice(0, 8)}`;
}

// Byte for byte the serialisation earlier releases hashed; do not "fix" it, or the ids it
// finds would no longer be the ones those releases wrote.
function legacyCanonicalJson(value: unknown): string {
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
  // input.t and input.channels pick what of a higher-dimensional image the job reads.
  const input = await openInputVolume(inputStore, manifest.input.array, manifest.input);
  // A planned job pins what it was planned for: an input that changed since is refused
  // by name here, before the manifest checks would blame the manifest for it.
  const frozen = await readJobDescription(o.work);
  if (frozen) checkInputAgainst(frozen, input);
  checkManifestAgainstVolume(manifest, input.shape);
  // Metadata that misdescribes the chunks fails every chunk alike: once, here, before any claim.
  await input.checkStoredChunk();
  const plan = planFor(manifest, input.shape, {
    jobId: o.jobId,
    limits: o.limits,
    blockShape: frozen?.plan.block,
  });
  // Decided once, at plan time (percentiles: from a sample of the input), and frozen:
  // every later opening applies the frozen one, a version-1 job its legacy rule.
  const normalization = frozen
    ? normalisationOf(frozen, manifest, input.dtype)
    : await planNormalisation(manifest, input, plan.region);
  const description = describeJob(o.jobId, manifest, input, plan, normalization);
  if (frozen) checkPlanAgainst(frozen, description);
  const outputStore = await openStoreForUrl(manifest.output.url, storeOpts);
  const outputUrl = canonicalStorageUrl(manifest.output.url, o.baseDir);
  return {
    jobId: o.jobId,
    manifest,
    plan,
    input,
    outputStore,
    outputUrl,
    work: o.work,
    previewTiles: o.previewTiles === true,
    description,
    ...shardingOf(manifest, plan, o),
    ...(manifest.input.mask ? { mask: await openMask(manifest.input.mask, input, storeOpts) } : {}),
  };
}

function shardingOf(manifest: Manifest, plan: Plan, o: OpenJobOptions): { shardShape?: Vec3 } {
  if (manifest.output.shardShape) return { shardShape: manifest.output.shardShape };
  if (!o.defaultSharding || outputFormat(manifest.output) !== 'zarr') return {};
  return {
    shardShape: defaultShardShape({
      stride: plan.stride,
      patchesPerChunk: plan.patchesPerChunk,
      blockShape: plan.blockShape,
      volumeShape: plan.volumeShape,
    }),
  };
}

/**
 * The plan of a manifest over a volume. For a valid-convolution model the grid is laid
 * over its output patch, and each patch reads its input patch, centred around it.
 *
 * The limits are checked on the closed-form sizes first, before anything is built: the
 * volume's shape comes from a zarr.json anyone can write.
 */
export function planFor(
  manifest: Manifest,
  volumeShape: Vec3,
  o: {
    jobId?: string | undefined;
    limits?: PlanLimits | undefined;
    /**
     * The block a planned job was planned with (its frozen description's), for a manifest
     * that names no output.blockShape: a default that changes between releases must not
     * re-plan a job under way.
     */
    blockShape?: Vec3 | undefined;
  } = {},
): Plan {
  const input = manifest.model.patchShape;
  const output = manifest.model.outputPatchShape ?? input;
  const planInput: PlanInput = {
    volumeShape,
    region: manifest.region,
    patchShape: output,
    inputMargin: [0, 1, 2].map((a) => (input[a]! - output[a]!) / 2) as unknown as Vec3,
    overlap: manifest.overlap,
    chunkShape: manifest.chunkShape,
    blockShape: manifest.output.blockShape ?? o.blockShape,
  };
  const limits: Required<PlanLimits> = {
    maxChunks: o.limits?.maxChunks ?? DEFAULT_LIMITS.maxChunks,
    maxVoxels: o.limits?.maxVoxels ?? DEFAULT_LIMITS.maxVoxels,
    maxBlocks: o.limits?.maxBlocks ?? DEFAULT_LIMITS.maxBlocks,
  };
  checkPlanLimits(planSize(planInput), limits, o.jobId);
  return new Plan(planInput);
}

const count = (n: number): string => (n < 1e9 ? String(n) : n.toExponential(2));

function checkPlanLimits(size: PlanSize, limits: Required<PlanLimits>, jobId?: string): void {
  const job = jobId === undefined ? 'this job' : `job ${jobId}`;
  const over = (
    quantity: PlanLimitError['quantity'],
    value: number,
    limit: number,
    what: string,
    todo: string,
  ): void => {
    if (value > limit)
      throw new PlanLimitError(
        `${job}: ${what} ${count(value)} ${quantity}, over the limit of ${count(limit)}; ${todo}`,
        quantity,
        value,
        limit,
      );
  };
  over(
    'voxels',
    size.regionVoxels,
    limits.maxVoxels,
    'the region (the input volume unless `region` is set) has',
    'process a smaller region, check the input zarr.json shape, or ask the operator to raise the limit',
  );
  over(
    'chunks',
    size.chunks,
    limits.maxChunks,
    'the plan has',
    'raise chunkShape, process a smaller region, or ask the operator to raise the limit',
  );
  over(
    'blocks',
    size.blocks,
    limits.maxBlocks,
    'the output would be written as',
    'raise output.blockShape (each block is one storage object) or process a smaller region',
  );
}

/**
 * Creates (or re-opens, unchanged) the output array of a job, recording the job as its
 * owner; an output that belongs to another job is refused (OutputOwnedError). Several
 * workers may do this at once: they write identical metadata, and S3 PUTs are atomic;
 * stores that are not (emulators) can show a reader a half-written document, so that
 * case is read again.
 */
export async function ensureOutput(ctx: JobContext): Promise<OutputVolume> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await createOutputVolume(ctx.outputStore, {
        shape: ctx.plan.volumeShape,
        channels: storedOutput(ctx.manifest).channels,
        dtype: ctx.manifest.output.dtype,
        blockShape: ctx.plan.blockShape,
        owner: ctx.jobId,
        format: outputFormat(ctx.manifest.output),
        ...(ctx.shardShape ? { shardShape: ctx.shardShape } : {}),
      });
    } catch (error) {
      // A precomputed output's info half-written by another worker reads the same way.
      const halfWritten =
        (error instanceof VolumeFormatError || error instanceof PrecomputedInfoError) &&
        error.cause instanceof SyntaxError;
      if (!halfWritten || attempt >= 5) throw error;
      await new Promise((r) => setTimeout(r, 50 * attempt));
    }
  }
}

/** Opens the job's existing output, refusing one that belongs to another job. */
export function openJobOutput(ctx: JobContext): Promise<OutputVolume> {
  return openOutputVolume(ctx.outputStore, { owner: ctx.jobId });
}

export const partialKey = (blockKey: string, chunkId: string): `/${string}` =>
  `/partials/${blockKey}/${chunkId}.bin`;

export type { Vec3 };
