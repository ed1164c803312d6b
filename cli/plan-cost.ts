// The cost side of `tessera plan`: worker-hours and dollars from a throughput (given, or
// measured here by running the real model on real patches), S3 requests from the
// plan's closed-form counts, and optionally the chunks `input.skipBelow` will skip,
// found by reading the input once.

import { availableParallelism } from 'node:os';
import { Box, fromFn, type Plan } from '../core/geometry/index.ts';
import type { Manifest } from '../core/manifest/schema.ts';
import { localPathOf } from '../core/manifest/url.ts';
import {
  ModelLoadError,
  ModelRunner,
  modelExpectation,
  type ReadSignature,
  readModelSignature,
} from '../core/model/index.ts';
import { type JobContext, readModelBytes, resolveModelPath } from '../core/pipeline/index.ts';
import { normalize } from '../core/volume/index.ts';
import { S3_GET_PER_1000, S3_PUT_PER_1000, type WorkerPrice } from './prices.ts';

export interface Throughput {
  /** Patch voxels (output patch voxels, as the plan counts them) inferred per second by one worker. */
  voxelsPerSecond: number;
  source: string;
}

export interface EmptyScan {
  threshold: number;
  chunks: number;
  patches: number;
  patchVoxels: number;
  seconds: number;
}

export interface CostEstimate {
  throughput: Throughput;
  device: 'cpu' | 'gpu';
  /** Patch voxels that will be inferred (all of the plan's, less skipped chunks when scanned). */
  patchVoxels: number;
  /** model.tta: model runs per patch (1 without), and the patch voxels the model sees in all. */
  tta: { transforms: number; modelPatchVoxels: number };
  skipped?: EmptyScan;
  workerHours: number;
  pricePerHour: number;
  priceBasis: string;
  dollars: number;
  /** Seconds one full chunk takes on one worker: the work lost to one interruption. */
  secondsPerFullChunk: number;
  requests: {
    /** Objects each chunk's worker writes: its owned blocks final, one partial per seam block. */
    putsPerChunk: number;
    /** Worker PUTs + one PUT per blended seam block. */
    puts: number;
    /** The blend step's partial reads. */
    gets: number;
    dollars: number;
  };
}

export function estimateCost(
  plan: Plan,
  o: {
    throughput: Throughput;
    device: 'cpu' | 'gpu';
    price: WorkerPrice;
    skipped?: EmptyScan;
    /** ttaFactor(manifest.model): the throughput is the bare model's, TTA multiplies the work. */
    ttaTransforms?: number;
  },
): CostEstimate {
  const c = plan.counts;
  const patchVoxels = c.patchVoxels - (o.skipped?.patchVoxels ?? 0);
  const transforms = o.ttaTransforms ?? 1;
  const modelPatchVoxels = patchVoxels * transforms;
  const workerHours = modelPatchVoxels / o.throughput.voxelsPerSecond / 3600;
  const perPatch = plan.patchShape[0] * plan.patchShape[1] * plan.patchShape[2];
  const fullChunk = plan.patchesPerChunk[0] * plan.patchesPerChunk[1] * plan.patchesPerChunk[2];
  // Skipped chunks still write their (zero) blocks: requests do not shrink with skipping.
  const workerPuts = c.ownedBlocks + c.seamPartials;
  const puts = workerPuts + c.seamBlocks;
  const gets = c.seamPartials;
  return {
    throughput: o.throughput,
    device: o.device,
    patchVoxels,
    tta: { transforms, modelPatchVoxels },
    ...(o.skipped ? { skipped: o.skipped } : {}),
    workerHours,
    pricePerHour: o.price.perHour,
    priceBasis: o.price.basis,
    dollars: workerHours * o.price.perHour,
    secondsPerFullChunk: (fullChunk * perPatch * transforms) / o.throughput.voxelsPerSecond,
    requests: {
      putsPerChunk: workerPuts / c.chunks,
      puts,
      gets,
      dollars: (puts / 1000) * S3_PUT_PER_1000 + (gets / 1000) * S3_GET_PER_1000,
    },
  };
}

/**
 * The job's model signature (inputs' and outputs' names, dtypes, shapes) for checkJobFits:
 * model.url read (local or from its store, under the workers' size cap), its sha256
 * checked, and opened once in onnxruntime. A missing file is a ModelLoadError naming it.
 */
export async function readJobModel(
  manifest: Pick<Manifest, 'model'>,
  baseDir: string | undefined,
): Promise<ReadSignature> {
  const { url, sha256 } = manifest.model;
  const bytes = await readModelBytes(url, baseDir === undefined ? {} : { baseDir });
  if (bytes === undefined) {
    // Named as the workers will open it: a relative path from the manifest's directory,
    // a file:// URL decoded.
    const path = localPathOf(url, baseDir);
    throw new ModelLoadError(
      url,
      path === undefined
        ? 'there is no object at model.url. Check the URL, or upload the model first.'
        : `there is no file ${path}. Check model.url (a relative path is read from the manifest's directory).`,
    );
  }
  return readModelSignature({ bytes, name: url }, { sha256 });
}

/**
 * Runs the job's model on real patches of its input, `batches` timed batches after one
 * warm-up (session start-up, memory arenas and kernel selection are not throughput).
 * It measures this machine: a laptop CPU says little about a cloud GPU.
 */
export async function calibrate(
  ctx: JobContext,
  baseDir: string,
  o: { batches?: number; batchSize?: number; threads?: number; log?: (l: string) => void } = {},
): Promise<Throughput> {
  const { plan, manifest, input } = ctx;
  const batches = o.batches ?? 3;
  const n = o.batchSize ?? 4;
  const threads = o.threads ?? availableParallelism();
  // The model reads its input patch; a valid-convolution model writes a smaller output
  // patch centred in it, and the plan's patches (and patch voxels) are those outputs.
  const patch = manifest.model.patchShape;
  const out = manifest.model.outputPatchShape ?? patch;
  const margin = fromFn((a) => (patch[a] - out[a]) / 2);
  const perPatch = patch[0] * patch[1] * patch[2];
  const perOutput = out[0] * out[1] * out[2];
  const model = await ModelRunner.open(
    { path: resolveModelPath(manifest.model.url, baseDir) },
    {
      device: manifest.compute.device,
      intraOpThreads: threads,
      ...(manifest.model.sha256 ? { sha256: manifest.model.sha256 } : {}),
      ...(o.log ? { log: o.log } : {}),
      expect: modelExpectation(manifest, { inputChannels: input.channels, batchSize: n }),
    },
  );
  try {
    // Patches of the middle chunk: real content, not the zero padding of an edge.
    const chunk = plan.describeChunk(plan.chunkCoordAt(Math.floor(plan.counts.chunks / 2)));
    const boxes = [...plan.patches(chunk)];
    const batch = async (k: number): Promise<Float32Array> => {
      const out = new Float32Array(n * input.channels * perPatch);
      for (let i = 0; i < n; i++) {
        const box = boxes[(k * n + i) % boxes.length]!.grow(margin);
        const raw = await input.readBox(box);
        const { mapping } = ctx.description.normalization;
        const valid = Box.ofShape(plan.volumeShape);
        out.set(
          normalize(raw, { dtype: input.dtype, mapping, valid }).data,
          i * input.channels * perPatch,
        );
      }
      return out;
    };
    const inputs = await Promise.all(Array.from({ length: batches + 1 }, (_, k) => batch(k)));
    await model.run(inputs[0]!, n, patch);
    const t0 = performance.now();
    for (let k = 1; k <= batches; k++) await model.run(inputs[k]!, n, patch);
    const seconds = (performance.now() - t0) / 1000;
    return {
      voxelsPerSecond: (batches * n * perOutput) / seconds,
      source: `measured on this machine: ${model.device}, ${threads} thread(s), ${batches} batches of ${n} after a warm-up`,
    };
  } finally {
    await model.close();
  }
}

/**
 * The chunks a worker will skip: those whose stored input (halo included, as the
 * worker reads it) lies entirely below `input.skipBelow`. Reads the whole input once,
 * a chunk at a time on `concurrency` lanes.
 */
export async function scanEmpty(
  ctx: JobContext,
  o: { concurrency?: number; onChunk?: (done: number) => void } = {},
): Promise<EmptyScan> {
  const threshold = ctx.manifest.input.skipBelow;
  if (threshold === undefined)
    throw new Error('--scan-empty needs input.skipBelow in the manifest');
  const t0 = performance.now();
  const perPatch = ctx.plan.patchShape[0] * ctx.plan.patchShape[1] * ctx.plan.patchShape[2];
  const it = ctx.plan.chunks()[Symbol.iterator]();
  let chunks = 0;
  let patches = 0;
  let done = 0;
  const lane = async (): Promise<void> => {
    for (let r = it.next(); !r.done; r = it.next()) {
      const raw = await ctx.input.readBox(r.value.readBox);
      if (allBelow(raw.data, threshold)) {
        chunks++;
        patches += r.value.patchCount;
      }
      o.onChunk?.(++done);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 4) }, lane));
  return {
    threshold,
    chunks,
    patches,
    patchVoxels: patches * perPatch,
    seconds: (performance.now() - t0) / 1000,
  };
}

function allBelow(values: ArrayLike<number>, threshold: number): boolean {
  for (let i = 0; i < values.length; i++) if (!(values[i]! < threshold)) return false;
  return true;
}
