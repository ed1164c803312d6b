// The `info` file of a Neuroglancer precomputed volume, parsed strictly into what the
// reader and writer use. Axis order in the file is [x, y, z]; Tessera's is (z, y, x):
// every triple is reversed here, once, and nowhere else.
//
//   info                         {"data_type", "num_channels", "scales": [...]}
//   <scale.key>/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>     unsharded chunk (offsets include voxel_offset)
//   <scale.key>/<shard hex>.shard                 sharded (scale.sharding)

import type { Vec3 } from '../../geometry/index.ts';
import { isObject, type JsonObject } from '../json.ts';
import { PrecomputedInfoError, PrecomputedScaleError } from './errors.ts';

export const PRECOMPUTED_DTYPES = [
  'uint8',
  'int8',
  'uint16',
  'int16',
  'uint32',
  'int32',
  'uint64',
  'float32',
] as const;
export type PrecomputedDtype = (typeof PRECOMPUTED_DTYPES)[number];

export const ENCODINGS = ['raw', 'jpeg', 'compressed_segmentation'] as const;
export type Encoding = (typeof ENCODINGS)[number];

export interface ShardingSpec {
  readonly preshiftBits: number;
  readonly hash: 'identity' | 'murmurhash3_x86_128';
  readonly minishardBits: number;
  readonly shardBits: number;
  readonly minishardIndexEncoding: 'raw' | 'gzip';
  readonly dataEncoding: 'raw' | 'gzip';
}

export interface Scale {
  readonly index: number;
  readonly key: string;
  /** (z, y, x), like everything below. */
  readonly size: Vec3;
  readonly chunkSize: Vec3;
  readonly voxelOffset: Vec3;
  /** Nanometres per voxel. */
  readonly resolution: Vec3;
  readonly encoding: Encoding;
  /** compressed_segmentation_block_size, (z, y, x). */
  readonly blockSize?: Vec3;
  readonly sharding?: ShardingSpec;
}

export interface PrecomputedInfo {
  readonly dataType: PrecomputedDtype;
  readonly numChannels: number;
  readonly scales: readonly Scale[];
}

/** True when `doc` looks like a precomputed volume's info (by @type, or type + scales). */
export function looksLikeInfo(doc: unknown): boolean {
  if (!isObject(doc)) return false;
  if (doc['@type'] === 'neuroglancer_multiscale_volume') return true;
  return typeof doc.type === 'string' && Array.isArray(doc.scales);
}

export function parseInfo(doc: unknown, location: string): PrecomputedInfo {
  const fail = (field: string, detail: string): never => {
    throw new PrecomputedInfoError(location, field, detail);
  };
  if (!isObject(doc)) return fail('', 'is not a JSON object');
  if (doc['@type'] !== undefined && doc['@type'] !== 'neuroglancer_multiscale_volume')
    fail('@type', `is ${JSON.stringify(doc['@type'])}, not "neuroglancer_multiscale_volume"`);
  const dataType = String(doc.data_type ?? '').toLowerCase();
  if (!(PRECOMPUTED_DTYPES as readonly string[]).includes(dataType))
    fail(
      'data_type',
      `is ${JSON.stringify(doc.data_type)}; Tessera reads ${PRECOMPUTED_DTYPES.join(', ')}`,
    );
  const numChannels = doc.num_channels;
  if (!isCount(numChannels)) fail('num_channels', 'must be a positive integer');
  if (!Array.isArray(doc.scales) || doc.scales.length === 0)
    fail('scales', 'must be a non-empty array');
  const scales = (doc.scales as unknown[]).map((s, i) =>
    parseScale(s, i, location, dataType as PrecomputedDtype, numChannels as number),
  );
  return { dataType: dataType as PrecomputedDtype, numChannels: numChannels as number, scales };
}

function parseScale(
  raw: unknown,
  index: number,
  location: string,
  dataType: PrecomputedDtype,
  channels: number,
): Scale {
  const at = `scales[${index}]`;
  const fail = (field: string, detail: string): never => {
    throw new PrecomputedInfoError(location, `${at}.${field}`, detail);
  };
  if (!isObject(raw)) return fail('', 'is not an object');
  const key = raw.key;
  if (typeof key !== 'string' || key === '' || key.split('/').some((p) => p === '..' || p === '.'))
    fail('key', 'must be a non-empty path without "." or ".." segments');
  const triple = (field: string, value: unknown, ok: (v: number) => boolean): Vec3 => {
    if (!Array.isArray(value) || value.length !== 3 || !value.every((v) => ok(v as number)))
      fail(field, `must be three numbers [x, y, z], got ${JSON.stringify(value)}`);
    const [x, y, z] = value as number[];
    return [z!, y!, x!];
  };
  const size = triple('size', raw.size, isCount);
  const chunkSizes = raw.chunk_sizes;
  if (!Array.isArray(chunkSizes) || chunkSizes.length === 0)
    fail('chunk_sizes', 'must list at least one chunk size');
  // Any listed chunk size is a valid layout of the files; the first is the one stored.
  const chunkSize = triple('chunk_sizes[0]', (chunkSizes as unknown[])[0], isCount);
  const voxelOffset =
    raw.voxel_offset === undefined
      ? ([0, 0, 0] as Vec3)
      : triple('voxel_offset', raw.voxel_offset, Number.isInteger);
  const resolution = triple(
    'resolution',
    raw.resolution,
    (v) => typeof v === 'number' && Number.isFinite(v) && v > 0,
  );
  const encoding = String(raw.encoding ?? '').toLowerCase();
  if (!(ENCODINGS as readonly string[]).includes(encoding))
    fail(
      'encoding',
      `is ${JSON.stringify(raw.encoding)}; Tessera reads ${ENCODINGS.join(', ')} (raw files may be gzip-compressed)`,
    );
  let blockSize: Vec3 | undefined;
  if (encoding === 'compressed_segmentation') {
    if (dataType !== 'uint32' && dataType !== 'uint64')
      fail('encoding', `compressed_segmentation needs data_type uint32 or uint64, not ${dataType}`);
    blockSize = triple(
      'compressed_segmentation_block_size',
      raw.compressed_segmentation_block_size,
      isCount,
    );
  }
  if (encoding === 'jpeg' && (dataType !== 'uint8' || (channels !== 1 && channels !== 3)))
    fail(
      'encoding',
      `jpeg needs data_type uint8 and 1 or 3 channels, not ${dataType} × ${channels}`,
    );
  const sharding =
    raw.sharding === undefined || raw.sharding === null
      ? undefined
      : parseSharding(raw.sharding, (f, d) => fail(`sharding.${f}`, d));
  return {
    index,
    key: key as string,
    size,
    chunkSize,
    voxelOffset,
    resolution,
    encoding: encoding as Encoding,
    ...(blockSize ? { blockSize } : {}),
    ...(sharding ? { sharding } : {}),
  };
}

function parseSharding(raw: unknown, fail: (field: string, detail: string) => never): ShardingSpec {
  if (!isObject(raw)) return fail('', 'is not an object');
  if (raw['@type'] !== 'neuroglancer_uint64_sharded_v1')
    fail(
      '@type',
      `is ${JSON.stringify(raw['@type'])}; Tessera reads neuroglancer_uint64_sharded_v1`,
    );
  const bits = (field: string): number => {
    const v = raw[field] ?? 0;
    if (!(Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 64))
      fail(field, `must be an integer in 0..64, got ${JSON.stringify(raw[field])}`);
    return v as number;
  };
  const enc = (field: string): 'raw' | 'gzip' => {
    const v = raw[field] ?? 'raw';
    if (v !== 'raw' && v !== 'gzip')
      fail(field, `is ${JSON.stringify(v)}; must be "raw" or "gzip"`);
    return v as 'raw' | 'gzip';
  };
  const hash = raw.hash;
  if (hash !== 'identity' && hash !== 'murmurhash3_x86_128')
    fail('hash', `is ${JSON.stringify(hash)}; must be "identity" or "murmurhash3_x86_128"`);
  const spec: ShardingSpec = {
    preshiftBits: bits('preshift_bits'),
    hash: hash as ShardingSpec['hash'],
    minishardBits: bits('minishard_bits'),
    shardBits: bits('shard_bits'),
    minishardIndexEncoding: enc('minishard_index_encoding'),
    dataEncoding: enc('data_encoding'),
  };
  if (spec.minishardBits + spec.shardBits > 64)
    fail('minishard_bits', 'plus shard_bits must be at most 64');
  if (spec.minishardBits > 24)
    fail('minishard_bits', 'is over 24: the shard index alone would be over 256 MiB');
  return spec;
}

/** The scale `mip` names: an index into `scales`, or a scale's key. Default 0. */
export function chooseScale(
  info: PrecomputedInfo,
  mip: number | string | undefined,
  location: string,
): Scale {
  const wanted = mip ?? 0;
  const found =
    typeof wanted === 'number'
      ? info.scales[wanted]
      : (info.scales.find((s) => s.key === wanted) ??
        (/^\d+$/.test(wanted) ? info.scales[Number(wanted)] : undefined));
  if (found === undefined)
    throw new PrecomputedScaleError(
      location,
      wanted,
      info.scales.map((s) => s.key),
    );
  return found;
}

/** The info document of a volume Tessera writes (one scale per pyramid level). */
export function infoDocument(o: {
  dataType: 'float32' | 'uint8';
  numChannels: number;
  scales: readonly {
    key: string;
    size: Vec3;
    chunkSize: Vec3;
    resolution: Vec3;
    encoding: 'raw';
  }[];
  extra?: JsonObject;
}): JsonObject {
  const xyz = (v: Vec3): number[] => [v[2], v[1], v[0]];
  return {
    '@type': 'neuroglancer_multiscale_volume',
    type: 'image',
    data_type: o.dataType,
    num_channels: o.numChannels,
    scales: o.scales.map((s) => ({
      key: s.key,
      size: xyz(s.size),
      chunk_sizes: [xyz(s.chunkSize)],
      resolution: xyz(s.resolution),
      voxel_offset: [0, 0, 0],
      encoding: s.encoding,
    })),
    ...o.extra,
  };
}

const isCount = (v: unknown): boolean => Number.isInteger(v) && (v as number) > 0;
