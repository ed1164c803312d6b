// The output array's layout: the metadata Tessera writes for it, and the parse of an
// existing array's metadata back into a layout, naming the first field that differs
// or that Tessera cannot write (a resumed run must never write into a foreign array).

import type { Vec3 } from '../geometry/index.ts';
import { type CodecSpec, codecsProblem, OUTPUT_CODECS } from './block-codec.ts';
import { OutputMismatchError } from './errors.ts';
import { isNumberArray, isObject, type JsonObject } from './json.ts';

export type OutputDtype = 'float32' | 'uint8';
export type OutputData = Float32Array | Uint8Array;

export interface OutputVolumeOptions {
  /** Spatial shape (z, y, x) of the whole volume. */
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  /** Spatial shape of one block = one storage chunk. */
  readonly blockShape: Vec3;
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
  readonly fillValue: number;
  readonly codecs: readonly CodecSpec[];
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
  const fill = o.fillValue ?? 0;
  if (o.dtype === 'uint8' && !(Number.isInteger(fill) && fill >= 0 && fill <= 255))
    throw new RangeError(`a uint8 output needs an integer fillValue in 0..255, not ${fill}`);
}

export function arrayMetadata(o: OutputVolumeOptions): JsonObject {
  return {
    zarr_format: 3,
    node_type: 'array',
    shape: [o.channels, ...o.shape],
    data_type: o.dtype,
    chunk_grid: { name: 'regular', configuration: { chunk_shape: [o.channels, ...o.blockShape] } },
    chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
    fill_value: fillToJson(o.fillValue ?? 0),
    codecs: OUTPUT_CODECS,
    attributes: {},
    dimension_names: ['c', 'z', 'y', 'x'],
  };
}

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
  const codecs = Array.isArray(doc.codecs) ? doc.codecs.filter(isCodecSpec) : [];
  const problem = codecsProblem(codecs);
  if (problem !== undefined || codecs.length !== (doc.codecs as unknown[]).length)
    return bad('codecs', doc.codecs, problem ?? 'its codec list is malformed');
  const chunkKey = chunkKeyEncoder(doc.chunk_key_encoding);
  if (chunkKey === undefined)
    return bad('chunk key encoding', doc.chunk_key_encoding, 'its chunk key encoding is unknown');
  return {
    ok: true,
    layout: {
      shape: [shape[1]!, shape[2]!, shape[3]!],
      channels: shape[0]!,
      dtype,
      blockShape: [chunks[1]!, chunks[2]!, chunks[3]!],
      fillValue,
      codecs,
      chunkKey,
    },
  };
}

export function compareLayout(have: Layout, want: OutputVolumeOptions, location: string): void {
  const fields: [string, unknown, unknown][] = [
    ['channel count', want.channels, have.channels],
    ['shape', want.shape, have.shape],
    ['data type', want.dtype, have.dtype],
    ['block shape', want.blockShape, have.blockShape],
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
    'fill value': wanted.fill_value,
    codecs: wanted.codecs,
    'chunk key encoding': wanted.chunk_key_encoding,
  };
  return byField[field];
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
