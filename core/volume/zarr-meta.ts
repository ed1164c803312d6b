// Checking an input array's Zarr metadata (v3 zarr.json, v2 .zarray) before zarrita sees it.
//
// zarrita trusts the document: a missing data_type or chunk_key_encoding is a TypeError
// at open, an unknown codec surfaces only at the first chunk read (as an I/O error, so it
// would be retried), a zero chunk_shape divides by zero, and a chunk_shape of 10^9 voxels
// is allocated on the first read of a missing chunk. Everything Tessera relies on is
// checked here instead, at open, and refused with a VolumeFormatError naming the array,
// the metadata key and what to do.

import * as zarr from 'zarrita';
import type { AbsolutePath, Store } from '../store/index.ts';
import { VOLUME_DTYPES, type VolumeDtype } from './dtype.ts';
import { VolumeFormatError, type VolumeFormatField } from './errors.ts';
import { isObject, type JsonObject, readJson } from './json.ts';

/**
 * The largest decoded chunk Tessera reads. zarrita decodes (or, for a missing chunk,
 * allocates) whole chunks; beyond this a read is an out-of-memory crash, not a volume.
 */
export const MAX_CHUNK_BYTES = 2 ** 31;

/** The array→bytes codec that zarrita implements outside its codec registry. */
const SHARDING = 'sharding_indexed';

const BYTES_PER: Record<VolumeDtype, number> = {
  uint8: 1,
  int8: 1,
  uint16: 2,
  int16: 2,
  uint32: 4,
  int32: 4,
  float32: 4,
  float64: 8,
};

const V2_DTYPES: Record<string, VolumeDtype> = {
  u1: 'uint8',
  i1: 'int8',
  u2: 'uint16',
  i2: 'int16',
  u4: 'uint32',
  i4: 'int32',
  f4: 'float32',
  f8: 'float64',
};

/**
 * Reads and checks the metadata of the node at `path`, when it is an array (groups and
 * missing nodes are left to zarrita, which tells them apart). Throws VolumeFormatError.
 */
export async function checkArrayMetadata(
  store: Store,
  location: string,
  path: string,
): Promise<void> {
  const key = (name: string): AbsolutePath => (path === '' ? `/${name}` : `/${path}/${name}`);
  const fail = (field: VolumeFormatField, detail: string, cause?: unknown): never => {
    throw new VolumeFormatError(
      location,
      path,
      field,
      detail,
      cause === undefined ? undefined : { cause },
    );
  };
  const read = async (name: string): Promise<unknown> => {
    try {
      return await readJson(store, key(name));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return fail('metadata', `${name} is not valid JSON (${error.message})`, error);
    }
  };
  const v3 = await read('zarr.json');
  if (v3 !== undefined) {
    if (!isObject(v3)) return fail('metadata', 'zarr.json is not a JSON object');
    if (v3.node_type === 'array') checkV3(v3, fail);
    return;
  }
  const v2 = await read('.zarray');
  if (v2 !== undefined) {
    if (!isObject(v2)) return fail('metadata', '.zarray is not a JSON object');
    checkV2(v2, fail);
  }
}

type Fail = (field: VolumeFormatField, detail: string) => never;

const show = (v: unknown): string => (v === undefined ? 'missing' : JSON.stringify(v));

function checkV3(doc: JsonObject, fail: Fail): void {
  if (doc.zarr_format !== 3)
    fail(
      'metadata',
      `zarr.json has zarr_format ${show(doc.zarr_format)}; expected 3. Fix the array's metadata.`,
    );
  const shape = checkShape(doc.shape, 'zarr.json "shape"', fail);
  const dtype = checkDtype(doc.data_type, 'zarr.json "data_type"', fail);

  const grid = doc.chunk_grid;
  if (!isObject(grid) || grid.name !== 'regular' || !isObject(grid.configuration))
    fail(
      'chunk_grid',
      `zarr.json "chunk_grid" is ${show(grid)}; Tessera reads regular chunk grids ` +
        '({"name": "regular", "configuration": {"chunk_shape": [...]}}). Rewrite the array with a regular grid.',
    );
  const chunks = checkChunkShape(
    (grid as JsonObject & { configuration: JsonObject }).configuration.chunk_shape,
    shape.length,
    'zarr.json "chunk_grid.configuration.chunk_shape"',
    fail,
  );

  const encoding = doc.chunk_key_encoding;
  const config = isObject(encoding) ? encoding.configuration : undefined;
  if (
    !isObject(encoding) ||
    (encoding.name !== 'default' && encoding.name !== 'v2') ||
    (config !== undefined &&
      (!isObject(config) ||
        (config.separator !== undefined && config.separator !== '/' && config.separator !== '.')))
  )
    fail(
      'chunk_key_encoding',
      `zarr.json "chunk_key_encoding" is ${show(encoding)}; expected {"name": "default" or "v2", ` +
        '"configuration": {"separator": "/" or "."}}. Fix the metadata (zarr-python and tensorstore write "default").',
    );

  checkFill(doc.fill_value, dtype, 'zarr.json "fill_value"', false, fail);
  const decoded = checkCodecs(doc.codecs, chunks, 'zarr.json "codecs"', fail) ?? {
    shape: chunks,
    where: 'zarr.json "chunk_grid.configuration.chunk_shape"',
  };
  checkChunkBytes(decoded.shape, dtype, decoded.where, fail);

  const transformers = doc.storage_transformers;
  if (transformers !== undefined && !(Array.isArray(transformers) && transformers.length === 0))
    fail(
      'metadata',
      `zarr.json "storage_transformers" is ${show(transformers)}; Tessera (zarrita) applies none. ` +
        'Rewrite the array without storage transformers.',
    );
}

function checkV2(doc: JsonObject, fail: Fail): void {
  if (doc.zarr_format !== 2)
    fail(
      'metadata',
      `.zarray has zarr_format ${show(doc.zarr_format)}; expected 2. Fix the array's metadata.`,
    );
  const shape = checkShape(doc.shape, '.zarray "shape"', fail);
  const raw = doc.dtype;
  const match = typeof raw === 'string' ? /^([<>|])(.+)$/.exec(raw) : null;
  const dtype = checkDtype(match ? V2_DTYPES[match[2]!] : undefined, '.zarray "dtype"', fail, raw);
  const chunks = checkChunkShape(doc.chunks, shape.length, '.zarray "chunks"', fail);
  checkChunkBytes(chunks, dtype, '.zarray "chunks"', fail);
  if (doc.order !== 'C' && doc.order !== 'F')
    fail(
      'metadata',
      `.zarray "order" is ${show(doc.order)}; expected "C" or "F". Fix the array's metadata.`,
    );
  const separator = doc.dimension_separator;
  if (separator !== undefined && separator !== '/' && separator !== '.')
    fail(
      'chunk_key_encoding',
      `.zarray "dimension_separator" is ${show(separator)}; expected "." or "/". Fix the array's metadata.`,
    );
  checkFill(doc.fill_value, dtype, '.zarray "fill_value"', true, fail);
  const numcodec = (c: unknown, where: string): void => {
    const id = isObject(c) ? c.id : undefined;
    if (typeof id !== 'string')
      fail(
        'codecs',
        `${where} is ${show(c)}; expected an object with a string "id". Fix the array's metadata.`,
      );
    // zarrita rewrites fixedscaleoffset itself; every other id must be a registered numcodec.
    const known =
      id === 'fixedscaleoffset' ||
      id === 'numcodecs.fixedscaleoffset' ||
      zarr.registry.has(`numcodecs.${id as string}`);
    if (!known) fail('codecs', unknownCodec(`${where} "${id as string}"`, numcodecNames()));
  };
  if (doc.compressor !== null && doc.compressor !== undefined)
    numcodec(doc.compressor, '.zarray "compressor"');
  if (doc.filters !== null && doc.filters !== undefined) {
    if (!Array.isArray(doc.filters))
      fail(
        'codecs',
        `.zarray "filters" is ${show(doc.filters)}; expected null or a list. Fix the array's metadata.`,
      );
    (doc.filters as unknown[]).forEach((f, i) => {
      numcodec(f, `.zarray "filters[${i}]"`);
    });
  }
}

function checkShape(shape: unknown, where: string, fail: Fail): number[] {
  if (
    !Array.isArray(shape) ||
    !shape.every((s) => typeof s === 'number' && Number.isSafeInteger(s) && s >= 0)
  )
    fail(
      'shape',
      `${where} is ${show(shape)}; it must be a list of non-negative integers. Fix the array's metadata.`,
    );
  return shape as number[];
}

function checkDtype(
  dtype: unknown,
  where: string,
  fail: Fail,
  shown: unknown = dtype,
): VolumeDtype {
  if (typeof dtype === 'string' && (VOLUME_DTYPES as readonly string[]).includes(dtype))
    return dtype as VolumeDtype;
  return fail(
    'data_type',
    shown === undefined
      ? `${where} is missing; Zarr arrays must name their data type. Fix the array's metadata.`
      : `its data type (${where}) is ${show(shown)}; Tessera reads ${VOLUME_DTYPES.join(', ')}. ` +
          'Convert the array to one of them.',
  );
}

function checkChunkShape(
  chunks: unknown,
  rank: number,
  where: string,
  fail: Fail,
  field: VolumeFormatField = 'chunk_grid',
): number[] {
  if (
    !Array.isArray(chunks) ||
    chunks.length !== rank ||
    !chunks.every((c) => typeof c === 'number' && Number.isSafeInteger(c) && c > 0)
  )
    fail(
      field,
      `${where} is ${show(chunks)}; it must list ${rank} positive integers, one per axis of the shape. ` +
        "Fix the array's metadata.",
    );
  return chunks as number[];
}

function checkChunkBytes(
  chunks: readonly number[],
  dtype: VolumeDtype,
  where: string,
  fail: Fail,
): void {
  const bytes = chunks.reduce((a, b) => a * b, 1) * BYTES_PER[dtype];
  if (bytes > MAX_CHUNK_BYTES)
    fail(
      'chunk_grid',
      `its chunks (${where}) of [${chunks.join(', ')}] ${dtype} are ${bytes} bytes each, over the ${MAX_CHUNK_BYTES}-byte ` +
        'limit of what Tessera reads at once. Rechunk the input (e.g. to 256³ chunks).',
    );
}

function checkFill(
  fill: unknown,
  dtype: VolumeDtype,
  where: string,
  nullable: boolean,
  fail: Fail,
): void {
  const float = dtype === 'float32' || dtype === 'float64';
  // zarrita writes null by default and reads it as 0; Zarr v2 allows it outright.
  if (fill === null) return;
  if (float && (fill === 'NaN' || fill === 'Infinity' || fill === '-Infinity')) return;
  if (typeof fill === 'number' && float) return;
  if (typeof fill === 'number' && Number.isInteger(fill)) {
    const bits = BYTES_PER[dtype] * 8;
    const signed = dtype.startsWith('int');
    const lo = signed ? -(2 ** (bits - 1)) : 0;
    const hi = signed ? 2 ** (bits - 1) - 1 : 2 ** bits - 1;
    if (fill >= lo && fill <= hi) return;
  }
  fail(
    'fill_value',
    `${where} is ${show(fill)}, which is not a ${dtype} value${
      float ? ' (numbers, "NaN", "Infinity" or "-Infinity"; hex spellings are not read)' : ''
    }${nullable ? ' or null' : ''}. Fix the array's metadata.`,
  );
}

/**
 * Checks a v3 codec list (recursively through sharding) and returns, for a sharded array,
 * the shape (and the key) of the inner chunks: those are what is decoded whole.
 */
function checkCodecs(
  codecs: unknown,
  chunks: number[],
  where: string,
  fail: Fail,
  outer = true,
): { shape: number[]; where: string } | undefined {
  if (!Array.isArray(codecs))
    fail(
      'codecs',
      `${where} is ${show(codecs)}; expected a list of codecs. Fix the array's metadata.`,
    );
  let decoded: { shape: number[]; where: string } | undefined;
  (codecs as unknown[]).forEach((c, i) => {
    const at = `${where}[${i}]`;
    if (
      !isObject(c) ||
      typeof c.name !== 'string' ||
      (c.configuration !== undefined && !isObject(c.configuration))
    )
      fail(
        'codecs',
        `${at} is ${show(c)}; expected {"name": string, "configuration": object}. Fix the array's metadata.`,
      );
    const { name, configuration } = c as { name: string; configuration?: JsonObject };
    if (name !== SHARDING) {
      if (!zarr.registry.has(name)) fail('codecs', unknownCodec(`${at} "${name}"`, v3CodecNames()));
      return;
    }
    // zarrita shards only at the top of the codec list.
    if (!outer)
      fail(
        'codecs',
        `${at} nests "${SHARDING}" inside a shard; rewrite the array with one level of sharding.`,
      );
    const config = configuration ?? {};
    const inner = checkChunkShape(
      config.chunk_shape,
      chunks.length,
      `${at}.configuration.chunk_shape`,
      fail,
      'codecs',
    );
    if (inner.some((n, a) => chunks[a]! % n !== 0))
      fail(
        'codecs',
        `${at}.configuration.chunk_shape [${inner.join(', ')}] does not divide the shard shape ` +
          `[${chunks.join(', ')}]; fix the array's metadata.`,
      );
    const location = config.index_location;
    if (location !== undefined && location !== 'start' && location !== 'end')
      fail(
        'codecs',
        `${at}.configuration.index_location is ${show(location)}; expected "start" or "end". Fix the array's metadata.`,
      );
    checkCodecs(config.codecs, inner, `${at}.configuration.codecs`, fail, false);
    decoded = { shape: inner, where: `${at}.configuration.chunk_shape` };
    if (config.index_codecs !== undefined)
      checkCodecs(
        config.index_codecs,
        [...inner, 2],
        `${at}.configuration.index_codecs`,
        fail,
        false,
      );
  });
  return decoded;
}

const v3CodecNames = (): string[] =>
  [...zarr.registry.keys(), SHARDING].filter((n) => !n.startsWith('numcodecs.')).sort();
const numcodecNames = (): string[] =>
  [...zarr.registry.keys()]
    .filter((n) => n.startsWith('numcodecs.'))
    .map((n) => n.slice('numcodecs.'.length))
    .sort();

const unknownCodec = (what: string, known: string[]): string =>
  `${what} is not a codec Tessera can decode (it knows ${known.join(', ')}). ` +
  'Rewrite the array with one of them (zstd or blosc compress well).';
