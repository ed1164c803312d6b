// zstd for Zarr chunks, without the per-byte copy, natively where it can be.
//
// zarrita's default zstd codec (numcodecs' WebAssembly build) hands every buffer to
// WebAssembly through embind's std::string conversion, which copies it one byte at a
// time in JavaScript, both ways: measured here at ~70 MiB/s even on all-zero data that
// zstd itself compresses at >2 GiB/s. On a CPU worker that copy competes with inference
// for the same cores. @bokuweb/zstd-wasm is the same libzstd, entered through malloc and
// one typed-array set. Native libzstd (the optional dependency zstd-napi, built from
// source at install where a C compiler is present) is faster again: measured here on a
// float32 output block, compress 614 vs 331 MB/s and decompress 844 vs 184 MB/s, with
// byte-identical frames. It is used when it loads; TESSERA_ZSTD=wasm forces WebAssembly,
// TESSERA_ZSTD=native refuses to run without the native build. Streams are ordinary
// zstd frames either way: chunks written by one engine are read by the other (and by
// numcodecs, zarr-python, tensorstore, neuroglancer).
//
// Frames that do not state their decompressed size (streaming writers), or that hold
// more than one frame, are handed to numcodecs' decoder, which handles every case: the
// fast path never guesses a buffer size.

import { createRequire } from 'node:module';
import * as fast from '@bokuweb/zstd-wasm';
import * as zarr from 'zarrita';

const DEFAULT_LEVEL = 1;
const MAX_LEVEL = 22;
/** Decompressed sizes the fast path accepts; larger frames go to numcodecs. */
const MAX_FAST_BYTES = 2 ** 30;

type Fallback = { decode(bytes: Uint8Array): Promise<Uint8Array> };

/** One libzstd behind the codec: frames and bytes are the same whichever runs. */
export interface ZstdEngine {
  readonly name: 'native' | 'wasm';
  compress(bytes: Uint8Array, level: number): Promise<Uint8Array>;
  /** Decompresses one frame of known `size`; throws on anything else. */
  decompress(bytes: Uint8Array, size: number): Promise<Uint8Array>;
}

let ready: Promise<void> | undefined;
let fallback: Promise<Fallback> | undefined;

const wasmEngine: ZstdEngine = {
  name: 'wasm',
  async compress(bytes, level) {
    await init();
    return fast.compress(bytes, level);
  },
  async decompress(bytes, size) {
    await init();
    return fast.decompress(bytes, { defaultHeapSize: Math.max(1, size) });
  },
};

interface ZstdNapi {
  compress(data: Uint8Array, parameters?: { compressionLevel?: number }): Uint8Array;
  decompress(data: Uint8Array): Uint8Array;
}

function loadNative(): ZstdEngine | undefined {
  let napi: ZstdNapi;
  try {
    napi = createRequire(import.meta.url)('zstd-napi') as ZstdNapi;
  } catch {
    return undefined; // not installed, or its build was skipped (no compiler, scripts held back)
  }
  return {
    name: 'native',
    compress: async (bytes, level) => napi.compress(bytes, { compressionLevel: level }),
    decompress: async (bytes) => napi.decompress(bytes),
  };
}

function chooseEngine(): { engine: ZstdEngine; native: ZstdEngine | undefined } {
  const wanted = process.env.TESSERA_ZSTD;
  if (wanted !== undefined && wanted !== '' && !['native', 'wasm'].includes(wanted))
    throw new Error(`TESSERA_ZSTD must be "native" or "wasm", got "${wanted}"`);
  const native = loadNative();
  if (wanted === 'native' && !native)
    throw new Error(
      'TESSERA_ZSTD=native but zstd-napi is not built: run `npm rebuild zstd-napi` on a machine with a C compiler, or unset TESSERA_ZSTD to use WebAssembly',
    );
  return { engine: wanted === 'wasm' || !native ? wasmEngine : native, native };
}

const chosen = chooseEngine();

/** The engines this process can run, the default first (tests compare them). */
export const zstdEngines: readonly ZstdEngine[] = [
  chosen.engine,
  ...[wasmEngine, chosen.native].filter(
    (e): e is ZstdEngine => e !== undefined && e !== chosen.engine,
  ),
];

export class FastZstd {
  static readonly codecId = 'zstd';
  readonly kind = 'bytes_to_bytes';
  readonly level: number;

  constructor(
    level = DEFAULT_LEVEL,
    private readonly engine: ZstdEngine = chosen.engine,
  ) {
    if (!Number.isInteger(level))
      throw new TypeError(`zstd level must be an integer, got ${String(level)}`);
    // Same clamping as numcodecs, so a stored configuration means the same here.
    this.level = level <= 0 ? DEFAULT_LEVEL : Math.min(level, MAX_LEVEL);
  }

  static fromConfig(config: { level?: number } | undefined): FastZstd {
    return new FastZstd(config?.level);
  }

  /** The engine behind this codec: "native" or "wasm". */
  get engineName(): ZstdEngine['name'] {
    return this.engine.name;
  }

  async encode(bytes: Uint8Array): Promise<Uint8Array> {
    return this.engine.compress(bytes, this.level);
  }

  async decode(bytes: Uint8Array): Promise<Uint8Array> {
    const size = frameContentSize(bytes);
    if (size !== undefined && size <= MAX_FAST_BYTES) {
      try {
        const out = await this.engine.decompress(bytes, size);
        if (out.byteLength === size) return ownBuffer(out);
      } catch {
        // More than one frame, or a damaged one: numcodecs decides (and names the error).
      }
    }
    return (await numcodecsZstd()).decode(bytes);
  }
}

/**
 * `bytes` as an array that is its whole ArrayBuffer. Native libzstd returns Node Buffers,
 * and one under 4 KiB is a view into Node's shared 8 KiB pool. zarrita's bytes codec
 * encodes `data.buffer` whole, so when zarrita rewrites a partly covered edge chunk it
 * decodes the stored chunk, merges into it and would store the whole pool: a chunk of
 * 8192 bytes where 2772 belong (another writer's bytes included). Copying the few small
 * ones costs nothing next to that.
 */
function ownBuffer(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
    ? bytes
    : // Not bytes.slice(): on a Buffer that is a view too.
      new Uint8Array(bytes);
}

// Importing this module makes FastZstd zarrita's "zstd" (Zarr v3) and "numcodecs.zstd"
// (v2) codec for every array opened afterwards.
zarr.registry.set('zstd', async () => FastZstd as never);
zarr.registry.set('numcodecs.zstd', async () => FastZstd as never);

function init(): Promise<void> {
  ready ??= fast.init();
  return ready;
}

function numcodecsZstd(): Promise<Fallback> {
  fallback ??= import('numcodecs/zstd').then((m) => new m.default());
  return fallback;
}

const MAGIC = 0xfd2fb528;

/**
 * The Frame_Content_Size of a zstd frame header (RFC 8878 §3.1.1.1), or undefined when
 * the header does not state it (or is not a zstd frame at all).
 */
export function frameContentSize(bytes: Uint8Array): number | undefined {
  if (bytes.byteLength < 6) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) return undefined;
  const fhd = bytes[4]!;
  const fcsFlag = fhd >> 6;
  const singleSegment = (fhd >> 5) & 1;
  if ((fhd >> 3) & 1) return undefined; // reserved bit: not a frame we understand
  const dictIdBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fcsFlag]!;
  if (fcsBytes === 0) return undefined;
  const at = 5 + (singleSegment ? 0 : 1) + dictIdBytes;
  if (bytes.byteLength < at + fcsBytes) return undefined;
  switch (fcsBytes) {
    case 1:
      return view.getUint8(at);
    case 2:
      return view.getUint16(at, true) + 256;
    case 4:
      return view.getUint32(at, true);
    default: {
      const big = view.getBigUint64(at, true);
      return big <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(big) : undefined;
    }
  }
}
