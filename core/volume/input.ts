// The input volume: a Zarr array (v3 or v2) of shape [z, y, x] or [c, z, y, x] (or an
// OME-Zarr [t, c, z, y, x] image with one time point and some channels selected), or
// an N5 dataset (n5.ts), read box by box with zeros outside the volume, so patches at
// the border see the same zero padding that whole-volume sliding-window inference sees.
//
// `openInputVolume(store)` on an OME-Zarr image group picks its level 0; on a plain
// array it opens the array itself. The voxel size and the axes come from the OME-Zarr
// multiscales of the group holding the array, when there is one.

import * as zarr from 'zarrita';
import type { Dense, NumericArray } from '../array/dense.ts';
import type { Box, Vec3 } from '../geometry/index.ts';
import { type AbsolutePath, describeStore, type Store } from '../store/index.ts';
import { isVolumeDtype, VOLUME_DTYPES, type VolumeDtype } from './dtype.ts';
import { UnsupportedInputError, VolumeFormatError, VolumeNotFoundError } from './errors.ts';
import { isObject, type JsonObject, readJson } from './json.ts';
import { isN5Dataset, openN5Input } from './n5.ts';
import { axisKindsOf, datasetPaths, voxelSizeOf } from './ome.ts';
import { maybeOpenPrecomputed, type PrecomputedSelection } from './precomputed/input.ts';
import { recogniseInput } from './recognise.ts';
import { type InputSelection, selectedChannels, selectedTime } from './selection.ts';
import { checkArrayMetadata } from './zarr-meta.ts';
import {
  type ChunkLayout,
  type ChunkSizeError,
  chunkSizeProblem,
  type PaddedRead,
  readPadded,
  withCheckedChunks,
  type ZarrArray,
} from './zarr-read.ts';

export interface InputVolume {
  /** The store location, for messages. */
  readonly location: string;
  /** Path of the array inside the store ('' for the store root). */
  readonly arrayPath: string;
  /** Spatial shape (z, y, x). */
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: VolumeDtype;
  /** Spatial chunk shape (z, y, x) of the stored array; aligned reads are cheapest. */
  readonly chunkShape: Vec3;
  /** Physical voxel size (z, y, x) from OME-Zarr metadata, when present. */
  readonly voxelSize?: Vec3;
  /** Raw values of `box`, all channels; zero outside the volume. May lie partly or wholly outside. */
  readBox(box: Box): Promise<Dense<NumericArray>>;
  /**
   * Decodes the first stored chunk (of the first few in C order; a second to confirm) and throws
   * VolumeFormatError ('data_type') when its size says the metadata misdescribes the
   * chunks (a data_type of float32 over uint8 bytes). Such an array fails every chunk
   * alike: found here, at open, it fails the job once instead of each chunk's attempts.
   * A chunk damaged on its own is left to the read that needs it.
   */
  checkStoredChunk(): Promise<void>;
}

type Node = ZarrArray | zarr.Group<Store>;

/**
 * Opens the input at `arrayPath` of `store`: a Zarr array or OME-Zarr image, or an N5
 * dataset. `select` picks the time point and channels of a higher-dimensional image
 * (manifest input.t, input.channels). Anything else is refused by what it is
 * (UnsupportedInputError, see recognise.ts).
 */
export async function openInputVolume(
  store: Store,
  arrayPath = '',
  select: InputSelection & PrecomputedSelection = {},
): Promise<InputVolume> {
  const path = trimSlashes(arrayPath);
  // Formats told by their own metadata, before Zarr's.
  const precomputed = await maybeOpenPrecomputed(store, path, select);
  if (precomputed) return precomputed;
  if (await isN5Dataset(store, path)) return openN5Input(store, path, select);
  return openZarrInput(store, path, select);
}

async function openZarrInput(
  store: Store,
  arrayPath: string,
  select: InputSelection,
): Promise<InputVolume> {
  const location = describeStore(store);
  let path = arrayPath;
  let node = await openNode(store, location, path);
  let image: ImageMetadata = {};

  if (node instanceof zarr.Group && isBioformats2rawRoot(node.attrs)) {
    // bioformats2raw's container: series "0" is the (first) image.
    path = joinPath(path, '0');
    node = await openNode(store, location, path);
  }
  if (node instanceof zarr.Group) {
    // An OME-Zarr image group: its first dataset is full resolution.
    const level0 = datasetPaths(node.attrs)[0];
    if (level0 === undefined)
      throw new VolumeNotFoundError(
        location,
        path,
        'found a Zarr group without OME-Zarr multiscales, not an array; give the path of the array inside it',
      );
    image = imageMetadata(node.attrs, level0);
    path = joinPath(path, level0);
    node = await openNode(store, location, path);
    if (node instanceof zarr.Group)
      throw new VolumeNotFoundError(location, path, 'the OME-Zarr level 0 path names a group');
  } else if (path !== '') {
    image = await parentImageMetadata(store, path);
  }
  const layout = await chunkLayoutOf(store, location, path);
  return describeArray(node, store, layout, path, image, select);
}

/** A bioformats2raw root: series groups "0", "1", ... beside OME/, no multiscales of its own. */
const isBioformats2rawRoot = (attributes: JsonObject): boolean =>
  'bioformats2raw.layout' in attributes && datasetPaths(attributes).length === 0;

/** What the OME-Zarr multiscales say of one dataset: its voxel size and axis names/types. */
interface ImageMetadata {
  /** True when OME-Zarr multiscales describe the array (their axes may still be absent: OME-Zarr < 0.4). */
  readonly ome?: boolean;
  readonly voxelSize?: Vec3;
  /** Axis types ('time', 'channel', 'space') or, where a type is missing, names. */
  readonly axes?: readonly string[];
}

function imageMetadata(attributes: JsonObject, path: string): ImageMetadata {
  const voxelSize = voxelSizeOf(attributes, path);
  const axes = axisKindsOf(attributes);
  return {
    ome: datasetPaths(attributes).length > 0,
    ...(voxelSize === undefined ? {} : { voxelSize }),
    ...(axes === undefined ? {} : { axes }),
  };
}

async function openNode(store: Store, location: string, path: string): Promise<Node> {
  // zarrita trusts the metadata it is given; check it first (see zarr-meta.ts).
  await checkArrayMetadata(store, location, path);
  const at = path === '' ? zarr.root(store) : zarr.root(store).resolve(path);
  try {
    return await zarr.open(at);
  } catch (error) {
    if (zarr.isZarritaError(error, 'NotFoundError')) {
      // Not Zarr: say what it is instead, where that can be told (an HDF5 file, a TIFF stack).
      const found = await recogniseInput(store, path);
      if (found !== undefined)
        throw new UnsupportedInputError(location, path, found.what, found.advice);
      throw new VolumeNotFoundError(
        location,
        path,
        'neither zarr.json (Zarr v3) nor .zarray/.zgroup (Zarr v2) exists there',
        { cause: error },
      );
    }
    if (zarr.isZarritaError(error, 'InvalidMetadataError', 'UnknownCodecError'))
      throw new VolumeFormatError(location, path, 'metadata', errorText(error), { cause: error });
    if (error instanceof SyntaxError)
      throw new VolumeFormatError(
        location,
        path,
        'metadata',
        `metadata is not valid JSON (${error.message})`,
        { cause: error },
      );
    throw error;
  }
}

/** The multiscales metadata recorded for `path` in its parent group, if any. */
async function parentImageMetadata(store: Store, path: string): Promise<ImageMetadata> {
  const cut = path.lastIndexOf('/');
  const parent = cut < 0 ? '' : path.slice(0, cut);
  const at = parent === '' ? zarr.root(store) : zarr.root(store).resolve(parent);
  try {
    const group = await zarr.open(at, { kind: 'group' });
    return imageMetadata(group.attrs, path.slice(cut + 1));
  } catch (error) {
    // No parent group (or unreadable group metadata) just means no voxel size or axes.
    if (zarr.isZarritaError(error, 'NotFoundError', 'InvalidMetadataError')) return {};
    if (error instanceof SyntaxError) return {};
    throw error;
  }
}

/**
 * Which axis of an array of `rank` dimensions is time, which channels: from the
 * multiscales' axes when they describe `rank` axes, else by rank ([z, y, x],
 * [c, z, y, x], and - inside OME-Zarr multiscales, whose versions before 0.4 list no
 * axes and are always 5-D - [t, c, z, y, x]). OME-Zarr orders axes time, channel,
 * space, so a time axis is always first and a channel axis next. A bare 5-D array
 * says nothing of its axes and is refused.
 */
function axisRoles(
  rank: number,
  image: ImageMetadata,
  refuse: (detail: string) => Error,
): { time: boolean; channel: boolean } {
  const axes = image.axes;
  if (axes === undefined || axes.length !== rank) {
    if (rank === 3) return { time: false, channel: false };
    if (rank === 4) return { time: false, channel: true };
    if (rank === 5 && image.ome === true) return { time: true, channel: true };
    throw refuse(
      `its shape has ${rank} dimensions${rank === 5 ? ' and no OME-Zarr multiscales say which axis is what' : ''}; Tessera reads [z, y, x] or [c, z, y, x] arrays, and OME-Zarr [t, c, z, y, x] images (input.t, input.channels select from them). Select a 3-D or 4-D array, or give the OME-Zarr image group.`,
    );
  }
  const kinds = [...axes];
  const time = kinds[0] === 'time';
  const channel = kinds[time ? 1 : 0] === 'channel';
  const space = kinds.slice((time ? 1 : 0) + (channel ? 1 : 0));
  if (space.length !== 3 || !space.every((k) => k === 'space'))
    throw refuse(
      `its OME-Zarr axes are [${kinds.join(', ')}]; Tessera reads images with three space axes, after at most one time and one channel axis (t, c, z, y, x order).`,
    );
  return { time, channel };
}

function describeArray(
  array: ZarrArray,
  store: Store,
  layout: ChunkLayout,
  arrayPath: string,
  image: ImageMetadata,
  select: InputSelection,
): InputVolume {
  const location = describeStore(store);
  const shape = array.shape;
  const roles = axisRoles(
    shape.length,
    image,
    (detail) =>
      new VolumeFormatError(location, arrayPath, 'shape', `[${shape.join(', ')}]: ${detail}`),
  );
  const dtype = array.dtype;
  if (!isVolumeDtype(dtype))
    throw new VolumeFormatError(
      location,
      arrayPath,
      'data_type',
      `its data type is ${dtype}; Tessera reads ${VOLUME_DTYPES.join(', ')}.`,
    );
  const where = { location, arrayPath };
  const timeIndex = selectedTime(where, roles.time ? shape[0] : undefined, select.t);
  const channelCount = roles.channel ? shape[roles.time ? 1 : 0]! : 1;
  const picks = selectedChannels(where, channelCount, select.channels);
  const allChannels = picks.length === channelCount && picks.every((c, i) => c === i);
  const spatial = (s: readonly number[]): Vec3 => {
    const o = s.length - 3;
    return [s[o]!, s[o + 1]!, s[o + 2]!];
  };
  const read: PaddedRead = {
    array: withCheckedChunks(array, layout),
    location,
    arrayPath,
    dtype,
    shape: spatial(shape),
    channels: picks.length,
    channelAxis: roles.channel,
    ...(timeIndex === undefined ? {} : { timeIndex }),
    ...(allChannels ? {} : { channelPicks: picks }),
  };
  return {
    location,
    arrayPath,
    shape: read.shape,
    channels: read.channels,
    dtype,
    chunkShape: spatial(array.chunks),
    ...(image.voxelSize === undefined ? {} : { voxelSize: image.voxelSize }),
    readBox: (box: Box) => readPadded(read, box, 0),
    checkStoredChunk: async () => {
      let suspect: ChunkSizeError | undefined;
      for (const coords of firstChunks(array.shape, array.chunks, PROBED_CHUNKS)) {
        if (!(await exists(store, objectKey(arrayPath, layout.keyOf(coords))))) continue;
        const problem = await chunkSizeProblem(read, coords);
        // One chunk that decodes clears the metadata: a misfit before it is its own damage.
        if (!problem?.metadataSuspect) return;
        // A second stored chunk of the same misfit confirms the metadata is at fault.
        if (suspect !== undefined) break;
        suspect = problem;
      }
      if (suspect !== undefined)
        throw new VolumeFormatError(location, arrayPath, 'data_type', suspect.message, {
          cause: suspect,
        });
    },
  };
}

/** Chunks looked for at open: a sparse array may store none of the first few (then none is checked). */
const PROBED_CHUNKS = 8;

/** The first `n` chunk coordinates in C order. */
function* firstChunks(shape: readonly number[], chunks: readonly number[], n: number) {
  const grid = shape.map((s, i) => Math.ceil(s / chunks[i]!));
  if (grid.some((g) => g === 0)) return;
  const coords = grid.map(() => 0);
  for (let k = 0; k < n; k++) {
    yield [...coords];
    let axis = coords.length - 1;
    while (axis >= 0 && ++coords[axis]! === grid[axis]) coords[axis--] = 0;
    if (axis < 0) return;
  }
}

async function exists(store: Store, key: AbsolutePath): Promise<boolean> {
  // One byte where the store can: the chunk itself is read again to decode it.
  const bytes = store.getRange
    ? await store.getRange(key, { offset: 0, length: 1 })
    : await store.get(key);
  return bytes !== undefined;
}

const objectKey = (arrayPath: string, key: string): AbsolutePath =>
  `/${[arrayPath, key].filter((p) => p !== '').join('/')}`;

/**
 * Chunk keys and the metadata's name, from the document zarrita opened (already checked
 * by checkArrayMetadata). zarrita hands chunk coordinates only; messages name keys.
 */
async function chunkLayoutOf(store: Store, location: string, path: string): Promise<ChunkLayout> {
  const metadataPath = (file: string): string =>
    [location.replace(/\/+$/, ''), path, file].filter((p) => p !== '').join('/');
  const v3 = await readJson(store, objectKey(path, 'zarr.json'));
  if (isObject(v3)) {
    const encoding = isObject(v3.chunk_key_encoding) ? v3.chunk_key_encoding : {};
    const v2Keys = encoding.name === 'v2';
    const configured = isObject(encoding.configuration)
      ? encoding.configuration.separator
      : undefined;
    const sep = typeof configured === 'string' ? configured : v2Keys ? '.' : '/';
    const shards = shardRatio(v3);
    return {
      file: 'zarr.json',
      metadataPath: metadataPath('zarr.json'),
      keyOf: (coords) => {
        const stored = shards ? coords.map((c, i) => Math.floor(c / shards[i]!)) : coords;
        return v2Keys ? stored.join(sep) || '0' : ['c', ...stored].join(sep);
      },
    };
  }
  const v2 = await readJson(store, objectKey(path, '.zarray'));
  const configured = isObject(v2) ? v2.dimension_separator : undefined;
  const sep = typeof configured === 'string' ? configured : '.';
  return {
    file: '.zarray',
    metadataPath: metadataPath('.zarray'),
    keyOf: (coords) => coords.join(sep) || '0',
  };
}

/** Inner chunks per shard along each axis, for a sharded v3 array. */
function shardRatio(doc: JsonObject): number[] | undefined {
  const codecs = Array.isArray(doc.codecs) ? doc.codecs : [];
  const sharding = codecs.find((c) => isObject(c) && c.name === 'sharding_indexed');
  const inner =
    isObject(sharding) && isObject(sharding.configuration)
      ? sharding.configuration.chunk_shape
      : undefined;
  const grid =
    isObject(doc.chunk_grid) && isObject(doc.chunk_grid.configuration)
      ? doc.chunk_grid.configuration.chunk_shape
      : undefined;
  if (!Array.isArray(inner) || !Array.isArray(grid)) return undefined;
  return grid.map((g, i) => Number(g) / Number(inner[i]));
}

const trimSlashes = (path: string): string => path.replace(/^\/+|\/+$/g, '');
const joinPath = (a: string, b: string): string =>
  [a, trimSlashes(b)].filter((p) => p !== '').join('/');
const errorText = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
