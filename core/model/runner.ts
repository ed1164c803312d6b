/**
 * Runs an ONNX segmentation model on batches of 3D patches.
 *
 * The runner owns one onnxruntime session and enforces the contract the rest of
 * Tessera relies on: one float32 input [n, inC, z, y, x] and an output
 * [n, outC, z, y, x] with the same z, y, x as the input patch (blending adds
 * outputs voxel-for-voxel onto the input grid, so a model that crops would
 * silently shift every patch). A float16 input or output is converted at the boundary
 * (float16.ts): the pipeline sees float32 either way.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import { InferenceSession, Tensor } from 'onnxruntime-node';
import {
  ModelChecksumError,
  ModelInputError,
  ModelLoadError,
  ModelOutputError,
  ModelRunError,
} from './errors.ts';
import { fromFloat16Bits, toFloat16Bits } from './float16.ts';
import { GpuFallbackError, tensorrtEnv } from './gpu.ts';
import {
  type ModelExpectation,
  type ReadSignature,
  resolveModelIo,
  signatureOf,
  type TensorFloat,
} from './signature.ts';

export type ModelSource = { path: string } | { bytes: Uint8Array; name?: string };

export type Device = 'cpu' | 'gpu';

export type Provider = 'cpu' | 'cuda' | 'tensorrt';

export interface GpuOptions {
  deviceId?: number;
  /** Default 'cuda'. 'tensorrt' runs TensorRT first, then CUDA, then CPU for what neither takes. */
  provider?: 'cuda' | 'tensorrt';
  /** Default true: a GPU that cannot be used is a loud fallback to CPU; false throws GpuFallbackError. */
  allowCpuFallback?: boolean;
  /** TensorRT: fp16 (default true) and the engine cache directory (one per engineCacheKey). */
  tensorrt?: { fp16?: boolean; engineCacheDir?: string };
  memoryLimitBytes?: number;
  arenaExtendStrategy?: 'kNextPowerOfTwo' | 'kSameAsRequested';
}

export interface ModelRunnerOptions {
  /** Expected sha256 of the model bytes, hex. Checked before onnxruntime sees them. */
  sha256?: string;
  /** 'gpu' falls back to CPU (with a warning) where CUDA cannot be used. */
  device?: Device;
  /** Defaults to os.availableParallelism(): a CPU worker should use the whole machine. */
  intraOpThreads?: number;
  /**
   * Whether onnxruntime's intra-op threads busy-wait between parallel sections (its
   * default). Spinning saves microseconds per section on an otherwise idle machine but
   * burns the cores the worker's own I/O, decode and accumulation need; off by default.
   */
  spinning?: boolean;
  gpu?: GpuOptions;
  log?: (msg: string) => void;
  /**
   * What the job expects of the model (see modelExpectation): which output to use
   * (model.output) and the sizes and channels to check at load. Without it only Tessera's
   * own contract is checked, and a model with several outputs is refused.
   */
  expect?: ModelExpectation;
}

export type Patch = readonly [number, number, number];

/**
 * The CUDA provider entry as the onnxruntime docs name its options. The common
 * typings only declare deviceId, and the onnxruntime-node 1.30 binding reads only
 * deviceId from this object: the memory knobs are passed for bindings that honour
 * them and are otherwise inert.
 */
interface CudaProviderEntry extends InferenceSession.CudaExecutionProviderOption {
  gpuMemLimit?: number;
  arenaExtendStrategy?: 'kNextPowerOfTwo' | 'kSameAsRequested';
}

interface Opened {
  session: InferenceSession;
  device: Device;
  providers: string[];
  /** Why a GPU that was asked for is not used: set only after a fallback to CPU. */
  fallback?: string;
}

export class ModelRunner {
  /** What actually runs: 'cpu' after a GPU fallback. */
  readonly device: Device;
  readonly providers: string[];
  /** Set when a GPU was asked for and the runner fell back to CPU: the cause. */
  readonly fallback: string | undefined;
  /** Undefined once closed. */
  private session: InferenceSession | undefined;

  private constructor(
    opened: Opened,
    /** Where the model came from, for messages: a path or the caller's name. */
    readonly name: string,
    /** sha256 of the bytes actually loaded, hex. */
    readonly sha256: string,
    readonly inputName: string,
    readonly outputName: string,
    /** Undefined where the model leaves the dim symbolic. */
    readonly inputChannels: number | undefined,
    readonly outputChannels: number | undefined,
    /** 5: a 3D model; 4: a 2D model, run slice by slice (patchShape z = 1). */
    readonly rank: 4 | 5 = 5,
    readonly inputType: TensorFloat = 'float32',
    readonly outputType: TensorFloat = 'float32',
  ) {
    this.session = opened.session;
    this.device = opened.device;
    this.providers = opened.providers;
    this.fallback = opened.fallback;
  }

  static async open(source: ModelSource, options: ModelRunnerOptions = {}): Promise<ModelRunner> {
    const name = 'path' in source ? source.path : (source.name ?? '<in-memory model>');
    const bytes = 'path' in source ? await readModelFile(source.path) : source.bytes;

    const actual = createHash('sha256').update(bytes).digest('hex');
    if (options.sha256 !== undefined && options.sha256.trim().toLowerCase() !== actual) {
      throw new ModelChecksumError(name, options.sha256, actual);
    }

    const threads = options.intraOpThreads ?? availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`intraOpThreads must be a positive integer, got ${threads}`);
    }
    const sessionOptions: InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      intraOpNumThreads: threads,
      // Memory patterns pre-plan one block for all of a run's intermediates, which the CPU
      // arena rounds up to a power of two (256 MiB for the realistic fixture at batch 2);
      // without them the arena holds ~120 MiB less at the same speed (measured: 310 vs
      // 313–317 ms per batch).
      enableMemPattern: false,
      extra: {
        session: {
          intra_op: {
            allow_spinning: options.spinning ? '1' : '0',
          },
        },
      },
    };
    const log = options.log ?? ((msg: string) => console.warn(msg));
    // The session is built from the hashed bytes, never by re-reading the path,
    // so what runs is exactly what was verified.
    const opened =
      options.device === 'gpu'
        ? await openGpu(name, bytes, sessionOptions, options.gpu ?? {}, log)
        : {
            session: await openCpu(name, bytes, sessionOptions),
            device: 'cpu' as const,
            providers: ['cpu'],
          };

    try {
      const io = resolveModelIo(name, signatureOf(opened.session), options.expect);
      return new ModelRunner(
        opened,
        name,
        actual,
        io.inputName,
        io.outputName,
        io.inputChannels,
        io.outputChannels,
        io.rank,
        io.inputType,
        io.outputType,
      );
    } catch (err) {
      await opened.session.release();
      throw err;
    }
  }

  /**
   * Runs n patches. `batch` is [n, inC, pz, py, px] row-major; the result is
   * [n, outC, pz, py, px]. NaN is passed through: whether it is fatal is the caller's call.
   */
  async run(
    batch: Float32Array,
    n: number,
    patch: Patch,
    outPatch: Patch = patch,
  ): Promise<Float32Array> {
    const session = this.session;
    const [pz, py, px] = patch;
    if (this.rank === 4 && (pz !== 1 || outPatch[0] !== 1)) {
      throw new ModelInputError(
        this.name,
        `is a 2D model (input [n, c, y, x]); it runs slice by slice, so model.patchShape[0] must be 1, got ${pz}`,
      );
    }
    if (!Number.isInteger(n) || n < 1 || !patch.every((p) => Number.isInteger(p) && p >= 1)) {
      throw new ModelInputError(
        this.name,
        `n and patch must be positive integers, got n=${n}, patch=[${patch.join(', ')}]`,
      );
    }
    const voxels = pz * py * px;
    const inC = this.inputChannels ?? batch.length / (n * voxels);
    if (!Number.isInteger(inC) || inC < 1 || batch.length !== n * inC * voxels) {
      throw new ModelInputError(
        this.name,
        `batch has ${batch.length} values, but n=${n} patches of [${patch.join(', ')}] with ` +
          `${this.inputChannels ?? 'a whole number of'} channel(s) need ` +
          `${this.inputChannels === undefined ? `a multiple of ${n * voxels}` : n * this.inputChannels * voxels}`,
      );
    }
    // A 2D model sees [n, c, y, x]: the same memory as [n, c, 1, y, x].
    const inputDims = this.rank === 4 ? [n, inC, py, px] : [n, inC, pz, py, px];
    if (session === undefined) {
      throw new ModelRunError(this.name, inputDims, 'the runner was closed; open a new one');
    }

    let output: unknown;
    try {
      const feeds = {
        [this.inputName]:
          this.inputType === 'float16'
            ? new Tensor('float16', toFloat16Bits(batch), inputDims)
            : new Tensor('float32', batch, inputDims),
      };
      const results = await session.run(feeds, [this.outputName]);
      output = results[this.outputName];
    } catch (err) {
      throw new ModelRunError(
        this.name,
        inputDims,
        `inference failed on input [${inputDims.join(', ')}]: ${errorText(err)}. Check that the ` +
          `model accepts ${inC} input channel(s) and this patch size (networks that downsample ` +
          'need sizes divisible by their total stride).',
        { cause: err },
      );
    }
    return this.checkOutput(output, n, outPatch);
  }

  async close(): Promise<void> {
    const session = this.session;
    this.session = undefined;
    await session?.release();
  }

  private checkOutput(output: unknown, n: number, patch: Patch): Float32Array {
    const spatial = this.rank === 4 ? patch.slice(1) : [...patch];
    const expected: (number | string)[] = [n, this.outputChannels ?? 'C', ...spatial];
    const data = output instanceof Tensor ? floatData(output) : undefined;
    if (!(output instanceof Tensor) || data === undefined) {
      const actualType = output instanceof Tensor ? output.type : typeof output;
      throw new ModelOutputError(
        this.name,
        expected,
        output instanceof Tensor ? output.dims : [],
        `Output "${this.outputName}" is ${actualType}, not a float32 or float16 tensor: export ` +
          'the model with a float32 (or float16) output.',
      );
    }
    const dims = output.dims;
    const fix = (): string => {
      if (dims.length !== this.rank) return `The output must be ${this.rank}-D like the input.`;
      if (dims[0] !== n) return 'The batch dim must pass through unchanged.';
      if (this.outputChannels !== undefined && dims[1] !== this.outputChannels) {
        return `The model declares ${this.outputChannels} output channels: fix its output declaration.`;
      }
      return (
        'Output z, y, x must equal the output patch (model.outputPatchShape, default the input patch) ' +
        "because outputs are blended voxel-for-voxel: use 'same' padding, or declare the valid-convolution output size in model.outputPatchShape."
      );
    };
    const ok =
      dims.length === this.rank &&
      dims[0] === n &&
      (dims[1] ?? 0) >= 1 &&
      (this.outputChannels === undefined || dims[1] === this.outputChannels) &&
      spatial.every((v, i) => dims[2 + i] === v);
    if (!ok) throw new ModelOutputError(this.name, expected, dims, fix());
    return data;
  }
}

/**
 * A float output's values as float32: float16 bits (a Uint16Array in onnxruntime-node)
 * widened; undefined for any other type.
 */
function floatData(t: Tensor): Float32Array | undefined {
  if (t.type === 'float32' && t.data instanceof Float32Array) return t.data;
  if (t.type !== 'float16') return undefined;
  if (t.data instanceof Uint16Array) return fromFloat16Bits(t.data);
  // A runtime with Float16Array hands the values themselves.
  return ArrayBuffer.isView(t.data) ? Float32Array.from(t.data as ArrayLike<number>) : undefined;
}

async function openCpu(
  name: string,
  bytes: Uint8Array,
  options: InferenceSession.SessionOptions,
): Promise<InferenceSession> {
  try {
    return await InferenceSession.create(bytes, { ...options, executionProviders: ['cpu'] });
  } catch (err) {
    throw new ModelLoadError(name, unloadable(err), { cause: err });
  }
}

async function openGpu(
  name: string,
  bytes: Uint8Array,
  options: InferenceSession.SessionOptions,
  gpu: GpuOptions,
  log: (msg: string) => void,
): Promise<Opened> {
  const cuda: CudaProviderEntry = { name: 'cuda', deviceId: gpu.deviceId ?? 0 };
  const provider = gpu.provider ?? 'cuda';
  // onnxruntime-node 1.30 reads only deviceId from a provider entry
  // (js/node/src/session_options_helper.cc); TensorRT's fp16 and engine cache reach it
  // through the environment variables it reads when the session is created.
  if (provider === 'tensorrt') {
    const env = tensorrtEnv({
      fp16: gpu.tensorrt?.fp16 ?? true,
      engineCacheDir: gpu.tensorrt?.engineCacheDir ?? 'tensorrt-cache',
    });
    for (const [k, v] of Object.entries(env)) process.env[k] = v;
  }
  const chain: InferenceSession.ExecutionProviderConfig[] =
    provider === 'tensorrt'
      ? [{ name: 'tensorrt', deviceId: gpu.deviceId ?? 0 }, cuda, 'cpu']
      : [cuda, 'cpu'];
  // The binding tests for presence, so absent knobs must be absent, not undefined.
  if (gpu.memoryLimitBytes !== undefined) cuda.gpuMemLimit = gpu.memoryLimitBytes;
  if (gpu.arenaExtendStrategy !== undefined) cuda.arenaExtendStrategy = gpu.arenaExtendStrategy;
  let cudaError: unknown;
  try {
    const session = await InferenceSession.create(bytes, {
      ...options,
      executionProviders: chain,
    });
    const providers = provider === 'tensorrt' ? ['tensorrt', 'cuda', 'cpu'] : ['cuda', 'cpu'];
    return { session, device: 'gpu', providers };
  } catch (err) {
    cudaError = err;
  }
  // onnxruntime's errors carry no code, so CUDA trouble is told apart from a bad
  // model by retrying on CPU: a model that loads there failed only because of CUDA.
  const session = await openCpu(name, bytes, options);
  const cause = errorText(cudaError);
  if (gpu.allowCpuFallback === false) {
    await session.release();
    throw new GpuFallbackError(name, provider, cause, { cause: cudaError });
  }
  log(
    `model ${name}: CUDA is not usable here (${errorText(cudaError)}); running on CPU. ` +
      'Install the CUDA build of onnxruntime and its CUDA/cuDNN libraries, or ask for device "cpu".',
  );
  return { session, device: 'cpu', providers: ['cpu'], fallback: `${provider}: ${cause}` };
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Why onnxruntime refused a model, and what to do: the ModelLoadError detail. */
function unloadable(err: unknown): string {
  return (
    `onnxruntime cannot load it (${err instanceof Error ? err.message : String(err)}). Check ` +
    'that it is a complete ONNX model (not truncated, not an HTML error page) and that its ' +
    'opset is supported by onnxruntime 1.30; re-export or re-download it.'
  );
}

/** A model's bytes, read whole; a failure is a ModelLoadError naming the path. */
async function readModelFile(path: string): Promise<Uint8Array> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new ModelLoadError(
      path,
      `cannot read the file (${err instanceof Error ? err.message : String(err)}). Check the ` +
        'model path, or that the file was downloaded and is readable.',
      { cause: err },
    );
  }
}

/**
 * Reads a model's signature (its inputs' and outputs' names, dtypes and shapes) for the
 * plan: opens a CPU session (one thread, no graph optimisation), reads its metadata and
 * releases it. A model onnxruntime cannot load is a ModelLoadError, at plan too.
 *
 * A session rather than a parse of the ModelProto: it is the very metadata open() reads,
 * so plan and load cannot disagree, and parsing would need a protobuf reader in
 * production (onnx-proto is a test dependency) and a second reading of the dims. The cost
 * is the model's size in memory for a moment, and a fraction of a second.
 */
export async function readModelSignature(
  source: ModelSource,
  o: { sha256?: string | undefined } = {},
): Promise<ReadSignature> {
  const model = 'path' in source ? source.path : (source.name ?? '<in-memory model>');
  const bytes = 'path' in source ? await readModelFile(source.path) : source.bytes;
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  if (o.sha256 !== undefined && o.sha256.trim().toLowerCase() !== sha256)
    throw new ModelChecksumError(model, o.sha256, sha256);
  let session: InferenceSession;
  try {
    session = await InferenceSession.create(bytes, {
      executionProviders: ['cpu'],
      graphOptimizationLevel: 'disabled',
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
  } catch (err) {
    throw new ModelLoadError(model, unloadable(err), { cause: err });
  }
  try {
    return { model, sha256, bytes: bytes.byteLength, signature: signatureOf(session) };
  } finally {
    await session.release();
  }
}
