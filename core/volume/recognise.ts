// What an input that is not Zarr is, for a message that names it: an HDF5 file, a TIFF
// file or stack, an N5 container missing its attributes. Read from the bytes at the
// input (a file's signature) or from the names of the files in it; only a few bytes and
// at most LISTED keys are read, so a huge directory costs no more than a small one.

import {
  type AbsolutePath,
  describeStore,
  InvalidStoreKeyError,
  type Store,
} from '../store/index.ts';
import { isObject, readJson } from './json.ts';
import { naturalCompare } from './natural-order.ts';

export interface Recognised {
  /** What is there, in words that fit "it is ...". */
  readonly what: string;
  /** What to do, when converting is not the answer. */
  readonly advice?: string;
}

/** Keys looked at when telling a directory's contents. */
const LISTED = 2000;

const CONVERT_HDF5 =
  'Convert the dataset to OME-Zarr first: tessera convert <file.h5> <output.zarr> --dataset /path/in/file, then set input.url to the .zarr.';
const CONVERT_TIFF =
  'Convert it to OME-Zarr first: tessera convert <input> <output.zarr> (a multipage TIFF or a directory of .tif files, one z-slice each, in name order), then set input.url to the .zarr.';

const SIGNATURES: readonly { bytes: readonly number[]; what: string; advice?: string }[] = [
  {
    bytes: [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a],
    what: 'an HDF5 file (signature \\x89HDF)',
    advice: CONVERT_HDF5,
  },
  { bytes: [0x49, 0x49, 0x2a, 0x00], what: 'a TIFF file (signature II*)', advice: CONVERT_TIFF },
  { bytes: [0x4d, 0x4d, 0x00, 0x2a], what: 'a TIFF file (signature MM*)', advice: CONVERT_TIFF },
  { bytes: [0x49, 0x49, 0x2b, 0x00], what: 'a BigTIFF file (signature II+)', advice: CONVERT_TIFF },
  { bytes: [0x4d, 0x4d, 0x00, 0x2b], what: 'a BigTIFF file (signature MM+)', advice: CONVERT_TIFF },
  {
    bytes: [0x50, 0x4b, 0x03, 0x04],
    what: 'a ZIP archive (signature PK)',
    advice:
      'If it holds a zipped Zarr store, unzip it and set input.url to the unzipped directory.',
  },
  {
    bytes: [0x1f, 0x8b],
    what: 'a gzip-compressed file',
    advice: 'Uncompress it; if it holds a Zarr store, N5 container or TIFF, go from there.',
  },
];

/**
 * What `path` of `store` (or the store itself) is, when it is recognisably something
 * Tessera does not read; undefined when nothing is there or nothing tells (then the
 * caller's "no Zarr array here" stands).
 */
export async function recogniseInput(store: Store, path: string): Promise<Recognised | undefined> {
  // A file given as the URL (with input.array naming a dataset inside it) or as the path.
  for (const key of path === '' ? ['/'] : [`/${path}`, '/']) {
    const head = await firstBytes(store, key as AbsolutePath);
    if (head !== undefined && head.length > 0) return recogniseFile(head);
  }
  if (await isZarrHierarchy(store)) return undefined;
  const n5 = await recogniseN5(store, path);
  if (n5 !== undefined) return n5;
  return recogniseDirectory(store, path);
}

async function firstBytes(store: Store, key: AbsolutePath): Promise<Uint8Array | undefined> {
  try {
    return store.getRange
      ? await store.getRange(key, { offset: 0, length: 16 })
      : (await store.get(key))?.subarray(0, 16);
  } catch (error) {
    // A prefixed store (S3) refuses its own root '/' as a key: no file is there to tell.
    if (error instanceof InvalidStoreKeyError) return undefined;
    throw error;
  }
}

function recogniseFile(head: Uint8Array): Recognised {
  for (const s of SIGNATURES)
    if (s.bytes.every((b, i) => head[i] === b))
      return s.advice === undefined ? { what: s.what } : { what: s.what, advice: s.advice };
  if (head[0] === 0x7b)
    return {
      what: 'a single JSON file',
      advice:
        'Set input.url to the directory (or prefix) that holds the Zarr metadata, not to the metadata file itself.',
    };
  const hex = [...head.subarray(0, 8)].map((b) => b.toString(16).padStart(2, '0')).join(' ');
  return {
    what: `a file of no format Tessera knows (it starts with bytes ${hex})`,
    advice:
      'Point input.url at a Zarr store, N5 container or precomputed volume; for HDF5 or TIFF data, use tessera convert <input> <output.zarr> first.',
  };
}

async function isZarrHierarchy(store: Store): Promise<boolean> {
  for (const key of ['/zarr.json', '/.zgroup', '/.zarray'] as const)
    if ((await firstBytes(store, key)) !== undefined) return true;
  return false;
}

async function recogniseN5(store: Store, path: string): Promise<Recognised | undefined> {
  const root = await readJson(store, '/attributes.json').catch((error: unknown) => {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  });
  if (isObject(root) && typeof root.n5 === 'string')
    return {
      what: `an N5 container (version ${root.n5}) in which ${path === '' ? 'the root' : `"${path}"`} is not a dataset (no attributes.json with dimensions, blockSize and dataType there)`,
      advice:
        'Set input.array to the path of the dataset inside the container (the directory whose attributes.json has "dimensions"), e.g. "volumes/raw".',
    };
  const location = describeStore(store);
  const named = [location, path].some((p) => /\.n5\/*$/i.test(p));
  if (named)
    return {
      what: `a directory named like an N5 container (.n5) but without an N5 attributes.json at ${path === '' ? 'its root' : `"${path}"`}`,
      advice:
        'An N5 container has attributes.json with {"n5": "<version>"} at its root and one with dimensions, blockSize, dataType and compression beside each dataset: check that the container was copied whole, and that input.array names a dataset.',
    };
  return undefined;
}

async function recogniseDirectory(store: Store, path: string): Promise<Recognised | undefined> {
  if (store.list === undefined) return undefined;
  const prefix = path === '' ? '/' : `/${path}/`;
  const names: string[] = [];
  let seen = 0;
  for await (const key of store.list(prefix)) {
    if (++seen > LISTED) break;
    // Metadata further down: a hierarchy Tessera reads, with the array path wrong.
    if (METADATA.test(key)) return undefined;
    const rest = key.slice(prefix.length);
    if (!rest.includes('/')) names.push(rest);
  }
  if (seen === 0) return undefined;
  const tiffs = names.filter((n) => /\.tiff?$/i.test(n));
  if (tiffs.length > 0)
    return {
      what: `a directory of ${tiffs.length}${seen > LISTED ? '+' : ''} TIFF file(s) (a TIFF stack: ${sample(tiffs)})`,
      advice: CONVERT_TIFF,
    };
  const hdf5 = names.filter((n) => /\.(h5|hdf5|hdf|he5)$/i.test(n));
  if (hdf5.length > 0)
    return {
      what: `a directory holding HDF5 file(s) (${sample(hdf5)})`,
      advice: `${CONVERT_HDF5} Give one file as the input.`,
    };
  return {
    what: `a directory with no Zarr, N5 or precomputed metadata in it (${names.length > 0 ? `files such as ${sample(names)}` : 'only subdirectories'})`,
    advice:
      'Check that input.url points at the Zarr store (the directory holding zarr.json or .zarray), an N5 container, or a precomputed volume (its info file), and that input.array names an array inside it.',
  };
}

const METADATA = /\/(zarr\.json|\.zarray|\.zgroup|attributes\.json|info)$/;

const sample = (names: string[]): string =>
  [...names].sort(naturalCompare).slice(0, 3).join(', ') + (names.length > 3 ? ', ...' : '');
