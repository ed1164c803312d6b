// GPU facts for the runner and the bench, as pure functions: parsing nvidia-smi's CSV,
// choosing a batch size from the card's free memory, and the TensorRT engine cache key.
// nvidia-smi is run through an injected runner so all of this is testable without a GPU.

import { createHash } from 'node:crypto';

export interface GpuInfo {
  name: string;
  totalBytes: number;
  freeBytes: number;
}

const MIB = 1024 * 1024;

/**
 * Parses `nvidia-smi --query-gpu=memory.total,memory.free,name --format=csv,noheader,nounits`:
 * one line per GPU, "total, free, name" with memory in MiB. A line that does not read so is
 * an error naming it (a driver that prints "[N/A]" or an error text must not become 0 bytes).
 */
export function parseGpuQuery(csv: string): GpuInfo[] {
  const gpus: GpuInfo[] = [];
  for (const line of csv.split(/\r?\n/)) {
    if (line.trim() === '') continue;
    // The name comes last and may itself hold commas: split off the first two fields only.
    const [total, free, ...rest] = line.split(',');
    const name = rest.join(',').trim();
    const t = Number(total);
    const f = Number(free);
    if (!Number.isFinite(t) || !Number.isFinite(f) || t <= 0 || f < 0 || name === '') {
      throw new RangeError(
        `nvidia-smi line "${line}" is not "memory.total, memory.free, name" in MiB; ` +
          'run nvidia-smi by hand to check the driver',
      );
    }
    gpus.push({ name, totalBytes: t * MIB, freeBytes: f * MIB });
  }
  return gpus;
}

/** Runs a command and returns its stdout, or undefined when it cannot be run. */
export type CommandRunner = (cmd: string, args: string[]) => string | undefined;

export const GPU_QUERY_ARGS = [
  '--query-gpu=memory.total,memory.free,name',
  '--format=csv,noheader,nounits',
];

/** The GPUs nvidia-smi reports, or [] where it is absent (no driver, no GPU). */
export function queryGpus(run: CommandRunner): GpuInfo[] {
  const out = run('nvidia-smi', GPU_QUERY_ARGS);
  return out === undefined ? [] : parseGpuQuery(out);
}

/**
 * The largest power-of-two batch whose estimated bytes (perPatchBytes each) fit in
 * `fraction` of the free memory, at least 1 and at most maxBatch. perPatchBytes comes from
 * the input and output patch sizes times an activations factor (memory-estimate.ts).
 */
export function batchForMemory(
  freeBytes: number,
  perPatchBytes: number,
  o: { fraction?: number; maxBatch?: number } = {},
): number {
  const fraction = o.fraction ?? 0.5;
  const maxBatch = o.maxBatch ?? 256;
  if (!(perPatchBytes > 0)) throw new RangeError(`perPatchBytes must be > 0, got ${perPatchBytes}`);
  const budget = freeBytes * fraction;
  let n = 1;
  while (n * 2 <= maxBatch && n * 2 * perPatchBytes <= budget) n *= 2;
  return n;
}

/**
 * Bytes one patch needs on the device: float32 input and output plus activations, which
 * for a ConvNet scale with the voxels times its widest feature count (activationsFactor).
 */
export function perPatchBytes(
  patchVoxels: number,
  inChannels: number,
  outChannels: number,
  activationsFactor = 32,
): number {
  return 4 * patchVoxels * (inChannels + outChannels + activationsFactor);
}

/**
 * The TensorRT engine cache key: an engine is built for one model, one input shape
 * (patch and batch) and one GPU, so each gets its own cache directory and a changed patch,
 * batch or card never reuses a wrong engine. An unknown GPU is 'gpu0'.
 */
export function engineCacheKey(k: {
  modelSha256: string;
  patch: readonly number[];
  batch: number;
  gpuName?: string | undefined;
}): string {
  const gpu = (k.gpuName ?? '').trim() || 'gpu0';
  const safeGpu = gpu.replace(/[^A-Za-z0-9._-]+/g, '-');
  const digest = createHash('sha256')
    .update(`${k.modelSha256}|${k.patch.join('x')}|${k.batch}|${gpu}`)
    .digest('hex')
    .slice(0, 16);
  return `${k.modelSha256.slice(0, 12)}-p${k.patch.join('x')}-b${k.batch}-${safeGpu}-${digest}`;
}

/**
 * Parses `nvidia-smi --query-gpu=utilization.gpu --format=csv -lms 200` output (a
 * "utilization.gpu [%]" header, then lines like "87 %"), one sample per line; the header
 * and lines that are not a percentage (a driver's "[N/A]") are skipped.
 */
export function parseUtilisation(csv: string): number[] {
  const samples: number[] = [];
  for (const line of csv.split(/\r?\n/)) {
    const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(line);
    if (m) samples.push(Number(m[1]));
  }
  return samples;
}

/**
 * The TensorRT provider options as environment variables. onnxruntime-node 1.30's binding
 * (js/node/src/session_options_helper.cc) reads only `deviceId` from a "tensorrt" or "cuda"
 * provider entry, so fp16 and the engine cache reach the TensorRT provider only through
 * the variables it reads at session creation.
 */
export function tensorrtEnv(o: { fp16: boolean; engineCacheDir: string }): Record<string, string> {
  return {
    ORT_TENSORRT_FP16_ENABLE: o.fp16 ? '1' : '0',
    ORT_TENSORRT_ENGINE_CACHE_ENABLE: '1',
    ORT_TENSORRT_CACHE_PATH: o.engineCacheDir,
  };
}

/**
 * A GPU was asked for and cannot be used, where falling back to CPU is not allowed (a
 * cloud worker without compute.allowCpuFallback). The machine is at fault, not the chunk:
 * the fault classifier must count it as an environment fault (it must not spend a chunk's
 * attempts).
 */
export class GpuFallbackError extends Error {
  override readonly name = 'GpuFallbackError';
  constructor(
    readonly model: string,
    readonly provider: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `model ${model}: compute.provider "${provider}" is not usable on this machine (${detail}) ` +
        'and falling back to CPU is not allowed here. Run on a GPU instance with the CUDA ' +
        'build of onnxruntime (bench/gpu-prep.sh), or set compute.allowCpuFallback: true.',
      options,
    );
  }
}
