// Reading a box of a zarrita array into a dense buffer, padded outside the array.
//
//   requested box  +-----------------------+
//                  | pad   +-------------+ |      only the in-array part is read
//                  |       | array ∩ box | |      (one zarr.get with slices); the
//                  |       +-------------+ |      rest keeps the pad value
//                  +-----------------------+
//
// Chunks pass through a zarrita array extension that checks each decoded chunk's
// length: an uncompressed chunk cut short decodes "successfully" into a short typed
// array, and zarrita would then copy a short row without complaint.

import * as zarr from 'zarrita';
import './zstd.ts'; // zarrita's zstd codec → the copy-free one (see zstd.ts)
import type { Dense, NumericArray } from '../array/dense.ts';
import { indexOf } from '../array/dense.ts';
import { Box, type Vec3 } from '../geometry/index.ts';
import type { Store } from '../store/index.ts';
import { arrayConstructor, isNumericArray, type VolumeDtype } from './dtype.ts';
import { VolumeReadError } from './errors.ts';

export type ZarrArray = zarr.Array<zarr.DataType, Store>;

/** A chunk that decoded to the wrong number of elements (truncated or padded bytes). */
class ChunkLengthError extends Error {
  override readonly name = 'ChunkLengthError';
  constructor(expected: number, actual: number) {
    super(`decoded to ${actual} elements instead of ${expected}`);
  }
}

/** Any failure while fetching or decoding one chunk, tagged with its coordinates. */
class ChunkFailure extends Error {
  override readonly name = 'ChunkFailure';
  constructor(
    readonly coords: readonly number[],
    readonly corrupt: boolean,
    options: { cause: unknown },
  ) {
    super(`chunk [${coords.join(', ')}]`, options);
  }
}

const checkedChunks = zarr.defineArrayExtension((array) => ({
  async getChunk(coords, options, opts) {
    let chunk: Awaited<ReturnType<typeof array.getChunk>>;
    try {
      chunk = await array.getChunk(coords, options, opts);
    } catch (cause) {
      throw new ChunkFailure(coords, zarr.isZarritaError(cause, 'CodecPipelineError'), { cause });
    }
    const expected = chunk.shape.reduce((a, b) => a * b, 1);
    if (chunk.data.length !== expected)
      throw new ChunkFailure(coords, true, {
        cause: new ChunkLengthError(expected, chunk.data.length),
      });
    return chunk;
  },
}));

/** The array with every chunk read checked (see the module header). */
export function withCheckedChunks(array: ZarrArray): ZarrArray {
  return checkedChunks(array);
}

export interface PaddedRead {
  readonly array: ZarrArray;
  readonly location: string;
  readonly arrayPath: string;
  readonly dtype: VolumeDtype;
  /** Spatial shape of the array. */
  readonly shape: Vec3;
  readonly channels: number;
  /** True for [c, z, y, x] arrays, false for [z, y, x]. */
  readonly channelAxis: boolean;
}

/** Raw values of `box` (all channels), `pad` wherever the box lies outside the array. */
export async function readPadded(
  v: PaddedRead,
  box: Box,
  pad: number,
): Promise<Dense<NumericArray>> {
  const Ctor = arrayConstructor(v.dtype);
  const out: Dense<NumericArray> = {
    box,
    channels: v.channels,
    data: new Ctor(v.channels * box.size),
  };
  if (pad !== 0) out.data.fill(pad);
  const inside = box.intersect(Box.ofShape(v.shape));
  if (inside.isEmpty()) return out;

  const spatial = [0, 1, 2].map((a) => zarr.slice(inside.start[a]!, inside.stop[a]!));
  const selection: (zarr.Slice | null)[] = v.channelAxis ? [null, ...spatial] : spatial;
  let result: zarr.Chunk<zarr.DataType>;
  try {
    result = await zarr.get(v.array, selection);
  } catch (error) {
    throw readError(v, box, error);
  }
  if (!isNumericArray(result.data))
    throw new TypeError(`zarrita returned a non-numeric array for data type ${v.dtype}`);
  copyStrided(result.data, result.stride, v.channelAxis, inside, out);
  return out;
}

function readError(v: PaddedRead, box: Box, error: unknown): VolumeReadError {
  if (error instanceof ChunkFailure) {
    const cause = error.cause;
    const what = cause instanceof Error ? cause.message : String(cause);
    return new VolumeReadError(
      v.location,
      v.arrayPath,
      box,
      error.corrupt ? 'corrupt-chunk' : 'io',
      `${error.message} ${error.corrupt ? 'is corrupt' : 'could not be read'} (${what})`,
      { cause },
    );
  }
  const what = error instanceof Error ? error.message : String(error);
  return new VolumeReadError(v.location, v.arrayPath, box, 'io', what, { cause: error });
}

/**
 * Copies zarrita's result (the voxels of `inside`, laid out by `stride`: C order
 * normally, another order for arrays stored with a transpose/'F' order) into `out`.
 * Rows with unit x-stride move with one `set`.
 */
function copyStrided(
  src: NumericArray,
  stride: readonly number[],
  channelAxis: boolean,
  inside: Box,
  out: Dense<NumericArray>,
): void {
  const [sc, sz, sy, sx] = channelAxis ? stride : [0, ...stride];
  const shape = inside.shape;
  const w = shape[2];
  for (let c = 0; c < out.channels; c++)
    for (let z = 0; z < shape[0]; z++)
      for (let y = 0; y < shape[1]; y++) {
        const s = c * sc! + z * sz! + y * sy!;
        const d = indexOf(out, [inside.start[0] + z, inside.start[1] + y, inside.start[2]], c);
        if (sx === 1) out.data.set(src.subarray(s, s + w), d);
        else for (let x = 0; x < w; x++) out.data[d + x] = src[s + x * sx!]!;
      }
}
