// The output volume over a sharded array (output-layout.ts, `shardShape`): blocks are
// the inner chunks of shards, and a shard is one object holding all of its blocks.
//
//   shard [0, 0, 0] = 0/c/0/0/0/0             shard [0, 0, 1] = 0/c/0/0/0/1
//   +--------+--------+--------+--------+--------+-...
//   | block  | block  | block  | block  | block  |
//   | [0,0,0]| [0,0,1]| [0,0,2]| [0,0,3]| [0,0,4]|    (shardShape = 4 blocks in x)
//   +--------+--------+--------+--------+--------+-...
//
// A shard is written whole (writeShard) from its blocks, each given as voxels or as
// bytes already encoded with the inner codecs (a worker may encode a block once and
// carry it until the shard can be assembled). Blocks not given are empty in the index
// and read as the fill value. One shard, one PUT, no read first, and the same blocks
// always give the same bytes. `writeBlock` is only for a shard of one block: anything
// else would drop the shard's other blocks.
//
// Reads go through the shard index (shard.ts), fetched afresh on every call: a shard
// rewritten by a blend must never be read through its old index (zarrita's sharded
// reader keeps every index it has seen for the life of the array object).

import * as zarr from 'zarrita';
import { copyBox, type Dense, fillBox } from '../array/dense.ts';
import { Box, fromFn, type Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, Store } from '../store/index.ts';
import { BlockEncoder } from './block-codec.ts';
import { checkBlockCoord, checkBlockData, inGrid } from './block-grid.ts';
import {
  InvalidBlockError,
  ShardedWriteError,
  ShardIndexError,
  VolumeReadError,
  VolumeWriteError,
} from './errors.ts';
import { OUTPUT_ARRAY_PATH, type OutputVolume } from './output.ts';
import type { Layout, OutputData, OutputDtype } from './output-layout.ts';
import {
  decodeShardIndex,
  encodeShard,
  indexByteLength,
  readInnerChunk,
  readShardIndex,
  type ShardIndex,
  type ShardRef,
} from './shard.ts';

/** One block of a shard: its voxels, or its bytes already encoded with the inner codecs. */
export interface ShardBlock {
  readonly coord: Vec3;
  readonly data: Dense<OutputData> | Uint8Array;
}

export interface ShardedOutput extends OutputVolume {
  readonly shardShape: Vec3;
  /** Shards per axis: ceil(shape / shardShape). */
  readonly shardGrid: Vec3;
  /** The shard holding block `coord`. */
  shardOf(coord: Vec3): Vec3;
  /** The blocks of shard `shard` inside the volume, as a box of block-grid coordinates. */
  shardBlocks(shard: Vec3): Box;
  /** The store key of shard `shard` (blockKey of any of its blocks). */
  shardKey(shard: Vec3): AbsolutePath;
  /** The stored bytes of one block, for writeShard later (same checks as writeBlock). */
  encodeBlock(coord: Vec3, data: Dense<OutputData>): Promise<Uint8Array>;
  /** Stores shard `shard` whole from `blocks`; its blocks not given are left empty. */
  writeShard(
    shard: Vec3,
    blocks: Iterable<ShardBlock>,
    o?: { beforeStore?: () => Promise<void> },
  ): Promise<void>;
  /** The shard's checked index; undefined when the shard has not been written. */
  shardIndex(shard: Vec3): Promise<ShardIndex | undefined>;
  /**
   * The blocks stored in shard `shard`, still encoded (one GET of the whole shard), in
   * index order: handed back to writeShard with other blocks, they give the shard that
   * writing all of them as voxels gives, byte for byte.
   */
  storedBlocks(shard: Vec3): Promise<ShardBlock[]>;
}

type BytesToBytes = { decode(bytes: Uint8Array): Promise<Uint8Array> };

export class ShardedOutputVolume implements ShardedOutput {
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: OutputDtype;
  readonly blockShape: Vec3;
  readonly blockGrid: Vec3;
  readonly fillValue: number;
  readonly shardShape: Vec3;
  readonly shardGrid: Vec3;
  /** Blocks per shard along each axis (shardShape / blockShape). */
  private readonly perShard: Vec3;
  private readonly encoder: BlockEncoder;
  private decoders: Promise<BytesToBytes[]> | undefined;

  constructor(
    private readonly store: Store,
    readonly location: string,
    private readonly layout: Layout,
  ) {
    const shardShape = layout.shardShape;
    if (shardShape === undefined)
      throw new TypeError('ShardedOutputVolume needs a sharded layout (shardShape)');
    this.shape = layout.shape;
    this.channels = layout.channels;
    this.dtype = layout.dtype;
    this.blockShape = layout.blockShape;
    this.fillValue = layout.fillValue;
    this.shardShape = shardShape;
    this.blockGrid = fromFn((a) => Math.ceil(layout.shape[a] / layout.blockShape[a]));
    this.shardGrid = fromFn((a) => Math.ceil(layout.shape[a] / shardShape[a]));
    this.perShard = fromFn((a) => shardShape[a] / layout.blockShape[a]);
    this.encoder = new BlockEncoder(layout.codecs, this.chunkMetadata());
  }

  blockBox(coord: Vec3): Box {
    const start = fromFn((a) => coord[a] * this.blockShape[a]);
    const stop = fromFn((a) => Math.min(start[a] + this.blockShape[a], this.shape[a]));
    return new Box(start, stop);
  }

  shardOf(coord: Vec3): Vec3 {
    return fromFn((a) => Math.floor(coord[a] / this.perShard[a]));
  }

  shardBlocks(shard: Vec3): Box {
    const start = fromFn((a) => shard[a] * this.perShard[a]);
    return new Box(
      start,
      fromFn((a) => Math.min(start[a] + this.perShard[a], this.blockGrid[a])),
    );
  }

  shardKey(shard: Vec3): AbsolutePath {
    return `/${OUTPUT_ARRAY_PATH}/${this.layout.chunkKey([0, ...shard])}`;
  }

  blockKey(coord: Vec3): AbsolutePath {
    this.checkCoord(coord);
    return this.shardKey(this.shardOf(coord));
  }

  async encodeBlock(coord: Vec3, data: Dense<OutputData>): Promise<Uint8Array> {
    this.checkCoord(coord);
    const box = this.blockBox(coord);
    this.checkData(coord, box, data);
    try {
      return await this.encoder.encode(this.wholeChunk(box, data));
    } catch (error) {
      throw new VolumeWriteError(
        this.location,
        this.blockKey(coord),
        `encoding block [${coord.join(', ')}] failed (${text(error)})`,
        { cause: error },
      );
    }
  }

  async writeShard(
    shard: Vec3,
    blocks: Iterable<ShardBlock>,
    o: { beforeStore?: () => Promise<void> } = {},
  ): Promise<void> {
    this.checkShard(shard);
    const inside = this.shardBlocks(shard);
    const given = new Map<number, ShardBlock>();
    for (const block of blocks) {
      const c = block.coord;
      if (!inside.containsPoint(c))
        throw new InvalidBlockError(
          this.location,
          c,
          `it is not a block of shard [${shard.join(', ')}] (blocks ${inside})`,
        );
      const slot = this.slotOf(c);
      if (given.has(slot))
        throw new InvalidBlockError(this.location, c, 'it is given twice for one shard');
      if (block.data instanceof Uint8Array && block.data.length === 0)
        throw new InvalidBlockError(
          this.location,
          c,
          'its encoded bytes are empty (leave a block out of writeShard to store it empty)',
        );
      given.set(slot, block);
    }
    const chunks: (Uint8Array | undefined)[] = Array.from(
      { length: this.innerCount },
      () => undefined,
    );
    await Promise.all(
      [...given].map(async ([slot, block]) => {
        chunks[slot] =
          block.data instanceof Uint8Array
            ? block.data
            : await this.encodeBlock(block.coord, block.data);
      }),
    );
    const key = this.shardKey(shard);
    const bytes = encodeShard(chunks);
    await o.beforeStore?.();
    try {
      await this.store.set(key, bytes);
    } catch (error) {
      throw new VolumeWriteError(this.location, key, text(error), { cause: error });
    }
  }

  async writeBlock(
    coord: Vec3,
    data: Dense<OutputData>,
    o: { beforeStore?: () => Promise<void> } = {},
  ): Promise<void> {
    this.checkCoord(coord);
    const shard = this.shardOf(coord);
    const blocks = this.shardBlocks(shard).size;
    if (blocks !== 1)
      throw new ShardedWriteError(
        this.location,
        coord,
        shard,
        `its shard holds ${blocks} blocks, and a shard is stored as one object`,
      );
    await this.writeShard(shard, [{ coord, data }], o);
  }

  shardIndex(shard: Vec3): Promise<ShardIndex | undefined> {
    this.checkShard(shard);
    return readShardIndex(this.store, this.refOf(shard), this.innerCount);
  }

  async storedBlocks(shard: Vec3): Promise<ShardBlock[]> {
    this.checkShard(shard);
    const ref = this.refOf(shard);
    const bytes = await this.store.get(ref.key);
    if (bytes === undefined) return [];
    const tail = bytes.subarray(Math.max(0, bytes.length - indexByteLength(this.innerCount)));
    const index = decodeShardIndex(tail, this.innerCount, ref, bytes.length);
    const blocks: ShardBlock[] = [];
    const r = this.shardBlocks(shard);
    for (let z = r.start[0]; z < r.stop[0]; z++)
      for (let y = r.start[1]; y < r.stop[1]; y++)
        for (let x = r.start[2]; x < r.stop[2]; x++) {
          const range = index.range(this.slotOf([z, y, x]));
          if (range !== undefined)
            blocks.push({
              coord: [z, y, x],
              data: bytes.subarray(range.offset, range.offset + range.length),
            });
        }
    return blocks;
  }

  async blockExists(coord: Vec3): Promise<boolean> {
    this.checkCoord(coord);
    const index = await this.shardIndex(this.shardOf(coord));
    return index !== undefined && index.range(this.slotOf(coord)) !== undefined;
  }

  async readBox(box: Box): Promise<Dense<OutputData>> {
    const Ctor = this.dtype === 'float32' ? Float32Array : Uint8Array;
    const out: Dense<OutputData> = {
      box,
      channels: this.channels,
      data: new Ctor(this.channels * box.size),
    };
    if (this.fillValue !== 0) out.data.fill(this.fillValue);
    const inside = box.intersect(Box.ofShape(this.shape));
    if (inside.isEmpty()) return out;
    const first = fromFn((a) => Math.floor(inside.start[a] / this.shardShape[a]));
    const last = fromFn((a) => Math.ceil(inside.stop[a] / this.shardShape[a]));
    for (let z = first[0]; z < last[0]; z++)
      for (let y = first[1]; y < last[1]; y++)
        for (let x = first[2]; x < last[2]; x++) await this.readShardInto([z, y, x], inside, out);
    return out;
  }

  /** Copies the stored voxels of `shard` ∩ `inside` into `out`. */
  private async readShardInto(shard: Vec3, inside: Box, out: Dense<OutputData>): Promise<void> {
    const ref = this.refOf(shard);
    const fail = (error: unknown) => this.readError(inside, ref, error);
    let index: ShardIndex | undefined;
    try {
      index = await readShardIndex(this.store, ref, this.innerCount);
    } catch (error) {
      throw fail(error);
    }
    if (index === undefined) return;
    const blocks = this.shardBlocks(shard);
    const wanted: Vec3[] = [];
    for (let z = blocks.start[0]; z < blocks.stop[0]; z++)
      for (let y = blocks.start[1]; y < blocks.stop[1]; y++)
        for (let x = blocks.start[2]; x < blocks.stop[2]; x++)
          if (this.blockBox([z, y, x]).intersects(inside)) wanted.push([z, y, x]);
    await Promise.all(
      wanted.map(async (coord) => {
        let bytes: Uint8Array | undefined;
        let values: OutputData;
        try {
          bytes = await readInnerChunk(this.store, ref, index, this.slotOf(coord));
          if (bytes === undefined) return;
          values = await this.decodeBlock(bytes, coord);
        } catch (error) {
          throw fail(error);
        }
        const chunkBox = Box.ofShape(this.blockShape, this.blockBox(coord).start);
        copyBox({ box: chunkBox, channels: this.channels, data: values }, out, inside);
      }),
    );
  }

  private async decodeBlock(bytes: Uint8Array, coord: Vec3): Promise<OutputData> {
    let decoded = bytes;
    for (const codec of [...(await this.loadDecoders())].reverse())
      decoded = await codec.decode(decoded);
    const elements = this.channels * this.blockShape[0] * this.blockShape[1] * this.blockShape[2];
    const itemBytes = this.dtype === 'float32' ? 4 : 1;
    if (decoded.length !== elements * itemBytes)
      throw new BlockSizeError(coord, decoded.length, elements * itemBytes);
    if (this.dtype === 'uint8') return decoded;
    // A copy when the decoded bytes are not 4-byte aligned (a Float32Array view needs it).
    const aligned = decoded.byteOffset % 4 === 0 ? decoded : decoded.slice();
    const values = new Float32Array(aligned.buffer, aligned.byteOffset, elements);
    if (LITTLE_ENDIAN) return values;
    const view = new DataView(aligned.buffer, aligned.byteOffset, aligned.byteLength);
    return Float32Array.from({ length: elements }, (_, i) => view.getFloat32(i * 4, true));
  }

  private readError(box: Box, ref: ShardRef, error: unknown): VolumeReadError {
    const corrupt =
      error instanceof ShardIndexError ||
      error instanceof BlockSizeError ||
      zarr.isZarritaError(error, 'CodecPipelineError');
    return new VolumeReadError(
      this.location,
      OUTPUT_ARRAY_PATH,
      box,
      corrupt ? 'corrupt-chunk' : 'io',
      `shard ${ref.key} ${corrupt ? 'is damaged' : 'could not be read'} (${text(error)})`,
      {
        cause: error,
        ...(corrupt ? { advice: 'Run `tessera verify` on the job to write the shard again.' } : {}),
      },
    );
  }

  private loadDecoders(): Promise<BytesToBytes[]> {
    this.decoders ??= Promise.all(
      this.layout.codecs.slice(1).map(async (spec) => {
        const entry = await zarr.registry.get(spec.name)?.();
        if (entry === undefined) throw new TypeError(`codec "${spec.name}" is not registered`);
        return entry.fromConfig(spec.configuration ?? {}, this.chunkMetadata());
      }),
    );
    return this.decoders;
  }

  private chunkMetadata() {
    return {
      dataType: this.layout.dtype,
      shape: [this.layout.channels, ...this.layout.blockShape],
      codecs: this.layout.codecs.map((c) => ({
        name: c.name,
        configuration: c.configuration ?? {},
      })),
      fillValue: this.layout.fillValue,
    };
  }

  private get innerCount(): number {
    return this.perShard[0] * this.perShard[1] * this.perShard[2];
  }

  /** Block `coord`'s entry in its shard's index: C order over the shard's inner grid. */
  private slotOf(coord: Vec3): number {
    const r = fromFn((a) => coord[a] % this.perShard[a]);
    return (r[0] * this.perShard[1] + r[1]) * this.perShard[2] + r[2];
  }

  private refOf(shard: Vec3): ShardRef {
    return { location: this.location, key: this.shardKey(shard) };
  }

  /** The block's values as a full chunk: edge blocks are padded with the fill value. */
  private wholeChunk(box: Box, data: Dense<OutputData>): OutputData {
    const chunkBox = Box.ofShape(this.blockShape, box.start);
    if (box.equals(chunkBox)) return data.data;
    const chunk: Dense<OutputData> = {
      box: chunkBox,
      channels: this.channels,
      data:
        this.dtype === 'float32'
          ? new Float32Array(this.channels * chunkBox.size)
          : new Uint8Array(this.channels * chunkBox.size),
    };
    if (this.fillValue !== 0) fillBox(chunk, chunkBox, this.fillValue);
    copyBox(data, chunk);
    return chunk.data;
  }

  private checkData(coord: Vec3, box: Box, data: Dense<OutputData>): void {
    checkBlockData(this.location, coord, box, data, this);
  }

  private checkCoord(coord: Vec3): void {
    checkBlockCoord(this.location, coord, this.blockGrid);
  }

  private checkShard(shard: Vec3): void {
    if (!inGrid(shard, this.shardGrid))
      throw new InvalidBlockError(
        this.location,
        shard,
        `no such shard: the shard grid is [${this.shardGrid.join(', ')}]`,
      );
  }
}

/** An inner chunk that decodes to another size than a block: damaged, or not ours. */
class BlockSizeError extends Error {
  override readonly name = 'BlockSizeError';
  constructor(coord: Vec3, bytes: number, expected: number) {
    super(`block [${coord.join(', ')}] decodes to ${bytes} bytes, ${expected} expected`);
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

const text = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/** Whether `volume` is sharded: then its shards are written whole, with writeShard. */
export const isShardedOutput = (volume: OutputVolume): volume is ShardedOutput =>
  volume instanceof ShardedOutputVolume;
