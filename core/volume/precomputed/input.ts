// A Neuroglancer precomputed scale as Tessera's InputVolume: shape, chunks and voxel size
// come from `info` (reversed from [x, y, z]), reads are zero outside the volume, exactly
// like a Zarr input's. A chunk that is not stored reads as zeros (as an unwritten Zarr
// chunk reads as its fill value).
//
//   input.url = precomputed://s3://bucket/em   (or a directory/prefix holding `info`)
//   input.mip = 1 | "8_8_40"                  (default scale 0)

import { copyBox, type Dense, type NumericArray } from '../../array/dense.ts';
import { Box, fromFn, type Vec3 } from '../../geometry/index.ts';
import { type AbsolutePath, describeStore, type Store } from '../../store/index.ts';
import { arrayConstructor, type VolumeDtype } from '../dtype.ts';
import type { InputVolume } from '../input.ts';
import { type InputSelection, selectedChannels, selectedTime } from '../selection.ts';
import { compressedMortonCode } from './chunk-id.ts';
import {
  bytesPerValue,
  ChunkDecodeError,
  type ChunkFormat,
  decodeCompressedSegmentation,
  decodeJpeg,
  decodeRaw,
  ungzipIfNeeded,
} from './codecs.ts';
import { PrecomputedChunkError, PrecomputedInfoError } from './errors.ts';
import { chooseScale, looksLikeInfo, parseInfo, type Scale } from './info.ts';
import { ShardedScale } from './sharded.ts';

export const INFO_KEY: AbsolutePath = '/info';

/** What of the manifest's `input` says "precomputed" and which scale. */
export interface PrecomputedSelection {
  /** input.url as written: `precomputed://…` asks for a precomputed volume. */
  readonly url?: string;
  /** input.mip: a scale index or key. */
  readonly mip?: number | string;
}

/**
 * The precomputed volume the input names, or undefined when it is not one: asked for by
 * `precomputed://` or input.mip, or found by an `info` file at the store's root.
 */
export async function maybeOpenPrecomputed(
  store: Store,
  arrayPath: string,
  select: InputSelection & PrecomputedSelection,
): Promise<InputVolume | undefined> {
  const asked = /^precomputed:\/\//i.test(select.url ?? '') || select.mip !== undefined;
  if (!asked && (arrayPath !== '' || !(await isPrecomputed(store)))) return undefined;
  if (arrayPath !== '')
    throw new PrecomputedInfoError(
      describeStore(store),
      '',
      `is looked for at input.url itself, but input.array ("${arrayPath}") is set: input.array names an array inside a Zarr group. For a precomputed volume give the directory holding its info file as input.url and the scale as input.mip`,
    );
  return openPrecomputedInput(store, select);
}

/** True when the store holds a precomputed volume's `info` at its root. */
export async function isPrecomputed(store: Store): Promise<boolean> {
  const bytes = await store.get(INFO_KEY);
  if (bytes === undefined) return false;
  try {
    return looksLikeInfo(JSON.parse(new TextDecoder().decode(bytes)));
  } catch (error) {
    // An `info` that is not JSON is some other file named info, not a precomputed volume.
    if (error instanceof SyntaxError) return false;
    throw error;
  }
}

/** Opens scale `o.mip` (index or key; default 0) of the precomputed volume at `store`. */
export async function openPrecomputedInput(
  store: Store,
  o: { mip?: number | string } & InputSelection = {},
): Promise<InputVolume> {
  const location = describeStore(store);
  const bytes = await store.get(INFO_KEY);
  if (bytes === undefined)
    throw new PrecomputedInfoError(
      location,
      '',
      `does not exist: a precomputed volume is a directory (or prefix) with an \`info\` file. Check input.url${o.mip === undefined ? '' : ' (input.mip is for precomputed inputs only; an OME-Zarr level is chosen with input.array)'}.`,
    );
  let doc: unknown;
  try {
    doc = JSON.parse(new TextDecoder().decode(bytes));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new PrecomputedInfoError(location, '', `is not valid JSON (${error.message})`, {
      cause: error,
    });
  }
  const info = parseInfo(doc, location);
  const scale = chooseScale(info, o.mip, location);
  const where = { location, arrayPath: scale.key };
  selectedTime(where, undefined, o.t); // precomputed has no time axis
  const channels = selectedChannels(where, info.numChannels, o.channels);
  const format: ChunkFormat = {
    dataType: info.dataType,
    channels: info.numChannels,
    ...(scale.blockSize ? { blockSize: scale.blockSize } : {}),
  };
  const all = new PrecomputedInput(store, location, scale, format);
  return channels.every((c, i) => c === i) && channels.length === info.numChannels
    ? all
    : withChannels(all, channels);
}

/** `v` reading only `channels`, in that order. */
function withChannels(v: InputVolume, channels: readonly number[]): InputVolume {
  return {
    location: v.location,
    arrayPath: v.arrayPath,
    shape: v.shape,
    channels: channels.length,
    dtype: v.dtype,
    chunkShape: v.chunkShape,
    ...(v.voxelSize ? { voxelSize: v.voxelSize } : {}),
    checkStoredChunk: () => v.checkStoredChunk(),
    readBox: async (box) => {
      const all = await v.readBox(box);
      const n = box.size;
      const data = new (all.data.constructor as new (n: number) => NumericArray)(
        channels.length * n,
      );
      for (const [i, c] of channels.entries())
        data.set(all.data.subarray(c * n, (c + 1) * n), i * n);
      return { box, channels: channels.length, data };
    },
  };
}

class PrecomputedInput implements InputVolume {
  readonly arrayPath: string;
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: VolumeDtype;
  readonly chunkShape: Vec3;
  readonly voxelSize: Vec3;
  private readonly grid: Vec3;
  private readonly sharded: ShardedScale | undefined;
  private readonly dir: string;

  constructor(
    private readonly store: Store,
    readonly location: string,
    private readonly scale: Scale,
    private readonly format: ChunkFormat,
  ) {
    this.dir = scale.key.replace(/^\/+|\/+$/g, '');
    this.arrayPath = this.dir;
    this.shape = scale.size;
    this.channels = format.channels;
    this.dtype = format.dataType === 'uint64' ? 'float64' : format.dataType;
    this.chunkShape = scale.chunkSize;
    this.voxelSize = scale.resolution;
    this.grid = fromFn((a) => Math.ceil(scale.size[a] / scale.chunkSize[a]));
    this.sharded = scale.sharding
      ? new ShardedScale(store, location, this.dir, scale.key, scale.sharding)
      : undefined;
  }

  async readBox(box: Box): Promise<Dense<NumericArray>> {
    const out: Dense<NumericArray> = {
      box,
      channels: this.channels,
      data: new (arrayConstructor(this.dtype))(this.channels * box.size),
    };
    const inside = box.intersect(Box.ofShape(this.shape));
    if (inside.isEmpty()) return out;
    const lo = fromFn((a) => Math.floor(inside.start[a] / this.chunkShape[a]));
    const hi = fromFn((a) => Math.ceil(inside.stop[a] / this.chunkShape[a]));
    const cells: Vec3[] = [];
    for (let z = lo[0]; z < hi[0]; z++)
      for (let y = lo[1]; y < hi[1]; y++) for (let x = lo[2]; x < hi[2]; x++) cells.push([z, y, x]);
    // A few chunks at a time: a box spans tens of chunks, each one request.
    let next = 0;
    const worker = async () => {
      for (let i = next++; i < cells.length; i = next++) {
        const chunk = await this.readChunk(cells[i]!);
        if (chunk) copyBox(chunk, out);
      }
    };
    await Promise.all(Array.from({ length: Math.min(8, cells.length) }, worker));
    return out;
  }

  async checkStoredChunk(): Promise<void> {
    // Decoding the first stored chunk finds an info that misdescribes the data (a
    // data_type, an encoding) once, at open, not in every chunk's attempts.
    for (let x = 0; x < Math.min(this.grid[2], 8); x++) {
      const chunk = await this.readChunk([0, 0, x]);
      if (chunk) return;
    }
  }

  /** The voxels of grid cell `cell` (z, y, x), or undefined when it is not stored. */
  private async readChunk(cell: Vec3): Promise<Dense<NumericArray> | undefined> {
    const box = this.cellBox(cell);
    const { file, bytes } = await this.fetch(cell, box);
    if (bytes === undefined) return undefined;
    try {
      return { box, channels: this.channels, data: this.decode(bytes, box.shape) };
    } catch (error) {
      if (!(error instanceof ChunkDecodeError)) throw error;
      throw new PrecomputedChunkError(this.location, this.scale.key, file, error.message, {
        cause: error,
      });
    }
  }

  private cellBox(cell: Vec3): Box {
    const start = fromFn((a) => cell[a] * this.chunkShape[a]);
    const stop = fromFn((a) => Math.min(start[a] + this.chunkShape[a], this.shape[a]));
    return new Box(start, stop);
  }

  private async fetch(
    cell: Vec3,
    box: Box,
  ): Promise<{ file: string; bytes: Uint8Array | undefined }> {
    if (this.sharded) {
      const xyz = (v: Vec3): Vec3 => [v[2], v[1], v[0]];
      const id = compressedMortonCode(xyz(cell), xyz(this.grid));
      return { file: `chunk ${id} of ${this.dir}/`, bytes: await this.sharded.chunk(id) };
    }
    const o = this.scale.voxelOffset;
    const range = (a: 0 | 1 | 2) => `${box.start[a] + o[a]}-${box.stop[a] + o[a]}`;
    const name = `${this.dir}/${range(2)}_${range(1)}_${range(0)}`;
    const plain = await this.store.get(`/${name}`);
    if (plain !== undefined) return { file: name, bytes: plain };
    const gz = await this.store.get(`/${name}.gz`);
    if (gz === undefined) return { file: name, bytes: undefined };
    return { file: `${name}.gz`, bytes: gz };
  }

  private decode(stored: Uint8Array, shape: Vec3): NumericArray {
    const f = this.format;
    const voxels = shape[0] * shape[1] * shape[2];
    const rawSize =
      this.scale.encoding === 'raw' ? voxels * f.channels * bytesPerValue(f.dataType) : undefined;
    const bytes = ungzipIfNeeded(stored, rawSize);
    switch (this.scale.encoding) {
      case 'raw':
        return decodeRaw(bytes, shape, f);
      case 'jpeg':
        return decodeJpeg(bytes, shape, f);
      case 'compressed_segmentation':
        return decodeCompressedSegmentation(bytes, shape, f);
    }
  }
}
