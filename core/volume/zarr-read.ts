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
import {
  arrayConstructor,
  isNumericArray,
  isVolumeDtype,
  VOLUME_DTYPES,
  type VolumeDtype,
} from './dtype.ts';
import { VolumeReadError } from './errors.ts';

export type ZarrArray = zarr.Array<zarr.DataType, Store>;

/** What messages about an array's chunks need from its metadata (see input.ts chunkLayoutOf). */
export interface ChunkLayout {
  /** The metadata document: 'zarr.json' (v3) or '.zarray' (v2). */
  readonly file: 'zarr.json' | '.zarray';
  /** Where it is, for "check <path>". */
  readonly metadataPath: string;
  /** Storage key, relative to the array, of the object holding chunk `coords` (its shard's, when sharded). */
  keyOf(coords: readonly number[]): string;
}

/**
 * A stored chunk whose decoded size is not what the metadata says: `elements` decoded
 * where data_type and the chunk shape mean `expected`. When the stored bytes are exactly
 * what another data type of the same chunk shape would hold (`fits`), the metadata is the
 * likely culprit, not the chunk: a zarr.json saying float32 over uint8 data fails every
 * chunk alike.
 */
export class ChunkSizeError extends Error {
  override readonly name = 'ChunkSizeError';
  /** Bytes the metadata means: chunk shape × the data type's size. */
  readonly expectedBytes: number;
  /** Bytes the chunk holds, where another data type explains them; else what decoded. */
  readonly bytes: number;
  /** Data types whose size would account for the stored bytes exactly ([] when none does). */
  readonly fits: readonly VolumeDtype[];

  constructor(
    readonly key: string,
    readonly layout: ChunkLayout,
    readonly dataType: VolumeDtype,
    readonly chunkShape: readonly number[],
    readonly expected: number,
    readonly elements: number,
  ) {
    const size = itemSize(dataType);
    // The bytes codec decodes whole elements: `elements` = floor(stored bytes / size).
    const fits = VOLUME_DTYPES.filter(
      (t) => itemSize(t) !== size && Math.floor((expected * itemSize(t)) / size) === elements,
    );
    const bytes = fits[0] === undefined ? elements * size : expected * itemSize(fits[0]);
    const { file } = layout;
    const typeKey = file === 'zarr.json' ? 'data_type' : 'dtype';
    const shapeKey = file === 'zarr.json' ? 'chunk_shape' : 'chunks';
    const claim =
      `input chunk ${key} ${fits.length > 0 ? 'holds' : 'decodes to'} ${bytes} bytes where ` +
      `${file}'s ${typeKey} "${dataType}" and ${shapeKey} [${chunkShape.join(', ')}] mean ` +
      `${expected * size} bytes`;
    super(
      fits.length > 0
        ? `${claim} (as many as ${typeKey} ${fits.map((t) => `"${t}"`).join(' or ')} would hold): ` +
            `${file}'s ${typeKey} (or its ${shapeKey} or codecs) is probably wrong - check ${layout.metadataPath}`
        : `${claim}: the chunk is cut short or padded`,
    );
    this.expectedBytes = expected * size;
    this.bytes = bytes;
    this.fits = fits;
  }

  /** True when the metadata, not this chunk, is the likely culprit. */
  get metadataSuspect(): boolean {
    return this.fits.length > 0;
  }
}

const itemSize = (t: VolumeDtype): number => new (arrayConstructor(t))(0).BYTES_PER_ELEMENT;

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

const checkedChunks = zarr.defineArrayExtension((array, layout: ChunkLayout) => ({
  async getChunk(coords, options, opts) {
    let chunk: Awaited<ReturnType<typeof array.getChunk>>;
    try {
      chunk = await array.getChunk(coords, options, opts);
    } catch (cause) {
      throw new ChunkFailure(coords, zarr.isZarritaError(cause, 'CodecPipelineError'), { cause });
    }
    const expected = chunk.shape.reduce((a, b) => a * b, 1);
    if (chunk.data.length !== expected) {
      const dtype = array.dtype;
      // Only volume data types reach here (describeArray refuses the rest first).
      if (!isVolumeDtype(dtype)) throw new TypeError(`unexpected data type ${dtype}`);
      throw new ChunkFailure(coords, true, {
        cause: new ChunkSizeError(
          layout.keyOf(coords),
          layout,
          dtype,
          chunk.shape,
          expected,
          chunk.data.length,
        ),
      });
    }
    return chunk;
  },
}));

/** Without the metadata at hand, messages name chunks by their coordinates. */
const BY_COORDS: ChunkLayout = {
  file: 'zarr.json',
  metadataPath: "the array's zarr.json",
  keyOf: (coords) => `[${coords.join(', ')}]`,
};

/** The array with every chunk read checked (see the module header). */
export function withCheckedChunks(array: ZarrArray, layout: ChunkLayout = BY_COORDS): ZarrArray {
  return checkedChunks(array, layout);
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
  /**
   * For [t, (c,) z, y, x] arrays (OME-Zarr 5-D, or 4-D with a time axis): the time point
   * read; the time axis is dropped from what readPadded returns.
   */
  readonly timeIndex?: number;
  /** Channels read, in output order (length `channels`); default all, in order. */
  readonly channelPicks?: readonly number[];
}

/**
 * Decodes the chunk at `coords` (chunk grid coordinates, all axes): its ChunkSizeError,
 * or undefined when it decodes, or fails to decode on its own (garbage bytes: the read
 * that needs it reports that). A failure to fetch it is thrown as it came.
 */
export async function chunkSizeProblem(
  v: PaddedRead,
  coords: readonly number[],
): Promise<ChunkSizeError | undefined> {
  try {
    await v.array.getChunk([...coords]);
    return undefined;
  } catch (error) {
    if (!(error instanceof ChunkFailure)) throw error;
    if (error.cause instanceof ChunkSizeError) return error.cause;
    if (error.corrupt) return undefined;
    throw error.cause;
  }
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
  // Selected channels are read as the one run of channels that spans them.
  const picks = v.channelPicks;
  const first = picks === undefined ? 0 : Math.min(...picks);
  const channelRange = picks === undefined ? null : zarr.slice(first, Math.max(...picks) + 1);
  const selection: (zarr.Slice | number | null)[] = [
    ...(v.timeIndex === undefined ? [] : [v.timeIndex]),
    ...(v.channelAxis ? [channelRange] : []),
    ...spatial,
  ];
  let result: zarr.Chunk<zarr.DataType>;
  try {
    result = await zarr.get(v.array, selection);
  } catch (error) {
    throw readError(v, box, error);
  }
  if (!isNumericArray(result.data))
    throw new TypeError(`zarrita returned a non-numeric array for data type ${v.dtype}`);
  // An integer index drops its axis: the result is [c?, z, y, x].
  const srcChannel = (c: number): number => (picks === undefined ? c : picks[c]! - first);
  copyStrided(result.data, result.stride, v.channelAxis, inside, out, srcChannel);
  return out;
}

function readError(v: PaddedRead, box: Box, error: unknown): VolumeReadError {
  if (error instanceof ChunkFailure) {
    const cause = error.cause;
    if (cause instanceof ChunkSizeError)
      return new VolumeReadError(v.location, v.arrayPath, box, 'corrupt-chunk', cause.message, {
        cause,
        ...(cause.metadataSuspect
          ? { advice: 'Re-creating the chunk will not help while the metadata is wrong.' }
          : {}),
      });
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
 * normally, another order for arrays stored with a transpose/'F' order) into `out`;
 * output channel c comes from the result's channel `srcChannel(c)`.
 * Rows with unit x-stride move with one `set`.
 */
function copyStrided(
  src: NumericArray,
  stride: readonly number[],
  channelAxis: boolean,
  inside: Box,
  out: Dense<NumericArray>,
  srcChannel: (c: number) => number = (c) => c,
): void {
  const [sc, sz, sy, sx] = channelAxis ? stride : [0, ...stride];
  const shape = inside.shape;
  const w = shape[2];
  for (let c = 0; c < out.channels; c++)
    for (let z = 0; z < shape[0]; z++)
      for (let y = 0; y < shape[1]; y++) {
        const s = srcChannel(c) * sc! + z * sz! + y * sy!;
        const d = indexOf(out, [inside.start[0] + z, inside.start[1] + y, inside.start[2]], c);
        if (sx === 1) out.data.set(src.subarray(s, s + w), d);
        else for (let x = 0; x < w; x++) out.data[d + x] = src[s + x * sx!]!;
      }
}
