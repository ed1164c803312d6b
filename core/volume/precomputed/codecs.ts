// Chunk encodings of precomputed volumes, decoded into Tessera's layout: [c][z][y][x],
// x fastest. That is exactly precomputed's [x, y, z, channel] Fortran order, so a raw
// chunk is its bytes reinterpreted; jpeg and compressed_segmentation are unpacked.
//
//   raw                      little-endian values, no header (files may be gzipped)
//   jpeg                     one image whose rows, concatenated, are the x-fastest voxels;
//                            1 channel: grey, 3: RGB
//   compressed_segmentation  per channel: block headers, then lookup tables and packed
//                            indices (compressed_segmentation/README.md)

import { gunzipSync } from 'node:zlib';
import jpeg from 'jpeg-js';
import type { NumericArray } from '../../array/dense.ts';
import type { Vec3 } from '../../geometry/index.ts';
import type { PrecomputedDtype } from './info.ts';

/** What a chunk decodes into: values in Tessera's dtype (uint64 is held as float64). */
export type DecodedDtype = Exclude<PrecomputedDtype, 'uint64'> | 'float64';

/** Thrown by the decoders: the caller names the file and the scale. */
export class ChunkDecodeError extends Error {
  override readonly name = 'ChunkDecodeError';
}

export interface ChunkFormat {
  readonly dataType: PrecomputedDtype;
  readonly channels: number;
  /** compressed_segmentation block size (z, y, x). */
  readonly blockSize?: Vec3;
}

const BYTES: Record<PrecomputedDtype, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  uint64: 8,
  float32: 4,
};

export const bytesPerValue = (t: PrecomputedDtype): number => BYTES[t];

/** gzip transport (a magic-number check: raw chunks of the exact size are taken as they are). */
export function ungzipIfNeeded(bytes: Uint8Array, rawSize: number | undefined): Uint8Array {
  const gz = bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
  if (!gz || bytes.length === rawSize) return bytes;
  try {
    return gunzipSync(bytes);
  } catch (error) {
    throw new ChunkDecodeError(`starts like gzip but does not gunzip (${text(error)})`, {
      cause: error,
    });
  }
}

/** A raw chunk of `shape` (z, y, x) voxels. */
export function decodeRaw(bytes: Uint8Array, shape: Vec3, f: ChunkFormat): NumericArray {
  const n = f.channels * shape[0] * shape[1] * shape[2];
  const want = n * BYTES[f.dataType];
  if (bytes.length !== want)
    throw new ChunkDecodeError(
      `holds ${bytes.length} bytes; ${f.channels} channel(s) × ${shape[2]}×${shape[1]}×${shape[0]} (x×y×z) ${f.dataType} voxels are ${want}`,
    );
  const copy = new Uint8Array(bytes); // aligned, and the reader owns it
  const view = new DataView(copy.buffer);
  switch (f.dataType) {
    case 'uint8':
      return copy;
    case 'int8':
      return new Int8Array(copy.buffer);
    case 'uint64': {
      const out = new Float64Array(n);
      for (let i = 0; i < n; i++) out[i] = exactUint64(view.getBigUint64(8 * i, true));
      return out;
    }
    default:
      return littleEndian(view, f.dataType, n);
  }
}

function littleEndian(view: DataView, t: PrecomputedDtype, n: number): NumericArray {
  const out =
    t === 'uint16'
      ? new Uint16Array(n)
      : t === 'int16'
        ? new Int16Array(n)
        : t === 'uint32'
          ? new Uint32Array(n)
          : t === 'int32'
            ? new Int32Array(n)
            : new Float32Array(n);
  const get =
    t === 'uint16'
      ? (i: number) => view.getUint16(2 * i, true)
      : t === 'int16'
        ? (i: number) => view.getInt16(2 * i, true)
        : t === 'uint32'
          ? (i: number) => view.getUint32(4 * i, true)
          : t === 'int32'
            ? (i: number) => view.getInt32(4 * i, true)
            : (i: number) => view.getFloat32(4 * i, true);
  for (let i = 0; i < n; i++) out[i] = get(i);
  return out;
}

/** A jpeg chunk of `shape` (z, y, x): uint8, 1 or 3 channels. */
export function decodeJpeg(bytes: Uint8Array, shape: Vec3, f: ChunkFormat): Uint8Array {
  const voxels = shape[0] * shape[1] * shape[2];
  let image: { width: number; height: number; data: Uint8Array };
  try {
    image = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: false, maxMemoryUsageInMB: 1024 });
  } catch (error) {
    throw new ChunkDecodeError(`is not a decodable JPEG (${text(error)})`, { cause: error });
  }
  const pixels = image.width * image.height;
  if (pixels !== voxels)
    throw new ChunkDecodeError(
      `is a ${image.width}×${image.height} JPEG (${pixels} pixels); the chunk has ${voxels} voxels`,
    );
  const components = image.data.length / pixels;
  if (components !== 1 && components !== 3)
    throw new ChunkDecodeError(`is a JPEG of ${components} components; 1 or 3 expected`);
  const out = new Uint8Array(f.channels * voxels);
  // Pixels are interleaved (RGBRGB...); Tessera's channels are planes.
  for (let c = 0; c < f.channels; c++) {
    const from = Math.min(c, components - 1);
    for (let p = 0; p < voxels; p++) out[c * voxels + p] = image.data[p * components + from]!;
  }
  return out;
}

/** A compressed_segmentation chunk of `shape` (z, y, x): uint32 or uint64 labels. */
export function decodeCompressedSegmentation(
  bytes: Uint8Array,
  shape: Vec3,
  f: ChunkFormat,
): Uint32Array | Float64Array {
  const bs = f.blockSize;
  if (bs === undefined) throw new TypeError('compressed_segmentation needs its block size');
  if (bytes.length % 4 !== 0)
    throw new ChunkDecodeError(`holds ${bytes.length} bytes, not a whole number of 32-bit words`);
  const words = new Uint32Array(new Uint8Array(bytes).buffer);
  if (!littleEndianHost) for (let i = 0; i < words.length; i++) words[i] = swap32(words[i]!);
  const wide = f.dataType === 'uint64';
  const voxels = shape[0] * shape[1] * shape[2];
  const out = wide ? new Float64Array(f.channels * voxels) : new Uint32Array(f.channels * voxels);
  const grid: Vec3 = [
    Math.ceil(shape[0] / bs[0]),
    Math.ceil(shape[1] / bs[1]),
    Math.ceil(shape[2] / bs[2]),
  ];
  const word = (i: number): number => {
    if (i < 0 || i >= words.length)
      throw new ChunkDecodeError(`points at word ${i}, past its ${words.length} words`);
    return words[i]!;
  };
  for (let c = 0; c < f.channels; c++) {
    const base = word(c);
    for (let gz = 0; gz < grid[0]; gz++)
      for (let gy = 0; gy < grid[1]; gy++)
        for (let gx = 0; gx < grid[2]; gx++) {
          const h = base + 2 * (gx + grid[2] * (gy + grid[1] * gz));
          const h0 = word(h);
          const table = base + (h0 & 0xffffff);
          const bits = h0 >>> 24;
          const values = base + word(h + 1);
          if (![0, 1, 2, 4, 8, 16, 32].includes(bits))
            throw new ChunkDecodeError(
              `has a block encoded with ${bits} bits; 0, 1, 2, 4, 8, 16 or 32 expected`,
            );
          const mask = bits === 32 ? 0xffffffff : (1 << bits) - 1;
          const z0 = gz * bs[0];
          const y0 = gy * bs[1];
          const x0 = gx * bs[2];
          const z1 = Math.min(z0 + bs[0], shape[0]);
          const y1 = Math.min(y0 + bs[1], shape[1]);
          const x1 = Math.min(x0 + bs[2], shape[2]);
          for (let z = z0; z < z1; z++)
            for (let y = y0; y < y1; y++)
              for (let x = x0; x < x1; x++) {
                // Position inside the (full-size) block, x fastest.
                const p = x - x0 + bs[2] * (y - y0 + bs[1] * (z - z0));
                let index = 0;
                if (bits > 0) {
                  const bit = p * bits;
                  index = ((word(values + Math.floor(bit / 32)) >>> (bit % 32)) & mask) >>> 0;
                }
                const o = c * voxels + (z * shape[1] + y) * shape[2] + x;
                if (wide) {
                  const lo = word(table + 2 * index);
                  const hi = word(table + 2 * index + 1);
                  out[o] = exactUint64((BigInt(hi) << 32n) | BigInt(lo));
                } else out[o] = word(table + index);
              }
        }
  }
  return out;
}

/** A uint64 label as a float64, refused when it would not survive the conversion exactly. */
function exactUint64(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER))
    throw new ChunkDecodeError(
      `holds the uint64 value ${v}, above 2^53: Tessera holds uint64 volumes as float64 and would change it`,
    );
  return Number(v);
}

const littleEndianHost = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const swap32 = (v: number): number =>
  (((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >>> 8) & 0xff00) | (v >>> 24)) >>> 0;
const text = (error: unknown): string => (error instanceof Error ? error.message : String(error));
