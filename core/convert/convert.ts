// `tessera convert`: an HDF5 dataset, a multipage TIFF or a TIFF stack → OME-Zarr 0.5 on
// Zarr v3, the layout Tessera writes its own output in:
//
//   out.zarr/zarr.json     group, attributes.ome (multiscales [c, z, y, x], one level)
//   out.zarr/0/zarr.json   array [C, Z, Y, X] of the input's dtype, chunks [C, cz, cy, cx],
//                          bytes + zstd (the output codecs)
//
// Streaming: the volume goes over in bands of one chunk row (cz × cy × the full width,
// or whole chunks along x up to DEFAULT_MAX_BAND_BYTES), each read from the source and
// written as whole chunks before the next is read, so memory holds a band, never the file. The group's metadata is written last: an
// interrupted conversion leaves no OME-Zarr image that looks complete.

import { open, stat } from 'node:fs/promises';
import { basename } from 'node:path';
import * as zarr from 'zarrita';
import '../volume/zstd.ts'; // zarrita's zstd codec → the copy-free one
import type { Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, Store } from '../store/index.ts';
import { arrayConstructor, OUTPUT_CODECS, writeOmeMetadata } from '../volume/index.ts';
import { ConvertInputError, ConvertOutputExistsError } from './errors.ts';
import { openHdf5Source } from './hdf5.ts';
import type { ConvertSource } from './source.ts';
import { openTiffSource } from './tiff.ts';

/** Chunk shape (z, y, x) when none is given: viewer-friendly and a cheap read for Tessera. */
export const DEFAULT_CONVERT_CHUNK: Vec3 = [64, 256, 256];

/**
 * Largest band read at once, bytes. A band spans the full width when that fits: a
 * stripped TIFF decodes whole rows, so narrower bands would decode each strip again.
 */
export const DEFAULT_MAX_BAND_BYTES = 256 * 2 ** 20;

export interface ConvertProgress {
  /** Chunks written so far, of `total`. */
  readonly done: number;
  readonly total: number;
  readonly voxels: number;
}

export interface ConvertResult {
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: string;
  readonly chunk: Vec3;
  readonly chunks: number;
  /** Largest band held in memory at once, bytes. */
  readonly bandBytes: number;
}

const HDF5_SIGNATURE = [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a];
const TIFF_SIGNATURES = [
  [0x49, 0x49, 0x2a, 0x00],
  [0x4d, 0x4d, 0x00, 0x2a],
  [0x49, 0x49, 0x2b, 0x00],
  [0x4d, 0x4d, 0x00, 0x2b],
];

/** The source for `input`: an HDF5 file (`dataset` inside it), a TIFF file, or a directory of TIFFs. */
export async function openConvertSource(input: string, dataset?: string): Promise<ConvertSource> {
  const info = await stat(input).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT')
      throw new ConvertInputError(input, 'format', 'there is no such file or directory', {
        cause: error,
      });
    throw error;
  });
  const tiffOnly = (): void => {
    if (dataset !== undefined)
      throw new ConvertInputError(
        input,
        'option',
        '--dataset names a dataset inside an HDF5 file; a TIFF input has none (leave it out)',
      );
  };
  if (info.isDirectory()) {
    tiffOnly();
    return openTiffSource(input, true);
  }
  const head = await firstBytes(input, 8);
  if (HDF5_SIGNATURE.every((b, i) => head[i] === b)) return openHdf5Source(input, dataset);
  if (TIFF_SIGNATURES.some((s) => s.every((b, i) => head[i] === b))) {
    tiffOnly();
    return openTiffSource(input, false);
  }
  const hex = [...head].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  throw new ConvertInputError(
    input,
    'format',
    `it is neither an HDF5 file nor a TIFF (it starts with bytes ${hex}); tessera convert reads HDF5 datasets, multipage TIFFs and directories of TIFFs. Zarr and N5 need no conversion: give them to input.url as they are`,
  );
}

async function firstBytes(file: string, n: number): Promise<Uint8Array> {
  const handle = await open(file, 'r');
  try {
    const out = new Uint8Array(n);
    const { bytesRead } = await handle.read(out, 0, n, 0);
    return out.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Writes `source` into `store` as an OME-Zarr image, band by band (see the module header). */
export async function convertToOmeZarr(
  source: ConvertSource,
  store: Store,
  o: {
    chunk?: Vec3;
    name?: string;
    /** Default DEFAULT_MAX_BAND_BYTES. */
    maxBandBytes?: number;
    onProgress?: (p: ConvertProgress) => void;
  } = {},
): Promise<ConvertResult> {
  const location = store.location ?? 'the output';
  for (const key of ['/zarr.json', '/0/zarr.json'] as AbsolutePath[])
    if ((await store.get(key)) !== undefined) throw new ConvertOutputExistsError(location);
  const [Z, Y, X] = source.shape;
  const C = source.channels;
  const want = o.chunk ?? DEFAULT_CONVERT_CHUNK;
  const chunk: Vec3 = [Math.min(want[0], Z), Math.min(want[1], Y), Math.min(want[2], X)];
  const array = await zarr.create(zarr.root(store).resolve('0'), {
    shape: [C, Z, Y, X],
    chunkShape: [C, ...chunk],
    dtype: source.dtype,
    codecs: OUTPUT_CODECS.map((c) => ({ name: c.name, configuration: c.configuration ?? {} })),
    fillValue: 0,
  });
  const grid = [Math.ceil(Z / chunk[0]), Math.ceil(Y / chunk[1]), Math.ceil(X / chunk[2])];
  const total = grid[0]! * grid[1]! * grid[2]!;
  // The full width, unless that makes a band bigger than maxBandBytes: then as many
  // whole chunks along x as fit (at least one).
  const itemBytes = new (arrayConstructor(source.dtype))(0).BYTES_PER_ELEMENT;
  const chunkRowBytes = C * chunk[0] * chunk[1] * chunk[2] * itemBytes;
  const limit = o.maxBandBytes ?? DEFAULT_MAX_BAND_BYTES;
  const bandWidth = Math.min(X, chunk[2] * Math.max(1, Math.floor(limit / chunkRowBytes)));
  let done = 0;
  let voxels = 0;
  let bandBytes = 0;
  o.onProgress?.({ done, total, voxels });
  for (let z0 = 0; z0 < Z; z0 += chunk[0]) {
    const z1 = Math.min(Z, z0 + chunk[0]);
    for (let y0 = 0; y0 < Y; y0 += chunk[1]) {
      const y1 = Math.min(Y, y0 + chunk[1]);
      for (let x0 = 0; x0 < X; x0 += bandWidth) {
        const x1 = Math.min(X, x0 + bandWidth);
        const data = await source.readBand(z0, z1, y0, y1, x0, x1);
        bandBytes = Math.max(bandBytes, data.byteLength);
        const [dz, dy, dx] = [z1 - z0, y1 - y0, x1 - x0];
        const selection = [null, zarr.slice(z0, z1), zarr.slice(y0, y1), zarr.slice(x0, x1)];
        await zarr.set(array, selection, {
          data,
          shape: [C, dz, dy, dx],
          stride: [dz * dy * dx, dy * dx, dx, 1],
        } as never);
        done += Math.ceil(dx / chunk[2]);
        voxels += dz * dy * dx;
        o.onProgress?.({ done, total, voxels });
      }
    }
  }
  await writeOmeMetadata(store, {
    name: o.name ?? basename(source.description).replace(/\.[^.]*$/, ''),
    channels: C,
    ...(source.voxelSize === undefined ? {} : { voxelSize: source.voxelSize }),
  });
  return { shape: source.shape, channels: C, dtype: source.dtype, chunk, chunks: total, bandBytes };
}
