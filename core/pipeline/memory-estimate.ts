// Peak memory of one worker, from the plan alone, and the budget it must fit in. A job
// whose worker cannot fit fails every chunk the same way (the kernel kills the worker),
// so the plan refuses it once, naming the figure and the shape to shrink.
//
// What a worker holds at its peak (worker.ts: chunk N+1 is read while N infers and N-1
// writes; infer/chunk.ts: two batch buffers in a depth-2 pipeline):
//
//   input         2 × normalised float32 read box (N inferring, N+1 read ahead)
//                 + 2 × the raw read (this one and the last one's, not yet collected):
//                   the padded box, zarrita's result, and the stored chunks it decodes
//                   (decoded + compressed bytes)
//   accumulation  2 × Σw·f over the footprint, float32 × channels (N inferring, N-1 writing)
//                 + the blend weights of one patch and the per-axis weight sums
//   output        one block buffer and its encoded bytes, one seam partial
//   batch         2 input batch buffers; 3 output-sized tensors (onnxruntime's result,
//                 its copy to JS, the previous batch being accumulated)
//   model         MODEL_MEMORY_FACTOR × the file (the bytes read, onnxruntime's weights)
//   garbage       GC_SLACK_BYTES: buffers dropped but not yet collected (encoded blocks,
//                 partials' bytes, zarrita's temporaries)
//   runtime       Node, V8 and onnxruntime themselves (RUNTIME_BYTES)
//
// A network's hidden activations are not in the ONNX signature: the batch part counts
// tensors of the output's size; a network with many wide hidden layers needs more.

import { readFileSync } from 'node:fs';
import { totalmem } from 'node:os';
import { Box, type Plan, type Vec3 } from '../geometry/index.ts';
// Types only: workers load this module's importers, and must not load the validator (zod).
import type { Manifest } from '../manifest/schema.ts';
import { arrayConstructor, type VolumeDtype } from '../volume/dtype.ts';

/**
 * onnxruntime holds the model's weights (its own copy, pre-packed for the kernels) while
 * the bytes the runner read and hashed are still alive during the session's creation:
 * two copies at the load's peak.
 */
export const MODEL_MEMORY_FACTOR = 2;

/** Node, V8's heap and onnxruntime's library: 150 MiB measured for a worker under tsx. */
export const RUNTIME_BYTES = 192 * 2 ** 20;

/**
 * Dropped buffers V8 has not collected yet: it starts a collection once external (array
 * buffer) memory has grown about 64 MiB past what the last one left, and the work goes on
 * allocating while it marks.
 */
export const GC_SLACK_BYTES = 64 * 2 ** 20;

/**
 * Memory of the stack's AWS Batch worker containers (cdk/constructs/workers.ts): the GPU
 * job definition fits the smallest g4dn/g5/g6.xlarge, the CPU one is a Fargate 8 vCPU task.
 */
export const CLOUD_WORKER_MEMORY_MIB = { gpu: 14_336, cpu: 32_768 } as const;

export interface MemoryParts {
  input: number;
  accumulation: number;
  output: number;
  batch: number;
  model: number;
  garbage: number;
  runtime: number;
}

export interface WorkerMemory {
  /** Σ parts: the peak, in bytes. */
  bytes: number;
  parts: MemoryParts;
  /** The largest chunk's read box and footprint, in voxels (what chunkShape scales). */
  readVoxels: number;
  footprintVoxels: number;
  batchSize: number;
}

export interface WorkerMemoryOptions {
  /** Patches per model call (the workers' --batch). */
  batchSize: number;
  /** Size of the model file; undefined when unknown (not counted, and said so). */
  modelBytes?: number | undefined;
  /** The input volume as opened: channels, stored dtype and storage chunk shape. */
  input: { channels: number; dtype: VolumeDtype; chunkShape: Vec3 };
}

const F32 = 4;

export function workerMemory(
  plan: Plan,
  manifest: Pick<Manifest, 'model' | 'output'>,
  o: WorkerMemoryOptions,
): WorkerMemory {
  const inC = o.input.channels;
  const outC = manifest.model.outputChannels;
  const raw = new (arrayConstructor(o.input.dtype))(0).BYTES_PER_ELEMENT;
  // The first chunk is the largest: every chunk spans ppc patches but the last on an
  // axis (fewer, or shifted back), and footprints are clipped to the region.
  const chunk = plan.describeChunk(plan.chunkCoordAt(0));
  const read = chunk.readBox.size;
  const volume = Box.ofShape(plan.volumeShape);
  const inside = chunk.readBox.intersect(volume);
  const stored = inside.isEmpty() ? 0 : snap(inside, o.input.chunkShape).intersect(volume).size;
  // The raw read is garbage once normalised, but V8 frees array buffers only when a GC
  // runs: the previous chunk's is typically still held when the next read allocates.
  const rawRead = read * inC * raw + inside.size * inC * raw + 2 * stored * inC * raw;
  const input = 2 * read * inC * F32 + 2 * rawRead;

  const [pz, py, px] = plan.patchShape;
  const outPatch = pz * py * px;
  const [iz, iy, ix] = plan.inputPatchShape;
  const inPatch = iz * iy * ix;
  const region = plan.region.shape;
  const accumulation =
    2 * chunk.footprint.size * outC * F32 +
    outPatch * F32 +
    (region[0] + region[1] + region[2]) * 8;

  const [bz, by, bx] = plan.blockShape;
  const block = bz * by * bx * outC;
  const outBytes = manifest.output.dtype === 'uint8' ? 1 : F32;
  const output = 2 * block * outBytes + block * F32;

  const n = Math.max(1, o.batchSize);
  const batch = 2 * n * inC * inPatch * F32 + 3 * n * outC * outPatch * F32;
  const model = (o.modelBytes ?? 0) * MODEL_MEMORY_FACTOR;
  const parts: MemoryParts = {
    input,
    accumulation,
    output,
    batch,
    model,
    garbage: GC_SLACK_BYTES,
    runtime: RUNTIME_BYTES,
  };
  const bytes = Object.values(parts).reduce((a, b) => a + b, 0);
  return { bytes, parts, readVoxels: read, footprintVoxels: chunk.footprint.size, batchSize: n };
}

/** The box grown outward to whole storage chunks. */
function snap(box: Box, chunk: Vec3): Box {
  const f = (v: number, a: number): number => Math.floor(v / chunk[a]!) * chunk[a]!;
  const c = (v: number, a: number): number => Math.ceil(v / chunk[a]!) * chunk[a]!;
  return new Box(
    [f(box.start[0], 0), f(box.start[1], 1), f(box.start[2], 2)],
    [c(box.stop[0], 0), c(box.stop[1], 1), c(box.stop[2], 2)],
  );
}

// ---------------------------------------------------------------------------
// The budget.

export interface MemoryBudget {
  bytes: number;
  /** Where the figure comes from, for messages: "--memory 8G", "the container's limit", … */
  source: string;
}

/** `8G`, `512M`, `1.5GiB`, `2000000000`: bytes (K, M, G, T are powers of 1024). */
export function parseMemorySize(text: string, flag = '--memory'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text);
  const unit = { '': 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 } as const;
  const bytes = m ? Number(m[1]) * unit[(m[2] ?? '').toLowerCase() as keyof typeof unit] : NaN;
  if (!Number.isFinite(bytes) || bytes < 1)
    throw new RangeError(
      `${flag} must be a memory size such as 8G, 512M or 16GiB (K, M, G, T in powers of 1024), got "${text}"`,
    );
  return Math.floor(bytes);
}

/** A file's text, or undefined where it cannot be read (no such cgroup file). */
export type ReadText = (path: string) => string | undefined;

const readText: ReadText = (path) => {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EACCES') return undefined;
    throw error;
  }
};

/**
 * This machine's memory: the container's limit (cgroup v2 memory.max, v1
 * memory.limit_in_bytes) where it is below the physical memory, else os.totalmem().
 */
export function machineMemory(o: { read?: ReadText; totalBytes?: number } = {}): MemoryBudget {
  const read = o.read ?? readText;
  const total = o.totalBytes ?? totalmem();
  const limits: number[] = [];
  for (const path of ['/sys/fs/cgroup/memory.max', '/sys/fs/cgroup/memory/memory.limit_in_bytes']) {
    const text = read(path)?.trim();
    // v2 writes "max" for no limit; v1 a number near 2^63.
    if (text === undefined || text === 'max' || !/^\d+$/.test(text)) continue;
    const n = Number(text);
    if (n > 0 && n < total) limits.push(n);
  }
  if (limits.length > 0)
    return { bytes: Math.min(...limits), source: "this container's memory limit (cgroup)" };
  return { bytes: total, source: "this machine's memory" };
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v.toFixed(v < 10 && u > 0 ? 1 : 0)} ${units[u]}`;
}

// ---------------------------------------------------------------------------
// The check.

/** The workers of a job cannot fit in the memory they will have. */
export class WorkerMemoryError extends Error {
  override readonly name = 'WorkerMemoryError';
  constructor(
    message: string,
    /** One worker's peak, in bytes. */
    readonly perWorker: number,
    readonly workers: number,
    readonly budget: number,
    readonly budgetSource: string,
  ) {
    super(message);
  }
}

/** One line: the figure and its parts, e.g. for `tessera plan`. */
export function describeWorkerMemory(m: WorkerMemory, o: { modelKnown?: boolean } = {}): string {
  const p = m.parts;
  const part = (name: string, v: number): string => `${name} ${formatBytes(v)}`;
  return (
    `${formatBytes(m.bytes)} per worker at peak (${part('input', p.input)}, ${part('accumulation', p.accumulation)}, ` +
    `${part('output', p.output)}, ${part(`batch of ${m.batchSize}`, p.batch)}, ` +
    `${o.modelKnown === false ? 'model not counted' : part('model', p.model)}, ${part('garbage', p.garbage)}, ${part('runtime', p.runtime)})`
  );
}

/**
 * Throws WorkerMemoryError when `workers` workers of `m` exceed the budget, naming the
 * figure, the budget and what to shrink (chunkShape, batch, patchShape) and by how much.
 */
export function checkWorkerMemory(
  m: WorkerMemory,
  manifest: Pick<Manifest, 'chunkShape' | 'model' | 'overlap'>,
  budget: MemoryBudget,
  workers = 1,
): void {
  const need = m.bytes * workers;
  if (need <= budget.bytes) return;
  const perWorker = budget.bytes / workers;
  const who =
    workers === 1
      ? `a worker needs about ${formatBytes(m.bytes)} at peak`
      : `${workers} workers need about ${formatBytes(m.bytes)} each at peak, ${formatBytes(need)} in all`;
  const advice = shrinkAdvice(m, manifest, perWorker);
  throw new WorkerMemoryError(
    `${who}, over the ${formatBytes(budget.bytes)} of ${budget.source}: ${advice}` +
      (workers > 1 ? ', or run fewer workers (--workers)' : ''),
    m.bytes,
    workers,
    budget.bytes,
    budget.source,
  );
}

function shrinkAdvice(
  m: WorkerMemory,
  manifest: Pick<Manifest, 'chunkShape' | 'model' | 'overlap'>,
  perWorker: number,
): string {
  const p = m.parts;
  const fixed = p.output + p.model + p.garbage + p.runtime;
  const room = perWorker - fixed;
  if (room <= 0)
    return `the model and runtime alone need ${formatBytes(fixed)}: give the workers more memory (--memory) or use a smaller model`;
  const tips: string[] = [];
  // Input and accumulation scale with the chunk's volume; the batch with the batch size.
  const chunkPart = p.input + p.accumulation;
  const chunkRoom = room - p.batch;
  const patch = manifest.model.outputPatchShape ?? manifest.model.patchShape;
  const stride = patch.map((v, a) => v - manifest.overlap[a]!);
  if (chunkRoom > 0) {
    const k = Math.cbrt(chunkRoom / chunkPart);
    const shrunk = manifest.chunkShape.map((c, a) => Math.max(stride[a]!, Math.floor(c * k)));
    if (shrunk.some((v, a) => v < manifest.chunkShape[a]!) && k < 1)
      tips.push(
        `shrink chunkShape [${manifest.chunkShape.join(', ')}] to about [${shrunk.join(', ')}] (each axis × ${k.toFixed(2)})`,
      );
  }
  const batchRoom = room - chunkPart;
  if (batchRoom > 0 && m.batchSize > 1) {
    const n = Math.floor((batchRoom / p.batch) * m.batchSize);
    if (n >= 1 && n < m.batchSize)
      tips.push(`lower the batch from ${m.batchSize} to ${n} (--batch)`);
  }
  if (tips.length === 0) {
    // The chunk is at its smallest or the batch at 1: the patch itself is too large.
    const k = Math.cbrt(room / (chunkPart + p.batch));
    tips.push(
      `shrink model.patchShape [${manifest.model.patchShape.join(', ')}] (each axis to about × ${Math.min(k, 0.99).toFixed(2)}), with chunkShape and the batch`,
    );
  }
  return tips.join(', or ');
}
