// The output volume: a Zarr v3 group with the result at array path "0" (OME-Zarr
// level 0), shape [C, z, y, x], one storage chunk per output block holding all
// channels:
//
//   out.zarr/zarr.json            group (OME-Zarr attributes, see ome.ts)
//   out.zarr/0/zarr.json          array [C, Z, Y, X], chunk_shape [C, bz, by, bx]
//   out.zarr/0/c/0/<bz>/<by>/<bx> block (bz, by, bx): bytes + zstd
//
// Every block is written whole, by exactly one writer, as exactly one object, so a
// resumed or repeated run rewrites identical bytes and never needs a read first.
// Creating is idempotent: an existing array with the same layout is reopened (its
// finished blocks kept); one with a different layout, or one that belongs to another
// job (output-owner.ts), is refused, never overwritten.

import * as zarr from 'zarrita';
import { copyBox, type Dense } from '../array/dense.ts';
import { Box, fromFn, type Vec3 } from '../geometry/index.ts';
import { type AbsolutePath, describeStore, type Store } from '../store/index.ts';
import { BlockEncoder } from './block-codec.ts';
import { checkBlockCoord, checkBlockData, storeHas } from './block-grid.ts';
import {
  OutputMismatchError,
  VolumeFormatError,
  VolumeNotFoundError,
  VolumeWriteError,
} from './errors.ts';
import { isObject, type JsonObject, readJson, writeJson } from './json.ts';
import {
  arrayMetadata,
  checkOptions,
  compareLayout,
  expectedOf,
  expectOk,
  type Layout,
  type OutputData,
  type OutputDtype,
  type OutputVolumeOptions,
  parseArrayMetadata,
  sameJson,
} from './output-layout.ts';
import { checkOwner, OWNER_ATTRIBUTE, ownerOf, withOwner } from './output-owner.ts';
import {
  createPrecomputedOutput,
  openPrecomputedOutput,
  ownerDocOfInfo,
  type PrecomputedOutputOptions,
  readOutputInfo,
} from './precomputed/output.ts';
import { ShardedOutputVolume } from './sharded-output.ts';
import { readPadded, withCheckedChunks } from './zarr-read.ts';

export type { OutputData, OutputDtype, OutputVolumeOptions };

export interface OutputVolume {
  readonly location: string;
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  readonly blockShape: Vec3;
  /** Blocks per axis: ceil(shape / blockShape). */
  readonly blockGrid: Vec3;
  readonly fillValue: number;
  /** The voxels of block `coord`: its grid cell clipped to the volume. */
  blockBox(coord: Vec3): Box;
  /** The store key of block `coord`. */
  blockKey(coord: Vec3): AbsolutePath;
  /**
   * Stores block `coord` whole; `data.box` must equal `blockBox(coord)`, all channels.
   * `beforeStore`, when given, runs after encoding, just before the bytes go to the store:
   * a worker's lease check there leaves the least time between "still the owner" and the
   * write.
   */
  writeBlock(
    coord: Vec3,
    data: Dense<OutputData>,
    o?: { beforeStore?: () => Promise<void> },
  ): Promise<void>;
  /** The stored voxels of `box` (fill value where unwritten or outside). */
  readBox(box: Box): Promise<Dense<OutputData>>;
  blockExists(coord: Vec3): Promise<boolean>;
}

export const OUTPUT_ARRAY_PATH = '0';
const ARRAY_KEY: AbsolutePath = `/${OUTPUT_ARRAY_PATH}/zarr.json`;
const ROOT_KEY: AbsolutePath = '/zarr.json';

/** Creates the output group and array, or reopens them when the layout matches. */
export async function createOutputVolume(
  store: Store,
  o: OutputVolumeOptions & { format?: 'zarr' | 'precomputed' } & PrecomputedOutputOptions,
): Promise<OutputVolume> {
  checkOptions(o);
  if (o.format === 'precomputed') return createPrecomputedOutput(store, o);
  const location = describeStore(store);
  const wanted = o.owner === undefined ? arrayMetadata(o) : withOwner(arrayMetadata(o), o.owner);
  const existing = await readMetadata(store, ARRAY_KEY, location);
  if (o.owner !== undefined)
    checkOwner(location, o.owner, {
      root: await readMetadata(store, ROOT_KEY, location),
      array: existing,
    });
  let layout: Layout;
  if (existing === undefined) {
    layout = expectOk(parseArrayMetadata(wanted), location);
    await writeJson(store, ARRAY_KEY, wanted);
  } else {
    const parsed = parseArrayMetadata(existing);
    if (!parsed.ok)
      throw new OutputMismatchError(
        location,
        parsed.field,
        expectedOf(wanted, parsed.field),
        parsed.actual,
      );
    layout = parsed.layout;
    compareLayout(layout, o, location);
    // An array of this layout that records no job yet (a crash before the first writer
    // recorded it, or one written before owners were recorded) becomes this job's.
    if (o.owner !== undefined && ownerOf(existing) === undefined)
      await writeJson(store, ARRAY_KEY, withOwner(existing as JsonObject, o.owner));
  }
  await ensureRootGroup(store, location, {
    ...o.attributes,
    ...(o.owner === undefined ? {} : { [OWNER_ATTRIBUTE]: { job: o.owner } }),
  });
  return volumeOf(store, location, layout);
}

/** The volume over `layout`: sharded (sharded-output.ts) or one object per block. */
const volumeOf = (store: Store, location: string, layout: Layout): OutputVolume =>
  layout.shardShape === undefined
    ? new ZarrOutputVolume(store, location, layout)
    : new ShardedOutputVolume(store, location, layout);

/**
 * Opens an existing output volume (workers, the blend step, previews). With `owner`, an
 * output that belongs to another job is refused (OutputOwnedError).
 */
export async function openOutputVolume(
  store: Store,
  o: { owner?: string } = {},
): Promise<OutputVolume> {
  const location = describeStore(store);
  const doc = await readMetadata(store, ARRAY_KEY, location);
  // No Zarr array: a Neuroglancer precomputed output, when an info file is there.
  if (doc === undefined && (await readOutputInfo(store)) !== undefined)
    return openPrecomputedOutput(store, o);
  if (o.owner !== undefined)
    checkOwner(location, o.owner, {
      root: await readMetadata(store, ROOT_KEY, location),
      array: doc,
    });
  if (doc === undefined)
    throw new VolumeNotFoundError(
      location,
      OUTPUT_ARRAY_PATH,
      'the output array has not been created yet (planning creates it)',
    );
  const parsed = parseArrayMetadata(doc);
  if (!parsed.ok)
    throw new VolumeFormatError(
      location,
      OUTPUT_ARRAY_PATH,
      'metadata',
      `${parsed.detail}; it was not written by Tessera. Choose another output.url.`,
    );
  return volumeOf(store, location, parsed.layout);
}

class ZarrOutputVolume implements OutputVolume {
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  readonly blockShape: Vec3;
  readonly blockGrid: Vec3;
  readonly fillValue: number;
  private readonly encoder: BlockEncoder;
  private array: Promise<zarr.Array<zarr.DataType, Store>> | undefined;

  constructor(
    private readonly store: Store,
    readonly location: string,
    private readonly layout: Layout,
  ) {
    this.shape = layout.shape;
    this.channels = layout.channels;
    this.dtype = layout.dtype;
    this.blockShape = layout.blockShape;
    this.fillValue = layout.fillValue;
    this.blockGrid = fromFn((a) => Math.ceil(layout.shape[a] / layout.blockShape[a]));
    this.encoder = new BlockEncoder(layout.codecs, {
      dataType: layout.dtype,
      shape: [layout.channels, ...layout.blockShape],
      codecs: [...layout.codecs].map((c) => ({
        name: c.name,
        configuration: c.configuration ?? {},
      })),
      fillValue: layout.fillValue,
    });
  }

  blockBox(coord: Vec3): Box {
    const start = fromFn((a) => coord[a] * this.blockShape[a]);
    const stop = fromFn((a) => Math.min(start[a] + this.blockShape[a], this.shape[a]));
    return new Box(start, stop);
  }

  blockKey(coord: Vec3): AbsolutePath {
    return `/${OUTPUT_ARRAY_PATH}/${this.layout.chunkKey([0, ...coord])}`;
  }

  async writeBlock(
    coord: Vec3,
    data: Dense<OutputData>,
    o: { beforeStore?: () => Promise<void> } = {},
  ): Promise<void> {
    this.checkCoord(coord);
    const box = this.blockBox(coord);
    checkBlockData(this.location, coord, box, data, this);

    const key = this.blockKey(coord);
    let bytes: Uint8Array;
    try {
      bytes = await this.encoder.encode(this.wholeChunk(box, data));
    } catch (error) {
      throw new VolumeWriteError(this.location, key, `encoding failed (${text(error)})`, {
        cause: error,
      });
    }
    await o.beforeStore?.();
    try {
      await this.store.set(key, bytes);
    } catch (error) {
      throw new VolumeWriteError(this.location, key, text(error), { cause: error });
    }
  }

  /** The block's values as a full chunk: edge blocks are padded with the fill value. */
  private wholeChunk(box: Box, data: Dense<OutputData>): OutputData {
    const chunkBox = Box.ofShape(this.blockShape, box.start);
    if (box.equals(chunkBox)) return data.data;
    const chunk =
      this.dtype === 'float32'
        ? new Float32Array(this.channels * chunkBox.size)
        : new Uint8Array(this.channels * chunkBox.size);
    if (this.fillValue !== 0) chunk.fill(this.fillValue);
    copyBox(data, { box: chunkBox, channels: this.channels, data: chunk });
    return chunk;
  }

  async readBox(box: Box): Promise<Dense<OutputData>> {
    this.array ??= zarr.open
      .v3(zarr.root(this.store).resolve(OUTPUT_ARRAY_PATH), { kind: 'array' })
      .then(withCheckedChunks);
    const dense = await readPadded(
      {
        array: await this.array,
        location: this.location,
        arrayPath: OUTPUT_ARRAY_PATH,
        dtype: this.dtype,
        shape: this.shape,
        channels: this.channels,
        channelAxis: true,
      },
      box,
      this.fillValue,
    );
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

/**
 * Whether anything of an output is at `store` (its root group or its array), and the job
 * it records. The planner reads this before taking an output claim over from a finished
 * job: only once that job's output is gone.
 */
export async function outputPresence(
  store: Store,
): Promise<{ exists: boolean; owner: string | undefined }> {
  const location = describeStore(store);
  const root = await readMetadata(store, ROOT_KEY, location);
  const array = await readMetadata(store, ARRAY_KEY, location);
  const info = await readOutputInfo(store); // a precomputed output's
  return {
    exists: root !== undefined || array !== undefined || info !== undefined,
    owner: ownerOf(root) ?? ownerOf(array) ?? ownerOf(ownerDocOfInfo(info)),
  };
}

/** Refuses (OutputOwnedError) when the output at `store` records a job other than `owner`. */
export async function checkOutputOwner(store: Store, owner: string): Promise<void> {
  const location = describeStore(store);
  checkOwner(location, owner, {
    root: await readMetadata(store, ROOT_KEY, location),
    array: await readMetadata(store, ARRAY_KEY, location),
  });
  checkOwner(location, owner, {
    root: ownerDocOfInfo(await readOutputInfo(store)),
    array: undefined,
  });
}

/** Writes the root group if missing; merges `attributes` into it when they add anything. */
async function ensureRootGroup(
  store: Store,
  location: string,
  attributes: Record<string, unknown>,
): Promise<void> {
  const root = await readMetadata(store, ROOT_KEY, location);
  if (root === undefined) {
    await writeJson(store, ROOT_KEY, { zarr_format: 3, node_type: 'group', attributes });
    return;
  }
  if (!isObject(root) || root.zarr_format !== 3 || root.node_type !== 'group')
    throw new OutputMismatchError(
      location,
      'root node type',
      'Zarr v3 group',
      isObject(root) ? root.node_type : root,
    );
  const before = isObject(root.attributes) ? root.attributes : {};
  const after = { ...before, ...attributes };
  if (!sameJson(before, after)) await writeJson(store, ROOT_KEY, { ...root, attributes: after });
}

async function readMetadata(store: Store, key: AbsolutePath, location: string): Promise<unknown> {
  try {
    return await readJson(store, key);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new VolumeFormatError(
      location,
      key === ROOT_KEY ? '' : OUTPUT_ARRAY_PATH,
      'metadata',
      `${key.slice(1)} is not valid JSON (${error.message}). Choose another output.url, or delete the old output.`,
      { cause: error },
    );
  }
}

const text = (error: unknown): string => (error instanceof Error ? error.message : String(error));
