// N5 input (the Saalfeld lab's format; BigDataViewer, Paintera and zarr-python's
// N5Store write it), read as an InputVolume.
//
//   container/attributes.json          {"n5": "2.x.y"}
//   container/<dataset>/attributes.json {dimensions, blockSize, dataType, compression}
//   container/<dataset>/<bx>/<by>/<bz>  one block: header + compressed big-endian data
//
// N5 lists axes fastest first (x, y, z[, c]): dimensions [X, Y, Z] is Tessera's
// [z, y, x] reversed, and a block's bytes, x fastest, are C order in (z, y, x). A 4-D
// dataset [X, Y, Z, C] reads as [c, z, y, x].
//
// Block header (big-endian): uint16 mode (0 default, 1 varlength), uint16 ndim, ndim ×
// uint32 block dims, then (mode 1) uint32 element count. The dims are the block's own:
// the Java writer stores edge blocks cut to the dataset, zarr-python stores them whole.
// A missing block reads as zeros.

import { promisify } from 'node:util';
import { unzip } from 'node:zlib';
import Blosc from 'numcodecs/blosc';
import type { Dense, NumericArray } from '../array/dense.ts';
import { offsetOf } from '../array/dense.ts';
import { Box, type Vec3 } from '../geometry/index.ts';
import { type AbsolutePath, describeStore, type Store } from '../store/index.ts';
import { arrayConstructor, isVolumeDtype, VOLUME_DTYPES, type VolumeDtype } from './dtype.ts';
import { VolumeFormatError, VolumeReadError } from './errors.ts';
import type { InputVolume } from './input.ts';
import { isNumberArray, isObject, type JsonObject, readJson } from './json.ts';
import { type InputSelection, selectedChannels, selectedTime } from './selection.ts';

const inflate = promisify(unzip); // gzip or zlib, told apart by the header

/** Blocks fetched and decoded at once by one readBox. */
const PARALLEL_BLOCKS = 16;

type Compression =
  | { readonly type: 'raw' }
  | { readonly type: 'gzip' }
  | { readonly type: 'blosc'; readonly config: JsonObject };

interface N5Dataset {
  /** (c?, z, y, x), Tessera's order. */
  readonly shape: readonly number[];
  readonly blockSize: readonly number[];
  readonly dtype: VolumeDtype;
  readonly compression: Compression;
}

const attributesKey = (path: string): AbsolutePath =>
  `/${path === '' ? '' : `${path}/`}attributes.json` as AbsolutePath;

/** The attributes of an N5 node at `path`, or undefined where there is none (or it is not JSON). */
async function attributesAt(store: Store, path: string): Promise<JsonObject | undefined> {
  try {
    const doc = await readJson(store, attributesKey(path));
    return isObject(doc) ? doc : undefined;
  } catch (error) {
    // Not JSON: not an N5 node this reader can claim; the caller reports what it found.
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

const isDatasetAttributes = (a: JsonObject | undefined): boolean =>
  a !== undefined && 'dimensions' in a && 'dataType' in a && 'blockSize' in a;

/**
 * True when `path` of `store` is an N5 dataset: its attributes.json has dimensions,
 * blockSize and dataType. (A container root says {"n5": version}; a dataset inside it
 * need not repeat that.)
 */
export async function isN5Dataset(store: Store, path: string): Promise<boolean> {
  return isDatasetAttributes(await attributesAt(store, path));
}

/** True when the store's root attributes.json declares an N5 container. */
export async function isN5Container(store: Store): Promise<boolean> {
  const root = await attributesAt(store, '');
  return root !== undefined && typeof root.n5 === 'string';
}

export async function openN5Input(
  store: Store,
  path: string,
  select: InputSelection = {},
): Promise<InputVolume> {
  const location = describeStore(store);
  const attributes = await attributesAt(store, path);
  const ds = parseDataset(location, path, attributes ?? {});
  const channelAxis = ds.shape.length === 4;
  const where = { location, arrayPath: path };
  selectedTime(where, undefined, select.t);
  const channels = selectedChannels(where, channelAxis ? ds.shape[0]! : 1, select.channels);
  const spatial = (s: readonly number[]): Vec3 => {
    const o = channelAxis ? 1 : 0;
    return [s[o]!, s[o + 1]!, s[o + 2]!];
  };
  const reader = new BlockReader(store, location, path, ds);
  const shape = spatial(ds.shape);
  return {
    location,
    arrayPath: path,
    shape,
    channels: channels.length,
    dtype: ds.dtype,
    chunkShape: spatial(ds.blockSize),
    readBox: (box: Box) => reader.readBox(box, shape, channels, channelAxis),
    checkStoredChunk: () => reader.checkFirstBlock(),
  };
}

function parseDataset(location: string, path: string, a: JsonObject): N5Dataset {
  const bad = (field: 'shape' | 'data_type' | 'chunk_grid' | 'codecs', detail: string) =>
    new VolumeFormatError(location, path, field, `N5 ${attributesKey(path).slice(1)}: ${detail}`);
  const dims = a.dimensions;
  const block = a.blockSize;
  if (!isNumberArray(dims) || !dims.every((d) => Number.isInteger(d) && d >= 1))
    throw bad('shape', `"dimensions" must be a list of positive integers, got ${j(dims)}`);
  if (dims.length !== 3 && dims.length !== 4)
    throw bad(
      'shape',
      `"dimensions" ${j(dims)} has ${dims.length} axes; Tessera reads 3-D [x, y, z] or 4-D [x, y, z, c] N5 datasets`,
    );
  if (
    !isNumberArray(block) ||
    block.length !== dims.length ||
    !block.every((b) => Number.isInteger(b) && b >= 1)
  )
    throw bad(
      'chunk_grid',
      `"blockSize" must be ${dims.length} positive integers (one per dimension), got ${j(block)}`,
    );
  const dataType = a.dataType;
  if (typeof dataType !== 'string' || !isVolumeDtype(dataType))
    throw bad(
      'data_type',
      `"dataType" is ${j(dataType)}; Tessera reads ${VOLUME_DTYPES.join(', ')} (64-bit integers cannot feed a float32 model exactly)`,
    );
  return {
    shape: [...dims].reverse(),
    blockSize: [...block].reverse(),
    dtype: dataType,
    compression: parseCompression(a, (detail) => bad('codecs', detail)),
  };
}

function parseCompression(a: JsonObject, bad: (detail: string) => Error): Compression {
  // N5 before 2.0 wrote "compressionType": "gzip"; later versions an object.
  const spec = isObject(a.compression)
    ? a.compression
    : typeof a.compressionType === 'string'
      ? { type: a.compressionType }
      : { type: 'raw' };
  switch (spec.type) {
    case 'raw':
      return { type: 'raw' };
    case 'gzip':
      return { type: 'gzip' };
    case 'blosc':
      return { type: 'blosc', config: spec };
    default:
      throw bad(
        `compression ${j(spec.type)} is not supported; Tessera reads N5 raw, gzip and blosc blocks. Re-save the dataset with gzip (or convert it to Zarr)`,
      );
  }
}

class BlockReader {
  private readonly itemSize: number;
  private blosc: ReturnType<typeof Blosc.fromConfig> | undefined;

  constructor(
    private readonly store: Store,
    private readonly location: string,
    private readonly path: string,
    private readonly ds: N5Dataset,
  ) {
    this.itemSize = new (arrayConstructor(ds.dtype))(0).BYTES_PER_ELEMENT;
  }

  /** Block key of grid coordinates in Tessera's order: N5 names them fastest axis first. */
  key(coords: readonly number[]): AbsolutePath {
    const parts = [...coords].reverse().join('/');
    return `/${this.path === '' ? '' : `${this.path}/`}${parts}` as AbsolutePath;
  }

  async readBox(
    box: Box,
    shape: Vec3,
    channels: readonly number[],
    channelAxis: boolean,
  ): Promise<Dense<NumericArray>> {
    const Ctor = arrayConstructor(this.ds.dtype);
    const out: Dense<NumericArray> = {
      box,
      channels: channels.length,
      data: new Ctor(channels.length * box.size),
    };
    const inside = box.intersect(Box.ofShape(shape));
    if (inside.isEmpty()) return out;
    const o = channelAxis ? 1 : 0;
    const bs = this.ds.blockSize;
    const lo = [0, 1, 2].map((a) => Math.floor(inside.start[a]! / bs[o + a]!));
    const hi = [0, 1, 2].map((a) => Math.ceil(inside.stop[a]! / bs[o + a]!));
    // Channel blocks holding the selected channels (one, when blockSize's c is 1).
    const cBlocks = channelAxis ? [...new Set(channels.map((c) => Math.floor(c / bs[0]!)))] : [0];
    const jobs: number[][] = [];
    for (const cb of cBlocks)
      for (let z = lo[0]!; z < hi[0]!; z++)
        for (let y = lo[1]!; y < hi[1]!; y++)
          for (let x = lo[2]!; x < hi[2]!; x++) jobs.push(channelAxis ? [cb, z, y, x] : [z, y, x]);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < jobs.length) {
        const coords = jobs[next++]!;
        const block = await this.block(coords, box);
        if (block !== undefined) this.copy(block, coords, inside, channels, channelAxis, out);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_BLOCKS, jobs.length) }, worker));
    return out;
  }

  /** Decoded block `coords`: its own dims (Tessera's order) and native-endian values. */
  private async block(
    coords: readonly number[],
    box: Box,
  ): Promise<{ dims: number[]; data: NumericArray } | undefined> {
    const key = this.key(coords);
    let bytes: Uint8Array | undefined;
    try {
      bytes = await this.store.get(key);
    } catch (error) {
      throw new VolumeReadError(
        this.location,
        this.path,
        box,
        'io',
        `N5 block ${key}: ${text(error)}`,
        {
          cause: error,
        },
      );
    }
    if (bytes === undefined) return undefined;
    try {
      return await this.decode(bytes, coords);
    } catch (error) {
      throw new VolumeReadError(
        this.location,
        this.path,
        box,
        'corrupt-chunk',
        `N5 block ${key} is corrupt (${text(error)})`,
        { cause: error },
      );
    }
  }

  private async decode(
    bytes: Uint8Array,
    coords: readonly number[],
  ): Promise<{ dims: number[]; data: NumericArray }> {
    const rank = this.ds.shape.length;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (bytes.byteLength < 4)
      throw new N5BlockError('header', `${bytes.byteLength} bytes, shorter than a header`);
    const mode = view.getUint16(0);
    const ndim = view.getUint16(2);
    if (mode !== 0 && mode !== 1)
      throw new N5BlockError('header', `block mode ${mode} (not a default or varlength block)`);
    if (ndim !== rank)
      throw new N5BlockError('header', `header says ${ndim} dimensions, the dataset has ${rank}`);
    let at = 4;
    const n5dims: number[] = [];
    for (let i = 0; i < ndim; i++, at += 4) {
      if (at + 4 > bytes.byteLength) throw new N5BlockError('header', 'header cut short');
      n5dims.push(view.getUint32(at));
    }
    if (mode === 1) at += 4; // element count; the dims say the same for numeric data
    const dims = n5dims.reverse();
    // The block must cover its part of the dataset and stay within one block's size.
    for (let a = 0; a < rank; a++) {
      const need = Math.min(
        this.ds.blockSize[a]!,
        this.ds.shape[a]! - coords[a]! * this.ds.blockSize[a]!,
      );
      if (dims[a]! < need || dims[a]! > this.ds.blockSize[a]!)
        throw new N5BlockError(
          'header',
          `header dims [${[...dims].reverse().join(', ')}] (x first) do not fit the block's place in the dataset`,
        );
    }
    const body = bytes.subarray(at);
    const raw = await this.decompress(body);
    const count = dims.reduce((p, d) => p * d, 1);
    if (raw.byteLength !== count * this.itemSize)
      throw new N5BlockError(
        'size',
        `holds ${raw.byteLength} bytes of data where ${count} ${this.ds.dtype} values need ${count * this.itemSize}`,
      );
    return { dims, data: fromBigEndian(raw, this.ds.dtype) };
  }

  private async decompress(body: Uint8Array): Promise<Uint8Array> {
    const c = this.ds.compression;
    if (c.type === 'raw') return body;
    if (c.type === 'gzip') return new Uint8Array(await inflate(body));
    this.blosc ??= Blosc.fromConfig(c.config);
    return await this.blosc.decode(body);
  }

  /** Copies the part of a decoded block inside `inside` into `out`, for the selected channels. */
  private copy(
    block: { dims: number[]; data: NumericArray },
    coords: readonly number[],
    inside: Box,
    channels: readonly number[],
    channelAxis: boolean,
    out: Dense<NumericArray>,
  ): void {
    const o = channelAxis ? 1 : 0;
    const bs = this.ds.blockSize;
    const origin: Vec3 = [0, 1, 2].map((a) => coords[o + a]! * bs[o + a]!) as unknown as Vec3;
    const dims: Vec3 = [block.dims[o]!, block.dims[o + 1]!, block.dims[o + 2]!];
    const part = inside.intersect(Box.ofShape(dims, origin));
    if (part.isEmpty()) return;
    const c0 = channelAxis ? coords[0]! * bs[0]! : 0;
    const cCount = channelAxis ? block.dims[0]! : 1;
    const w = part.shape[2];
    channels.forEach((channel, k) => {
      const local = channel - c0;
      if (local < 0 || local >= cCount) return;
      for (let z = part.start[0]; z < part.stop[0]; z++)
        for (let y = part.start[1]; y < part.stop[1]; y++) {
          const s =
            ((local * dims[0] + (z - origin[0])) * dims[1] + (y - origin[1])) * dims[2] +
            (part.start[2] - origin[2]);
          out.data.set(block.data.subarray(s, s + w), offsetOf(out.box, k, z, y, part.start[2]));
        }
    });
  }

  /**
   * Decodes the first stored block of the first few: metadata that misdescribes the
   * blocks (a dataType of float32 over uint8 data) fails every chunk alike, so it is
   * refused at open, once.
   */
  async checkFirstBlock(): Promise<void> {
    const grid = this.ds.shape.map((s, a) => Math.ceil(s / this.ds.blockSize[a]!));
    const coords = grid.map(() => 0);
    for (let k = 0; k < PROBED_BLOCKS; k++) {
      const bytes = await this.store.get(this.key(coords));
      if (bytes !== undefined) {
        try {
          await this.decode(bytes, coords);
          return;
        } catch (error) {
          // A block damaged on its own is left to the read that needs it.
          if (!(error instanceof N5BlockError) || error.kind !== 'size') return;
          throw new VolumeFormatError(
            this.location,
            this.path,
            'data_type',
            `N5 block ${this.key(coords)} ${error.message}: the dataset's attributes.json (dataType, blockSize or compression) is probably wrong`,
            { cause: error },
          );
        }
      }
      let axis = coords.length - 1;
      while (axis >= 0 && ++coords[axis]! === grid[axis]) coords[axis--] = 0;
      if (axis < 0) return;
    }
  }
}

const PROBED_BLOCKS = 8;

/** A block whose bytes do not decode as the dataset's attributes say. */
class N5BlockError extends Error {
  override readonly name = 'N5BlockError';
  constructor(
    /** 'size': the data decoded, to a length the attributes do not mean (metadata suspect). */
    readonly kind: 'header' | 'size',
    message: string,
  ) {
    super(message);
  }
}

/** Native-endian values of big-endian bytes (a copy; the input is left as it was). */
function fromBigEndian(raw: Uint8Array, dtype: VolumeDtype): NumericArray {
  const Ctor = arrayConstructor(dtype);
  const size = new Ctor(0).BYTES_PER_ELEMENT;
  const copy = new Uint8Array(raw.byteLength);
  copy.set(raw);
  if (size > 1 && LITTLE_ENDIAN)
    for (let i = 0; i < copy.length; i += size)
      for (let a = i, b = i + size - 1; a < b; a++, b--) {
        const t = copy[a]!;
        copy[a] = copy[b]!;
        copy[b] = t;
      }
  const view = new (Ctor as unknown as new (b: ArrayBuffer) => NumericArray)(copy.buffer);
  return view;
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const j = (v: unknown): string => JSON.stringify(v) ?? String(v);
const text = (e: unknown): string => (e instanceof Error ? e.message : String(e));
