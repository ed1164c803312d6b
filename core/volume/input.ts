// The input volume: a Zarr array (v3 or v2) of shape [z, y, x] or [c, z, y, x], read
// box by box with zeros outside the volume, so patches at the border see the same
// zero padding that whole-volume sliding-window inference sees.
//
// `openInputVolume(store)` on an OME-Zarr image group picks its level 0; on a plain
// array it opens the array itself. The voxel size comes from the OME-Zarr multiscales
// of the group holding the array, when there is one.

import * as zarr from 'zarrita';
import type { Dense, NumericArray } from '../array/dense.ts';
import type { Box, Vec3 } from '../geometry/index.ts';
import { describeStore, type Store } from '../store/index.ts';
import { isVolumeDtype, VOLUME_DTYPES, type VolumeDtype } from './dtype.ts';
import { VolumeFormatError, VolumeNotFoundError } from './errors.ts';
import { datasetPaths, voxelSizeOf } from './ome.ts';
import { checkArrayMetadata } from './zarr-meta.ts';
import { type PaddedRead, readPadded, withCheckedChunks, type ZarrArray } from './zarr-read.ts';

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
}

type Node = ZarrArray | zarr.Group<Store>;

export async function openInputVolume(store: Store, arrayPath = ''): Promise<InputVolume> {
  const location = describeStore(store);
  let path = trimSlashes(arrayPath);
  let node = await openNode(store, location, path);
  let voxelSize: Vec3 | undefined;

  if (node instanceof zarr.Group) {
    // An OME-Zarr image group: its first dataset is full resolution.
    const level0 = datasetPaths(node.attrs)[0];
    if (level0 === undefined)
      throw new VolumeNotFoundError(
        location,
        path,
        'found a Zarr group without OME-Zarr multiscales, not an array; give the path of the array inside it',
      );
    voxelSize = voxelSizeOf(node.attrs, level0);
    path = joinPath(path, level0);
    node = await openNode(store, location, path);
    if (node instanceof zarr.Group)
      throw new VolumeNotFoundError(location, path, 'the OME-Zarr level 0 path names a group');
  } else if (path !== '') {
    voxelSize = await parentVoxelSize(store, path);
  }
  return describeArray(node, location, path, voxelSize);
}

async function openNode(store: Store, location: string, path: string): Promise<Node> {
  // zarrita trusts the metadata it is given; check it first (see zarr-meta.ts).
  await checkArrayMetadata(store, location, path);
  const at = path === '' ? zarr.root(store) : zarr.root(store).resolve(path);
  try {
    return await zarr.open(at);
  } catch (error) {
    if (zarr.isZarritaError(error, 'NotFoundError'))
      throw new VolumeNotFoundError(
        location,
        path,
        'neither zarr.json (Zarr v3) nor .zarray/.zgroup (Zarr v2) exists there',
        { cause: error },
      );
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

/** The voxel size recorded for `path` in the multiscales of its parent group, if any. */
async function parentVoxelSize(store: Store, path: string): Promise<Vec3 | undefined> {
  const cut = path.lastIndexOf('/');
  const parent = cut < 0 ? '' : path.slice(0, cut);
  const at = parent === '' ? zarr.root(store) : zarr.root(store).resolve(parent);
  try {
    const group = await zarr.open(at, { kind: 'group' });
    return voxelSizeOf(group.attrs, path.slice(cut + 1));
  } catch (error) {
    // No parent group (or unreadable group metadata) just means no voxel size.
    if (zarr.isZarritaError(error, 'NotFoundError', 'InvalidMetadataError')) return undefined;
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

function describeArray(
  array: ZarrArray,
  location: string,
  arrayPath: string,
  voxelSize: Vec3 | undefined,
): InputVolume {
  const shape = array.shape;
  if (shape.length !== 3 && shape.length !== 4)
    throw new VolumeFormatError(
      location,
      arrayPath,
      'shape',
      `its shape is [${shape.join(', ')}] (${shape.length} dimensions); Tessera reads [z, y, x] or [c, z, y, x] arrays. Select a 3D or 4D array (e.g. drop a time axis when converting).`,
    );
  const dtype = array.dtype;
  if (!isVolumeDtype(dtype))
    throw new VolumeFormatError(
      location,
      arrayPath,
      'data_type',
      `its data type is ${dtype}; Tessera reads ${VOLUME_DTYPES.join(', ')}.`,
    );
  const channelAxis = shape.length === 4;
  const spatial = (s: readonly number[]): Vec3 => {
    const o = channelAxis ? 1 : 0;
    return [s[o]!, s[o + 1]!, s[o + 2]!];
  };
  const read: PaddedRead = {
    array: withCheckedChunks(array),
    location,
    arrayPath,
    dtype,
    shape: spatial(shape),
    channels: channelAxis ? shape[0]! : 1,
    channelAxis,
  };
  return {
    location,
    arrayPath,
    shape: read.shape,
    channels: read.channels,
    dtype,
    chunkShape: spatial(array.chunks),
    ...(voxelSize === undefined ? {} : { voxelSize }),
    readBox: (box: Box) => readPadded(read, box, 0),
  };
}

const trimSlashes = (path: string): string => path.replace(/^\/+|\/+$/g, '');
const joinPath = (a: string, b: string): string =>
  [a, trimSlashes(b)].filter((p) => p !== '').join('/');
const errorText = (error: unknown): string =>
  error instanceof Error ? error.message : String(error);
