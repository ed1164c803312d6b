// Tessera's output as a Neuroglancer precomputed volume, for connectomics tools (igneous,
// CloudVolume, neuroglancer) to take directly. One scale, unsharded, raw encoding; one
// file per output block, so every block still has exactly one writer:
//
//   out/info        {"@type": "neuroglancer_multiscale_volume", "type": "image",
//                    "data_type": float32|uint8, "num_channels": C,
//                    "scales": [{"key": "0", "size": [X, Y, Z], "chunk_sizes": [[bx, by, bz]],
//                                "resolution": [rx, ry, rz] nm, "encoding": "raw"}],
//                    "tessera": {"job": "<jobId>"}}         (the owner, output-owner.ts)
//   out/0/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>     a block's channels, x fastest (Fortran [x, y, z, c]),
//                                          edge blocks cut to the volume (as the spec has them)
//   out/0/<name>.gz                        the same, gzip-compressed (compression 'gzip')
//
// Creating is idempotent like the Zarr output's: an info of the same layout is reopened,
// one of another layout or another job is refused. Pyramid levels are not written here
// (the manifest refuses output.pyramid with precomputed); igneous adds scales.

import { gzipSync } from 'node:zlib';
import type { Dense } from '../../array/dense.ts';
import { Box, fromFn, type Vec3 } from '../../geometry/index.ts';
import { type AbsolutePath, describeStore, type Store } from '../../store/index.ts';
import { checkBlockCoord, checkBlockData, storeHas } from '../block-grid.ts';
import { OutputMismatchError, VolumeNotFoundError, VolumeWriteError } from '../errors.ts';
import { isObject, type JsonObject, readJson, writeJson } from '../json.ts';
import type { OutputVolume } from '../output.ts';
import type { OutputData, OutputDtype, OutputVolumeOptions } from '../output-layout.ts';
import { checkOwner, OWNER_ATTRIBUTE } from '../output-owner.ts';
import { PrecomputedInfoError } from './errors.ts';
import { infoDocument, parseInfo } from './info.ts';
import { INFO_KEY, openPrecomputedInput } from './input.ts';

export const PRECOMPUTED_SCALE_KEY = '0';

export interface PrecomputedOutputOptions extends OutputVolumeOptions {
  /** Nanometres per voxel (z, y, x); default 1 nm. Finalize may set it later (setResolution). */
  readonly resolution?: Vec3;
  /** Block files raw (default: every reader takes them) or gzip-compressed as `<name>.gz`. */
  readonly compression?: 'raw' | 'gzip';
}

/** The info of an output Tessera wrote (it records a job), or undefined when there is none. */
export async function readOutputInfo(store: Store): Promise<JsonObject | undefined> {
  const location = describeStore(store);
  let doc: unknown;
  try {
    doc = await readJson(store, INFO_KEY);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new PrecomputedInfoError(
      location,
      '',
      `is not valid JSON (${error.message}). Choose another output.url, or delete the old output.`,
      { cause: error },
    );
  }
  if (doc === undefined) return undefined;
  if (!isObject(doc)) throw new PrecomputedInfoError(location, '', 'is not a JSON object');
  return doc;
}

/** The info document in the shape output-owner.ts reads (`attributes.tessera.job`). */
export function ownerDocOfInfo(info: JsonObject | undefined): unknown {
  return info === undefined
    ? undefined
    : { attributes: { [OWNER_ATTRIBUTE]: info[OWNER_ATTRIBUTE] } };
}

export async function createPrecomputedOutput(
  store: Store,
  o: PrecomputedOutputOptions,
): Promise<OutputVolume> {
  const location = describeStore(store);
  if ((o.fillValue ?? 0) !== 0)
    throw new RangeError('a precomputed output reads unwritten blocks as 0: fillValue must be 0');
  if (o.shardShape !== undefined)
    throw new RangeError('a precomputed output is written unsharded: leave shardShape out');
  const compression = o.compression ?? 'raw';
  const wanted = infoDocument({
    dataType: o.dtype,
    numChannels: o.channels,
    scales: [
      {
        key: PRECOMPUTED_SCALE_KEY,
        size: o.shape,
        chunkSize: o.blockShape,
        resolution: o.resolution ?? [1, 1, 1],
        encoding: 'raw',
      },
    ],
    extra: {
      ...(o.owner === undefined ? {} : { [OWNER_ATTRIBUTE]: { job: o.owner } }),
      ...(compression === 'gzip' ? { tessera_compression: 'gzip' } : {}),
    },
  });
  const existing = await readOutputInfo(store);
  if (existing === undefined) {
    await writeJson(store, INFO_KEY, wanted);
  } else {
    if (o.owner !== undefined)
      checkOwner(location, o.owner, { root: ownerDocOfInfo(existing), array: undefined });
    compareInfo(existing, wanted, location);
    if (o.owner !== undefined && !isObject(existing[OWNER_ATTRIBUTE]))
      await writeJson(store, INFO_KEY, { ...existing, [OWNER_ATTRIBUTE]: { job: o.owner } });
  }
  return new PrecomputedOutput(store, location, o, compression);
}

/** Opens an output `createPrecomputedOutput` made (workers, blend, preview). */
export async function openPrecomputedOutput(
  store: Store,
  o: { owner?: string } = {},
): Promise<OutputVolume> {
  const location = describeStore(store);
  const info = await readOutputInfo(store);
  if (info === undefined)
    throw new VolumeNotFoundError(
      location,
      '',
      'the output has not been created yet (planning creates it)',
    );
  if (o.owner !== undefined)
    checkOwner(location, o.owner, { root: ownerDocOfInfo(info), array: undefined });
  const parsed = parseInfo(info, location);
  const scale = parsed.scales[0]!;
  const dtype = parsed.dataType;
  if ((dtype !== 'float32' && dtype !== 'uint8') || scale.encoding !== 'raw' || scale.sharding)
    throw new PrecomputedInfoError(
      location,
      'scales[0]',
      `is ${dtype} ${scale.encoding}${scale.sharding ? ' sharded' : ''}: not an output Tessera writes (float32 or uint8, raw, unsharded). Choose another output.url.`,
    );
  return new PrecomputedOutput(
    store,
    location,
    { shape: scale.size, channels: parsed.numChannels, dtype, blockShape: scale.chunkSize },
    info.tessera_compression === 'gzip' ? 'gzip' : 'raw',
  );
}

/** Sets scale 0's resolution (nm, z y x): finalize knows the input's voxel size and unit. */
export async function setPrecomputedResolution(store: Store, resolution: Vec3): Promise<void> {
  const info = await readOutputInfo(store);
  const scales = info?.scales;
  if (info === undefined || !Array.isArray(scales) || !isObject(scales[0])) return;
  const xyz = [resolution[2], resolution[1], resolution[0]];
  const before = scales[0].resolution;
  if (JSON.stringify(before) === JSON.stringify(xyz)) return;
  await writeJson(store, INFO_KEY, {
    ...info,
    scales: [{ ...scales[0], resolution: xyz }, ...scales.slice(1)],
  });
}

/** Layout fields an existing info must share with this run's; resolution may differ (finalize sets it). */
function compareInfo(existing: JsonObject, wanted: JsonObject, location: string): void {
  const fail = (field: string, expected: unknown, actual: unknown): never => {
    throw new OutputMismatchError(location, `info ${field}`, expected, actual);
  };
  for (const field of ['@type', 'data_type', 'num_channels', 'tessera_compression'])
    if (JSON.stringify(existing[field]) !== JSON.stringify(wanted[field]))
      fail(field, wanted[field], existing[field]);
  const have =
    Array.isArray(existing.scales) && isObject(existing.scales[0]) ? existing.scales[0] : {};
  const want = (wanted.scales as JsonObject[])[0]!;
  if (!Array.isArray(existing.scales) || existing.scales.length !== 1)
    fail('scales', 'one scale', existing.scales);
  for (const field of ['key', 'size', 'chunk_sizes', 'voxel_offset', 'encoding'])
    if (JSON.stringify(have[field]) !== JSON.stringify(want[field]))
      fail(`scales[0].${field}`, want[field], have[field]);
}

class PrecomputedOutput implements OutputVolume {
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  readonly blockShape: Vec3;
  readonly blockGrid: Vec3;
  readonly fillValue = 0;
  private reader: ReturnType<typeof openPrecomputedInput> | undefined;

  constructor(
    private readonly store: Store,
    readonly location: string,
    o: Pick<OutputVolumeOptions, 'shape' | 'channels' | 'dtype' | 'blockShape'>,
    private readonly compression: 'raw' | 'gzip',
  ) {
    this.shape = o.shape;
    this.channels = o.channels;
    this.dtype = o.dtype;
    this.blockShape = o.blockShape;
    this.blockGrid = fromFn((a) => Math.ceil(o.shape[a] / o.blockShape[a]));
  }

  blockBox(coord: Vec3): Box {
    const start = fromFn((a) => coord[a] * this.blockShape[a]);
    const stop = fromFn((a) => Math.min(start[a] + this.blockShape[a], this.shape[a]));
    return new Box(start, stop);
  }

  blockKey(coord: Vec3): AbsolutePath {
    return precomputedBlockKey(this.blockBox(coord), this.compression);
  }

  async writeBlock(
    coord: Vec3,
    data: Dense<OutputData>,
    o: { beforeStore?: () => Promise<void> } = {},
  ): Promise<void> {
    this.checkCoord(coord);
    const box = this.blockBox(coord);
    checkBlockData(this.location, coord, box, data, this);
    // [c][z][y][x] with x fastest is the spec's [x, y, z, c] Fortran order: the bytes as they are.
    const raw = littleEndianBytes(data.data);
    const bytes = this.compression === 'gzip' ? gzipSync(raw, { level: 6 }) : raw;
    const key = this.blockKey(coord);
    await o.beforeStore?.();
    try {
      await this.store.set(key, bytes);
    } catch (error) {
      throw new VolumeWriteError(
        this.location,
        key,
        error instanceof Error ? error.message : String(error),
        {
          cause: error,
        },
      );
    }
  }

  async readBox(box: Box): Promise<Dense<OutputData>> {
    this.reader ??= openPrecomputedInput(this.store);
    const dense = await (await this.reader).readBox(box);
    const data = dense.data;
    if (!(data instanceof Float32Array || data instanceof Uint8Array))
      throw new TypeError(`read ${data.constructor.name} from a ${this.dtype} output`);
    return { box: dense.box, channels: dense.channels, data };
  }

  async blockExists(coord: Vec3): Promise<boolean> {
    this.checkCoord(coord);
    return storeHas(this.store, this.blockKey(coord));
  }

  private checkCoord(coord: Vec3): void {
    checkBlockCoord(this.location, coord, this.blockGrid);
  }
}

const LITTLE_ENDIAN_HOST = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function littleEndianBytes(data: OutputData): Uint8Array {
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength).slice();
  if (LITTLE_ENDIAN_HOST || data instanceof Uint8Array) return bytes;
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < data.length; i++) view.setFloat32(4 * i, data[i]!, true);
  return bytes;
}

/** The file of the output block covering `box` (z, y, x): `/0/<x0>-<x1>_<y0>-<y1>_<z0>-<z1>`. */
export function precomputedBlockKey(box: Box, compression: 'raw' | 'gzip' = 'raw'): AbsolutePath {
  const r = (a: 0 | 1 | 2) => `${box.start[a]}-${box.stop[a]}`;
  const name = `/${PRECOMPUTED_SCALE_KEY}/${r(2)}_${r(1)}_${r(0)}`;
  return (compression === 'gzip' ? `${name}.gz` : name) as AbsolutePath;
}

/** The format an output is written in: output.format, else what output.url's prefix says. */
export function outputFormat(o: {
  readonly url: string;
  readonly format?: 'zarr' | 'precomputed' | undefined;
}): 'zarr' | 'precomputed' {
  return o.format ?? (/^precomputed:\/\//i.test(o.url) ? 'precomputed' : 'zarr');
}

const NANOMETRES = { nanometer: 1, micrometer: 1000, millimeter: 1e6, angstrom: 0.1 } as const;

/**
 * A voxel size in nanometres, precomputed's unit, from one in `unit` (OME-Zarr's; a
 * precomputed input's is nm already, and a size without a unit is taken as nm).
 */
export function nanometres(voxelSize: Vec3, unit: keyof typeof NANOMETRES | undefined): Vec3 {
  const f = NANOMETRES[unit ?? 'nanometer'];
  return [voxelSize[0] * f, voxelSize[1] * f, voxelSize[2] * f];
}
