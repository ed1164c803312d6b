// Output check: does the output still hold every object the finished job wrote, each
// one whole? Run by `tessera verify`, by a rerun of a SUCCEEDED job, and by the cloud
// Verify step (scope 'owned': only the blocks workers write final exist by then).
//
//   out.zarr/zarr.json                 root group                       (scope 'all')
//   out.zarr/0/zarr.json               level-0 array: Tessera's layout
//   out.zarr/0/c/0/<z>/<y>/<x>         every block meeting the region: owned ones, and
//                                      seam blocks (scope 'all'); blocks outside the
//                                      region are never written (they read as fill)
//   out.zarr/<l>/zarr.json, blocks     levels 1..L when output.pyramid asks: every block
//                                      of the level's grid                (scope 'all')
//
// Depths (each includes the one above):
//   'listing'  one listing with sizes per z-slab of blocks: finds missing objects and
//              empty ones, reads no block. Cannot see a block cut short mid-frame.
//   'frames'   (default) reads each block and walks its zstd frame without decoding it:
//              the magic, Frame_Content_Size = the block's decoded size (every block is
//              written whole, edge blocks padded, so one size per level), and block
//              headers that end exactly at the object's end. Finds every truncation.
//   'decode'   (`--full`) decodes each block with the array's codecs and checks the
//              decoded length (channels × block voxels × dtype size).
// None of them can tell a block whose values were changed in place by a well-formed
// frame (that would need the bytes recomputed): the check is for loss, not tampering.
//
// Expected keys and sizes come from the job's plan and manifest, never from the metadata
// on disk, so a damaged zarr.json does not hide the blocks below it.

import * as zarr from 'zarrita';
import { Box, type Vec3 } from '../geometry/index.ts';
import { type AbsolutePath, describeStore, type Store } from '../store/index.ts';
import type { CodecSpec } from '../volume/block-codec.ts';
import { ShardIndexError } from '../volume/errors.ts';
import { isObject } from '../volume/json.ts';
import {
  arrayMetadata,
  type Layout,
  type OutputVolumeOptions,
  parseArrayMetadata,
  sameJson,
} from '../volume/output-layout.ts';
import { type PyramidLevel, pyramidLevels } from '../volume/pyramid.ts';
import { decodeShardIndex, indexByteLength, type ShardIndex } from '../volume/shard.ts';
import '../volume/zstd.ts'; // the zstd codec zarrita decodes with
import { outputFormat } from '../volume/precomputed/output.ts';
import type { JobContext } from './context.ts';
import { storedOutput } from './convert.ts';
import { checkPrecomputedOutput } from './precomputed-output-check.ts';

export type CheckDepth = 'listing' | 'frames' | 'decode';
export type CheckScope = 'all' | 'owned' | 'seams';
export type DamageProblem = 'missing' | 'truncated' | 'undecodable' | 'wrong-size';

/** A storage block of level `level` (0: the result, 1..L: the pyramid) that is not whole. */
export interface DamagedBlock {
  readonly kind: 'block';
  readonly level: number;
  readonly coord: Vec3;
  readonly key: AbsolutePath;
  readonly problem: DamageProblem;
  readonly detail: string;
}

/** A zarr.json (a level's array, or the root group) that is missing or not what the job wrote. */
export interface DamagedMetadata {
  readonly kind: 'metadata';
  readonly level: number | 'root';
  readonly key: AbsolutePath;
  readonly problem: DamageProblem;
  readonly detail: string;
}

export type DamagedObject = DamagedBlock | DamagedMetadata;

export interface OutputCheckOptions {
  /** How closely each block is looked at (see the module header); default 'frames'. */
  readonly depth?: CheckDepth;
  /** Shorthand for depth 'decode' (`tessera verify --full`). */
  readonly full?: boolean;
  /** Levels to check (default: 0 and every pyramid level the manifest asks for). */
  readonly levels?: readonly number[];
  /**
   * 'owned': level 0's metadata and owned blocks only (the cloud Verify step); 'seams':
   * level 0's metadata and seam blocks only (what is left to blend). Default 'all'.
   */
  readonly scope?: CheckScope;
  /** Blocks read at once (default 8). */
  readonly concurrency?: number;
  /** Called as objects are checked, with the running count and the total. */
  readonly onProgress?: (checked: number, total: number) => void;
}

export interface OutputCheckResult {
  /** Objects checked (blocks and metadata documents). */
  readonly checked: number;
  readonly damaged: DamagedObject[];
  readonly depth: CheckDepth;
}

/** The part of a job the check needs. */
export type OutputCheckContext = Pick<
  JobContext,
  'plan' | 'manifest' | 'outputStore' | 'input' | 'shardShape'
>;

const ROOT_KEY: AbsolutePath = '/zarr.json';

/** Checks the output of a finished job; the objects that are missing or not whole. */
export async function checkOutput(
  ctx: OutputCheckContext,
  o: OutputCheckOptions = {},
): Promise<OutputCheckResult> {
  if (outputFormat(ctx.manifest.output) === 'precomputed') return checkPrecomputedOutput(ctx, o);
  const depth: CheckDepth = o.full ? 'decode' : (o.depth ?? 'frames');
  const scope = o.scope ?? 'all';
  const store = ctx.outputStore;
  const levels = expectedLevels(ctx).filter(
    (l) =>
      (scope === 'all' || l.index === 0) && (o.levels === undefined || o.levels.includes(l.index)),
  );
  const total =
    (scope === 'all' ? 1 : 0) +
    levels.reduce((n, l) => n + 1 + (l.index === 0 ? level0Count(ctx, scope) : l.blockCount), 0);
  const damaged: DamagedObject[] = [];
  let checked = 0;
  const tick = (n = 1): void => {
    checked += n;
    o.onProgress?.(checked, total);
  };

  if (scope === 'all') {
    const problem = await checkRootGroup(store);
    if (problem) damaged.push({ kind: 'metadata', level: 'root', key: ROOT_KEY, ...problem });
    tick();
  }
  for (const level of levels) {
    const metaKey = `/${level.index}/zarr.json` as AbsolutePath;
    const problem = await checkArrayMetadata(store, metaKey, level.options);
    if (problem) damaged.push({ kind: 'metadata', level: level.index, key: metaKey, ...problem });
    tick();
    if (level.shards) {
      await checkShards(ctx, level, level.shards, { scope, depth, damaged, tick });
      continue;
    }
    const reader = new BlockReader(store, level, depth);
    for (const slab of blockSlabs(ctx, level, scope)) {
      const listed = await listSlab(store, slab.prefix);
      const queue = slab.coords[Symbol.iterator]();
      const lane = async (): Promise<void> => {
        for (let r = queue.next(); !r.done; r = queue.next()) {
          const coord = r.value;
          const key = level.key(coord);
          const found = await reader.check(key, listed);
          if (found) damaged.push({ kind: 'block', level: level.index, coord, key, ...found });
          tick();
        }
      };
      await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 8) }, lane));
    }
  }
  damaged.sort(byLevelThenKey);
  return { checked, damaged, depth };
}

// --- what the output must hold ------------------------------------------------------------

interface ExpectedLevel {
  readonly index: number;
  readonly level: PyramidLevel;
  /** The array metadata Tessera writes for this level (owner attributes aside). */
  readonly options: OutputVolumeOptions;
  readonly layout: Layout;
  readonly blockGrid: Vec3;
  readonly blockCount: number;
  /** Bytes of one decoded block (edge blocks are padded to the full block). */
  readonly decodedBytes: number;
  key(coord: Vec3): AbsolutePath;
  /** Level 0 of a sharded output: blocks per shard per axis. */
  readonly shards?: Vec3;
}

/** Level 0 and the pyramid levels finalize writes, from the plan and manifest alone. */
export function expectedLevels(
  ctx: Pick<OutputCheckContext, 'plan' | 'manifest' | 'input' | 'shardShape'>,
) {
  const { plan, manifest } = ctx;
  const channels = storedOutput(manifest).channels;
  const dtype = manifest.output.dtype;
  const levels = pyramidLevels(
    plan.volumeShape,
    manifest.output.pyramid ?? 0,
    ctx.input.voxelSize ?? undefined,
  );
  return levels.map((level, index): ExpectedLevel => {
    // Pyramid levels keep level 0's block shape, clipped to the level (pyramid.ts).
    const blockShape = level.shape.map((s, a) =>
      index === 0 ? plan.blockShape[a]! : Math.min(plan.blockShape[a]!, s),
    ) as unknown as Vec3;
    const shardShape = index === 0 ? ctx.shardShape : undefined;
    const options: OutputVolumeOptions = {
      shape: level.shape,
      channels,
      dtype,
      blockShape,
      ...(shardShape ? { shardShape } : {}),
    };
    const shards = shardShape?.map((s, a) => s / blockShape[a]!) as Vec3 | undefined;
    const parsed = parseArrayMetadata(arrayMetadata(options));
    if (!parsed.ok) throw new TypeError(`Tessera's own metadata does not parse: ${parsed.detail}`);
    const layout = parsed.layout;
    const blockGrid = level.shape.map((s, a) => Math.ceil(s / blockShape[a]!)) as unknown as Vec3;
    return {
      index,
      level,
      options,
      layout,
      blockGrid,
      blockCount: blockGrid[0] * blockGrid[1] * blockGrid[2],
      decodedBytes:
        channels * blockShape[0] * blockShape[1] * blockShape[2] * (dtype === 'float32' ? 4 : 1),
      key: (c) =>
        `/${index}/${layout.chunkKey([0, ...(shards ? c.map((v, a) => Math.floor(v / shards[a]!)) : c)])}` as AbsolutePath,
      ...(shards ? { shards } : {}),
    };
  });
}

function level0Count(ctx: OutputCheckContext, scope: CheckScope): number {
  const { counts } = ctx.plan;
  return scope === 'owned'
    ? counts.ownedBlocks
    : scope === 'seams'
      ? counts.seamBlocks
      : counts.blocks;
}

interface Slab {
  /** The key prefix that lists exactly this slab's blocks (one z of the block grid). */
  readonly prefix: string;
  readonly coords: Iterable<Vec3>;
}

/**
 * The blocks a level must hold, one z-slab at a time: a listing per slab keeps memory at
 * one slab's keys whatever the volume (a petavoxel output has 10^7 blocks).
 */
function* blockSlabs(
  ctx: OutputCheckContext,
  level: ExpectedLevel,
  scope: CheckScope,
): Generator<Slab> {
  const { plan } = ctx;
  let zRange: [number, number];
  let yxRange: Box;
  if (level.index === 0) {
    const first = plan.regionBlockAt(0);
    const last = plan.regionBlockAt(plan.counts.blocks - 1);
    zRange = [first[0], last[0] + 1];
    yxRange = new Box([0, first[1], first[2]], [1, last[1] + 1, last[2] + 1]);
  } else {
    zRange = [0, level.blockGrid[0]];
    yxRange = Box.ofShape([1, level.blockGrid[1], level.blockGrid[2]]);
  }
  for (let z = zRange[0]; z < zRange[1]; z++) {
    const key = level.key([z, 0, 0]);
    // '/l/c/0/z/0/0' → '/l/c/0/z/': the slab's own directory.
    const prefix = key.slice(0, key.lastIndexOf('/', key.lastIndexOf('/') - 1) + 1);
    const coords = function* (): Generator<Vec3> {
      for (let y = yxRange.start[1]; y < yxRange.stop[1]; y++)
        for (let x = yxRange.start[2]; x < yxRange.stop[2]; x++) {
          const c: Vec3 = [z, y, x];
          if (
            level.index === 0 &&
            scope !== 'all' &&
            plan.describeBlock(c).seam !== (scope === 'seams')
          )
            continue;
          yield c;
        }
    };
    yield { prefix, coords: coords() };
  }
}

/**
 * Level 0 of a sharded output, shard by shard: each shard the region's blocks fall in
 * must be there (one listing per z-slab of shards), with an index whose CRC-32C holds
 * ('frames' and 'decode') and, for each of its region blocks, an entry that is a whole
 * zstd frame. A damaged shard reports each of its region blocks (same key), so a repair
 * re-runs the chunks that touch them. Scopes 'owned' and 'seams' (Verify) skip missing
 * shards: a shard no worker assembled is the Blend step's (leftoverUnits), not damage.
 */
async function checkShards(
  ctx: OutputCheckContext,
  level: ExpectedLevel,
  perShard: Vec3,
  o: {
    scope: CheckScope;
    depth: CheckDepth;
    damaged: DamagedObject[];
    tick: (n?: number) => void;
  },
): Promise<void> {
  const { plan } = ctx;
  const store = ctx.outputStore;
  const first = plan.regionBlockAt(0);
  const last = plan.regionBlockAt(plan.counts.blocks - 1);
  const shardOf = (c: Vec3): Vec3 =>
    c.map((v, a) => Math.floor(v / perShard[a]!)) as unknown as Vec3;
  const s0 = shardOf(first);
  const s1 = shardOf(last);
  const inner = perShard[0] * perShard[1] * perShard[2];
  const wanted = (b: Vec3): boolean => {
    const d = plan.describeBlock(b);
    if (d.chunkRange.size === 0) return false;
    return o.scope === 'all' || d.seam === (o.scope === 'seams');
  };
  for (let z = s0[0]; z <= s1[0]; z++) {
    const slabKey = level.key([z * perShard[0], first[1], first[2]]);
    const prefix = slabKey.slice(0, slabKey.lastIndexOf('/', slabKey.lastIndexOf('/') - 1) + 1);
    const listed = await listSlab(store, prefix);
    for (let y = s0[1]; y <= s1[1]; y++)
      for (let x = s0[2]; x <= s1[2]; x++) {
        const shard: Vec3 = [z, y, x];
        const blocks: Vec3[] = [];
        for (let bz = z * perShard[0]; bz < (z + 1) * perShard[0]; bz++)
          for (let by = y * perShard[1]; by < (y + 1) * perShard[1]; by++)
            for (let bx = x * perShard[2]; bx < (x + 1) * perShard[2]; bx++)
              if (bz <= last[0] && by <= last[1] && bx <= last[2] && wanted([bz, by, bx]))
                blocks.push([bz, by, bx]);
        if (blocks.length === 0) continue;
        const key = level.key(blocks[0]!);
        // A shard is one object: damage to any block of it is a repair of all of them.
        const found = new Map<string, NonNullable<Finding>>();
        const report = (coord: Vec3, f: NonNullable<Finding>): void => {
          found.set(coord.join('_'), f);
        };
        const flush = (): void => {
          const first = found.values().next().value;
          if (first === undefined) return;
          for (const coord of blocks)
            o.damaged.push({
              kind: 'block',
              level: level.index,
              coord,
              key,
              ...(found.get(coord.join('_')) ?? {
                problem: first.problem,
                detail: `in a damaged shard: ${first.detail}`,
              }),
            });
        };
        const present =
          listed !== undefined ? listed.has(key) : (await store.get(key)) !== undefined;
        if (!present) {
          if (o.scope === 'all')
            for (const b of blocks)
              report(b, { problem: 'missing', detail: 'no shard at this key' });
          flush();
          o.tick(blocks.length);
          continue;
        }
        if (o.depth !== 'listing') {
          const bytes = await store.get(key);
          const ref = { location: describeStore(store), key };
          let index: ShardIndex | undefined;
          try {
            if (bytes === undefined) throw new TypeError('gone');
            const tail = bytes.subarray(Math.max(0, bytes.length - indexByteLength(inner)));
            index = decodeShardIndex(tail, inner, ref, bytes.length);
          } catch (error) {
            if (!(error instanceof ShardIndexError || error instanceof TypeError)) throw error;
            for (const b of blocks)
              report(b, { problem: 'undecodable', detail: `shard index: ${error.message}` });
          }
          if (index && bytes)
            for (const b of blocks) {
              const slot =
                ((b[0] - shard[0] * perShard[0]) * perShard[1] + (b[1] - shard[1] * perShard[1])) *
                  perShard[2] +
                (b[2] - shard[2] * perShard[2]);
              const range = index.range(slot);
              if (range === undefined) {
                report(b, {
                  problem: 'missing',
                  detail: `shard ${shard.join('_')} holds no block at [${b.join(', ')}]`,
                });
                continue;
              }
              const frame = zstdFrameProblem(
                bytes.subarray(range.offset, range.offset + range.length),
                level.decodedBytes,
              );
              if (frame) report(b, frame);
            }
        }
        flush();
        o.tick(blocks.length);
      }
  }
}

/** Keys (with sizes when the store lists them) under `prefix`; undefined if it cannot list. */
async function listSlab(
  store: Store,
  prefix: string,
): Promise<Map<AbsolutePath, number | undefined> | undefined> {
  const out = new Map<AbsolutePath, number | undefined>();
  if (store.listWithSizes) {
    for await (const o of store.listWithSizes(prefix)) out.set(o.key, o.size);
    return out;
  }
  if (store.list) {
    for await (const key of store.list(prefix)) out.set(key, undefined);
    return out;
  }
  return undefined;
}

// --- one block --------------------------------------------------------------------------

type Finding = { problem: DamageProblem; detail: string } | undefined;

class BlockReader {
  private decoders: Promise<{ decode(b: Uint8Array): Promise<Uint8Array> }[]> | undefined;

  constructor(
    private readonly store: Store,
    private readonly level: ExpectedLevel,
    private readonly depth: CheckDepth,
  ) {}

  async check(key: AbsolutePath, listed: Map<AbsolutePath, number | undefined> | undefined) {
    if (listed !== undefined && !listed.has(key))
      return { problem: 'missing', detail: 'no object at this key' } as const;
    const size = listed?.get(key);
    if (size !== undefined && size < MIN_FRAME_BYTES)
      return {
        problem: 'truncated',
        detail: `${size} bytes, fewer than the smallest zstd frame (${MIN_FRAME_BYTES})`,
      } as const;
    if (this.depth === 'listing') {
      if (listed !== undefined) return undefined;
      // A store that cannot list: one byte tells presence.
      const probe = this.store.getRange
        ? await this.store.getRange(key, { offset: 0, length: 1 })
        : await this.store.get(key);
      return probe === undefined
        ? ({ problem: 'missing', detail: 'no object at this key' } as const)
        : undefined;
    }
    const bytes = await this.store.get(key);
    if (bytes === undefined)
      return { problem: 'missing', detail: 'no object at this key' } as const;
    const frame = zstdFrameProblem(bytes, this.level.decodedBytes);
    if (frame !== undefined || this.depth === 'frames') return frame;
    return this.decode(bytes);
  }

  private async decode(bytes: Uint8Array): Promise<Finding> {
    let decoded = bytes;
    try {
      for (const codec of await this.load()) decoded = await codec.decode(decoded);
    } catch (error) {
      // The codec's own words: a damaged frame is what this check looks for.
      if (!(error instanceof Error)) throw error;
      return { problem: 'undecodable', detail: `decoding failed: ${error.message}` };
    }
    if (decoded.byteLength !== this.level.decodedBytes)
      return {
        problem: 'wrong-size',
        detail: `decodes to ${decoded.byteLength} bytes, a block of this level is ${this.level.decodedBytes}`,
      };
    return undefined;
  }

  private load() {
    const meta = {
      dataType: this.level.options.dtype,
      shape: [this.level.options.channels, ...this.level.options.blockShape],
      codecs: this.level.layout.codecs.map((c: CodecSpec) => ({
        name: c.name,
        configuration: c.configuration ?? {},
      })),
      fillValue: 0,
    };
    this.decoders ??= Promise.all(
      this.level.layout.codecs.slice(1).map(async (spec) => {
        const entry = await zarr.registry.get(spec.name)?.();
        if (entry === undefined) throw new TypeError(`codec "${spec.name}" is not registered`);
        return entry.fromConfig(spec.configuration ?? {}, meta as never) as {
          decode(b: Uint8Array): Promise<Uint8Array>;
        };
      }),
    ).then((list) => list.reverse());
    return this.decoders;
  }
}

// --- zstd frame structure (RFC 8878 §3.1.1), walked without decoding ----------------------

const ZSTD_MAGIC = 0xfd2fb528;
/** Magic, frame header descriptor, one block header: no frame is shorter. */
export const MIN_FRAME_BYTES = 8;

/**
 * Why `bytes` is not one whole zstd frame of `decodedBytes` bytes, or undefined. Reads
 * the frame header and every block header (3 bytes each, ≤ 128 KiB apart); decodes nothing.
 */
export function zstdFrameProblem(bytes: Uint8Array, decodedBytes: number): Finding {
  const n = bytes.byteLength;
  const cut = (detail: string): Finding => ({ problem: 'truncated', detail });
  if (n < MIN_FRAME_BYTES)
    return cut(`${n} bytes, fewer than the smallest zstd frame (${MIN_FRAME_BYTES})`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, n);
  const magic = view.getUint32(0, true);
  if (magic !== ZSTD_MAGIC)
    return {
      problem: 'undecodable',
      detail: `not a zstd frame (it starts 0x${magic.toString(16).padStart(8, '0')})`,
    };
  const fhd = bytes[4]!;
  if ((fhd >> 3) & 1)
    return { problem: 'undecodable', detail: 'the zstd frame header sets its reserved bit' };
  const singleSegment = (fhd >> 5) & 1;
  const checksum = (fhd >> 2) & 1;
  const dictBytes = [0, 1, 2, 4][fhd & 3]!;
  const fcsBytes = [singleSegment ? 1 : 0, 2, 4, 8][fhd >> 6]!;
  const fcsAt = 5 + (singleSegment ? 0 : 1) + dictBytes;
  let at = fcsAt + fcsBytes;
  if (at > n) return cut(`${n} bytes end inside the zstd frame header (${at} bytes)`);
  if (fcsBytes > 0) {
    const size =
      fcsBytes === 1
        ? view.getUint8(fcsAt)
        : fcsBytes === 2
          ? view.getUint16(fcsAt, true) + 256
          : fcsBytes === 4
            ? view.getUint32(fcsAt, true)
            : Number(view.getBigUint64(fcsAt, true));
    if (size !== decodedBytes)
      return {
        problem: 'wrong-size',
        detail: `its frame holds ${size} bytes decoded, a block of this level is ${decodedBytes}`,
      };
  }
  for (let last = 0; !last; ) {
    if (at + 3 > n) return cut(`${n} bytes, the frame's next block header is at byte ${at}`);
    const header = bytes[at]! | (bytes[at + 1]! << 8) | (bytes[at + 2]! << 16);
    last = header & 1;
    const type = (header >> 1) & 3;
    if (type === 3)
      return { problem: 'undecodable', detail: `zstd block at byte ${at} has the reserved type` };
    at += 3 + (type === 1 ? 1 : header >>> 3);
    if (at > n) return cut(`${n} bytes, the frame's blocks need ${at + (checksum ? 4 : 0)}`);
  }
  if (checksum) at += 4;
  if (at > n) return cut(`${n} bytes, the frame with its checksum needs ${at}`);
  if (at < n)
    return { problem: 'undecodable', detail: `${n - at} stray bytes follow the zstd frame` };
  return undefined;
}

// --- metadata ------------------------------------------------------------------------------

async function readDoc(
  store: Store,
  key: AbsolutePath,
): Promise<{ doc: unknown } | { problem: DamageProblem; detail: string }> {
  const bytes = await store.get(key);
  if (bytes === undefined) return { problem: 'missing', detail: 'no object at this key' };
  try {
    return { doc: JSON.parse(new TextDecoder().decode(bytes)) };
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { problem: 'undecodable', detail: `not valid JSON (${error.message})` };
  }
}

async function checkRootGroup(store: Store): Promise<Finding> {
  const read = await readDoc(store, ROOT_KEY);
  if (!('doc' in read)) return read;
  const doc = read.doc;
  if (!isObject(doc) || doc.zarr_format !== 3 || doc.node_type !== 'group')
    return { problem: 'undecodable', detail: 'not a Zarr v3 group document' };
  return undefined;
}

async function checkArrayMetadata(
  store: Store,
  key: AbsolutePath,
  want: OutputVolumeOptions,
): Promise<Finding> {
  const read = await readDoc(store, key);
  if (!('doc' in read)) return read;
  const parsed = parseArrayMetadata(read.doc);
  if (!parsed.ok) return { problem: 'undecodable', detail: parsed.detail };
  const have = parsed.layout;
  const fields: [string, unknown, unknown][] = [
    ['shape', want.shape, have.shape],
    ['channel count', want.channels, have.channels],
    ['data type', want.dtype, have.dtype],
    ['block shape', want.blockShape, have.blockShape],
    ['fill value', want.fillValue ?? 0, have.fillValue],
  ];
  for (const [field, expected, actual] of fields)
    if (!sameJson(expected, actual))
      return {
        problem: 'wrong-size',
        detail: `its ${field} is ${JSON.stringify(actual)}, the job's is ${JSON.stringify(expected)}`,
      };
  return undefined;
}

function byLevelThenKey(a: DamagedObject, b: DamagedObject): number {
  const la = a.level === 'root' ? -1 : a.level;
  const lb = b.level === 'root' ? -1 : b.level;
  if (la !== lb) return la - lb;
  if (a.kind !== b.kind) return a.kind === 'metadata' ? -1 : 1;
  if (a.kind === 'block' && b.kind === 'block')
    for (let i = 0; i < 3; i++) if (a.coord[i] !== b.coord[i]) return a.coord[i]! - b.coord[i]!;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** One line per damaged object, at most `limit`, then how many more. */
export function describeDamage(damaged: readonly DamagedObject[], limit = 20): string[] {
  const lines = damaged
    .slice(0, limit)
    .map(
      (d) =>
        `  ${d.problem.padEnd(11)} ${d.key.slice(1)}${d.kind === 'block' ? ` (level ${d.level} block ${d.coord.join(',')})` : ''}: ${d.detail}`,
    );
  if (damaged.length > limit) lines.push(`  ... and ${damaged.length - limit} more`);
  return lines;
}
