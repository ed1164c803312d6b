// The output array's layout: the metadata Tessera writes for it, and the parse of an
// existing array's metadata back into a layout, naming the first field that differs
// or that Tessera cannot write (a resumed run must never write into a foreign array).
//
// Two layouts. Unsharded: one storage chunk per output block. Sharded (`shardShape`):
// the array's chunk grid is the shard grid and its one codec is `sharding_indexed`,
// whose inner chunks are the output blocks, encoded with the same codecs as unsharded
// blocks, and whose index is bytes + crc32c at the end of the shard (shard.ts):
//
//   unsharded  chunk_shape [C, bz, by, bx]  codecs [bytes, zstd]
//   sharded    chunk_shape [C, sz, sy, sx]  codecs [sharding_indexed {
//                chunk_shape [C, bz, by, bx], codecs [bytes, zstd],
//                index_codecs [bytes, crc32c], index_location "end" }]

import type { Vec3 } from '../geometry/index.ts';
import { type CodecSpec, codecsProblem, OUTPUT_CODECS } from './block-codec.ts';
import { OutputMismatchError } from './errors.ts';
import { isNumberArray, isObject, type JsonObject } from './json.ts';
import { SHARD_INDEX_CODECS } from './shard.ts';

export type OutputDtype = 'float32' | 'uint8';
export type OutputData = Float32Array | Uint8Array;

export interface OutputVolumeOptions {
  /** Spatial shape (z, y, x) of the whole volume. */
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  /** Spatial shape of one block = one storage chunk (an inner chunk when sharded). */
  readonly blockShape: Vec3;
  /**
   * Spatial shape of one shard, a multiple of blockShape per axis: the blocks of a shard
   * are stored as one object (Zarr v3 sharding_indexed). Absent: one object per block.
   */
  readonly shardShape?: Vec3;
  /** Value of voxels never written, and of the padding of edge blocks. Default 0. */
  readonly fillValue?: number;
  /** Merged into the root group's attributes (existing keys not named here are kept). */
  readonly attributes?: Record<string, unknown>;
  /**
   * The job writing the output: recorded in the root group's and the array's attributes
   * (output-owner.ts), and an output recorded for another job is refused (OutputOwnedError).
   */
  readonly owner?: string;
}

export interface Layout {
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  readonly blockShape: Vec3;
  /** Spatial shape of a shard; undefined for an unsharded array. */
  readonly shardShape: Vec3 | undefined;
  readonly fillValue: number;
  /** The codecs of one block (the inner chunks' codecs when sharded). */
  readonly codecs: readonly CodecSpec[];
  /** The key of a storage object (a block, or a shard when sharded) by chunk-grid coords. */
  readonly chunkKey: (coords: readonly number[]) => string;
}

export type Parsed =
  | { readonly ok: true; readonly layout: Layout }
  | {
      readonly ok: false;
      readonly field: string;
      readonly actual: unknown;
      readonly detail: string;
    };

export function checkOptions(o: OutputVolumeOptions): void {
  const positive = (v: number) => Number.isInteger(v) && v > 0;
  if (!o.shape.every(positive) || !o.blockShape.every(positive) || !positive(o.channels))
    throw new RangeError(
      `output shape [${o.shape.join(', ')}], blockShape [${o.blockShape.join(', ')}] and channels ${o.channels} must be positive integers`,
    );
  if (o.dtype !== 'float32' && o.dtype !== 'uint8')
    throw new RangeError(`output dtype must be float32 or uint8, not ${String(o.dtype)}`);
  if (o.shardShape !== undefined) {
    const multiple = o.shardShape.every((v, a) => positive(v) && v % o.blockShape[a]! === 0);
    if (!multiple)
      throw new RangeError(
        `output shardShape [${o.shardShape.join(', ')}] must be a positive multiple of blockShape [${o.blockShape.join(', ')}] on every axis`,
      );
  }
  const fill = o.fillValue ?? 0;
  if (o.dtype === 'uint8' && !(Number.isInteger(fill) && fill >= 0 && fill <= 255))
    throw new RangeError(`a uint8 output needs an integer fillValue in 0..255, not ${fill}`);
}

/** What the default shard shape is derived from: a plan, or a chunk pitch and block shape. */
export interface ShardShapeSource {
  /** Patches advance by `stride`; a chunk holds `patchesPerChunk` of them per axis. */
  readonly stride: Vec3;
  readonly patchesPerChunk: Vec3;
  readonly blockShape: Vec3;
  /** When given, a shard never reaches further than the block grid covering the volume. */
  readonly volumeShape?: Vec3;
}

/**
 * The shard shape aligned to the chunk pitch (patchesPerChunk × stride: where one chunk's
 * footprint starts after the previous one's), per axis: the pitch itself when it is a
 * multiple of the block (then every chunk's owned interior lies in one shard, and a
 * region starting on a shard boundary writes one shard per chunk), else the pitch rounded
 * to the nearest whole number of blocks (at least one), because a shard must hold whole
 * blocks. Capped at the blocks covering the volume. A plan with a block-aligned pitch is
 * the one that gets one PUT per chunk.
 */
export function defaultShardShape(p: ShardShapeSource): Vec3 {
  const axis = (a: 0 | 1 | 2): number => {
    const block = p.blockShape[a];
    const pitch = p.patchesPerChunk[a] * p.stride[a];
    const blocks = Math.max(1, Math.round(pitch / block));
    const cover =
      p.volumeShape === undefined ? blocks : Math.max(1, Math.ceil(p.volumeShape[a] / block));
    return Math.min(blocks, cover) * block;
  };
  return [axis(0), axis(1), axis(2)];
}

export function arrayMetadata(o: OutputVolumeOptions): JsonObject {
  const block = [o.channels, ...o.blockShape];
  const sharded = o.shardShape !== undefined;
  return {
    zarr_format: 3,
    node_type: 'array',
    shape: [o.channels, ...o.shape],
    data_type: o.dtype,
    chunk_grid: {
      name: 'regular',
      configuration: { chunk_shape: sharded ? [o.channels, ...o.shardShape] : block },
    },
    chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
    fill_value: fillToJson(o.fillValue ?? 0),
    codecs: sharded
      ? [
          {
            name: SHARDING_CODEC,
            configuration: {
              chunk_shape: block,
              codecs: OUTPUT_CODECS,
              index_codecs: SHARD_INDEX_CODECS,
              index_location: 'end',
            },
          },
        ]
      : OUTPUT_CODECS,
    attributes: {},
    dimension_names: ['c', 'z', 'y', 'x'],
  };
}

const SHARDING_CODEC = 'sharding_indexed';

/** Reads a layout from array metadata, or names the first field Tessera cannot use. */
export function parseArrayMetadata(doc: unknown): Parsed {
  const bad = (field: string, actual: unknown, detail: string): Parsed => ({
    ok: false,
    field,
    actual,
    detail,
  });
  if (!isObject(doc) || doc.zarr_format !== 3 || doc.node_type !== 'array')
    return bad('node type', isObject(doc) ? doc.node_type : doc, 'it is not a Zarr v3 array');
  const shape = doc.shape;
  if (!isNumberArray(shape) || shape.length !== 4)
    return bad('shape', shape, 'its shape is not [c, z, y, x]');
  const dtype = doc.data_type;
  if (dtype !== 'float32' && dtype !== 'uint8')
    return bad('data type', dtype, 'its data type is not float32 or uint8');
  const grid = doc.chunk_grid;
  const chunks =
    isObject(grid) && grid.name === 'regular' && isObject(grid.configuration)
      ? grid.configuration.chunk_shape
      : undefined;
  if (!isNumberArray(chunks) || chunks.length !== 4 || chunks[0] !== shape[0])
    return bad(
      'block shape',
      chunks,
      'its chunks do not hold all channels of a [bz, by, bx] block',
    );
  const fillValue = fillFromJson(doc.fill_value);
  if (fillValue === undefined)
    return bad('fill value', doc.fill_value, 'its fill value is not a number');
  const sharding = shardingOf(doc.codecs, chunks);
  if (sharding !== undefined && !sharding.ok) return bad('codecs', doc.codecs, sharding.detail);
  const codecList = sharding === undefined ? doc.codecs : sharding.codecs;
  const codecs = Array.isArray(codecList) ? codecList.filter(isCodecSpec) : [];
  const problem = codecsProblem(codecs);
  if (problem !== undefined || codecs.length !== (codecList as unknown[]).length)
    return bad('codecs', doc.codecs, problem ?? 'its codec list is malformed');
  const chunkKey = chunkKeyEncoder(doc.chunk_key_encoding);
  if (chunkKey === undefined)
    return bad('chunk key encoding', doc.chunk_key_encoding, 'its chunk key encoding is unknown');
  const outer: Vec3 = [chunks[1]!, chunks[2]!, chunks[3]!];
  return {
    ok: true,
    layout: {
      shape: [shape[1]!, shape[2]!, shape[3]!],
      channels: shape[0]!,
      dtype,
      blockShape: sharding === undefined ? outer : sharding.blockShape,
      shardShape: sharding === undefined ? undefined : outer,
      fillValue,
      codecs,
      chunkKey,
    },
  };
}

type Sharding =
  | { readonly ok: true; readonly blockShape: Vec3; readonly codecs: unknown }
  | { readonly ok: false; readonly detail: string };

/**
 * The sharding of an array whose codec list is `[sharding_indexed]` (undefined when it is
 * not sharded): the inner chunk shape and codecs, or why Tessera cannot use it. Only the
 * index Tessera writes is read: bytes (little-endian) + crc32c, at the end.
 */
function shardingOf(codecs: unknown, outer: readonly number[]): Sharding | undefined {
  if (!Array.isArray(codecs) || !codecs.some((c) => isObject(c) && c.name === SHARDING_CODEC))
    return undefined;
  const fail = (detail: string): Sharding => ({ ok: false, detail });
  const config = codecs.length === 1 && isObject(codecs[0]) ? codecs[0].configuration : undefined;
  if (!isObject(config))
    return fail('sharding_indexed must be the only codec, with a configuration');
  const inner = config.chunk_shape;
  if (
    !isNumberArray(inner) ||
    inner.length !== 4 ||
    inner[0] !== outer[0] ||
    !inner.every((v, a) => Number.isInteger(v) && v > 0 && outer[a]! % v === 0)
  )
    return fail(
      'its inner chunk_shape must be a [c, bz, by, bx] block of all channels dividing the shard shape',
    );
  if (!isTesseraIndex(config.index_codecs))
    return fail('its index_codecs must be bytes (little-endian) then crc32c');
  if (config.index_location !== undefined && config.index_location !== 'end')
    return fail('its shard index must be at the end (index_location "end")');
  return { ok: true, blockShape: [inner[1]!, inner[2]!, inner[3]!], codecs: config.codecs };
}

export function compareLayout(have: Layout, want: OutputVolumeOptions, location: string): void {
  const fields: [string, unknown, unknown][] = [
    ['channel count', want.channels, have.channels],
    ['shape', want.shape, have.shape],
    ['data type', want.dtype, have.dtype],
    ['block shape', want.blockShape, have.blockShape],
    ['shard shape', want.shardShape ?? 'none (unsharded)', have.shardShape ?? 'none (unsharded)'],
    ['fill value', want.fillValue ?? 0, have.fillValue],
  ];
  for (const [field, expected, actual] of fields)
    if (!sameJson(expected, actual))
      throw new OutputMismatchError(location, field, expected, actual);
}

export function expectOk(parsed: Parsed, location: string): Layout {
  if (!parsed.ok) throw new OutputMismatchError(location, parsed.field, 'valid', parsed.actual);
  return parsed.layout;
}

export function expectedOf(wanted: JsonObject, field: string): unknown {
  const byField: Record<string, unknown> = {
    'node type': wanted.node_type,
    shape: wanted.shape,
    'data type': wanted.data_type,
    'block shape':
      isObject(wanted.chunk_grid) && isObject(wanted.chunk_grid.configuration)
        ? wanted.chunk_grid.configuration.chunk_shape
        : undefined,
    'shard shape':
      isObject(wanted.chunk_grid) && isObject(wanted.chunk_grid.configuration)
        ? wanted.chunk_grid.configuration.chunk_shape
        : undefined,
    'fill value': wanted.fill_value,
    codecs: wanted.codecs,
    'chunk key encoding': wanted.chunk_key_encoding,
  };
  return byField[field];
}

/** bytes (little-endian), then crc32c; an empty configuration counts as none. */
function isTesseraIndex(codecs: unknown): boolean {
  if (!Array.isArray(codecs) || codecs.length !== SHARD_INDEX_CODECS.length) return false;
  return codecs.every((c, i) => {
    const want = SHARD_INDEX_CODECS[i]!;
    return (
      isObject(c) &&
      c.name === want.name &&
      sameJson(c.configuration ?? {}, want.configuration ?? {})
    );
  });
}

function chunkKeyEncoder(encoding: unknown): ((coords: readonly number[]) => string) | undefined {
  if (!isObject(encoding)) return undefined;
  const separator = isObject(encoding.configuration) ? encoding.configuration.separator : undefined;
  if (separator !== undefined && separator !== '/' && separator !== '.') return undefined;
  if (encoding.name === 'default') return (c) => ['c', ...c].join(separator ?? '/');
  if (encoding.name === 'v2') return (c) => c.join(separator ?? '.');
  return undefined;
}

function isCodecSpec(value: unknown): value is CodecSpec {
  return (
    isObject(value) &&
    typeof value.name === 'string' &&
    (value.configuration === undefined || isObject(value.configuration))
  );
}

// JSON has no NaN or infinities; Zarr v3 spells them as strings.
function fillToJson(v: number): number | string {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return 'Infinity';
  if (v === Number.NEGATIVE_INFINITY) return '-Infinity';
  return v;
}

function fillFromJson(v: unknown): number | undefined {
  if (typeof v === 'number') return v;
  if (v === 'NaN') return Number.NaN;
  if (v === 'Infinity') return Number.POSITIVE_INFINITY;
  if (v === '-Infinity') return Number.NEGATIVE_INFINITY;
  return undefined;
}

export const sameJson = (a: unknown, b: unknown): boolean =>
  JSON.stringify(a, (_k, v: unknown) => (typeof v === 'number' ? fillToJson(v) : v)) ===
  JSON.stringify(b, (_k, v: unknown) => (typeof v === 'number' ? fillToJson(v) : v));
