// Sharded output (output.shardShape): the unit a worker hands off is the shard, one object
// holding many blocks, so a chunk writes O(1) objects however many blocks it touches.
//
//   chunk touches shards S1..Sk ──► for each: every other contributor DONE?
//       yes → assemble the shard now: its own blocks and sums from memory, the others'
//             pieces read (one object each), seam blocks blended, one shard PUT
//       no  → write its piece of the shard (finals + compressed band partials), one PUT
//   complete ──► for each shard it left a piece of: all DONE now? → assemble
//
// Contributors are added in the plan's order, as for unsharded seam blocks, so two
// assemblers of one shard write the same bytes (seam-handoff.ts has the argument). A shard
// no worker assembled is missing from the output: Verify lists it (leftoverUnits) and the
// Blend step assembles it from the pieces.

import { decodePartial, encodePartial, PartialSum, weightSums } from '../blend/index.ts';
import { gridKey, parseGridKey } from '../geometry/ids.ts';
import type { BlockDescriptor, ChunkDescriptor, Plan, Vec3 } from '../geometry/index.ts';
import type { ShardBlock, ShardedOutput } from '../volume/index.ts';
import type { BlendScratch } from './blend-seams.ts';
import type { JobContext } from './context.ts';
import { finalBlock, storedOutput } from './convert.ts';
import { MissingPartialError } from './errors.ts';
import type { DamagedBlock } from './output-check.ts';
import { compressPartial, decompressPartial } from './partial-store.ts';
import { writePreviewTiles } from './preview-tiles.ts';
import { decodePiece, encodePiece, type PieceEntry, pieceKey, piecePrefix } from './shard-piece.ts';

export interface ShardUnit {
  readonly shard: Vec3;
  /** The shard's name in pieces/ and in blend items (`z_y_x` of the shard grid). */
  readonly key: string;
  /** The shard's blocks that chunks touch (inside the region). */
  readonly blocks: readonly BlockDescriptor[];
  /** Every chunk whose footprint touches one of them, in index order. */
  readonly contributors: readonly ChunkDescriptor[];
}

export function shardUnit(plan: Plan, output: ShardedOutput, shard: Vec3): ShardUnit {
  const r = output.shardBlocks(shard);
  const blocks: BlockDescriptor[] = [];
  const chunks = new Map<number, ChunkDescriptor>();
  for (let z = r.start[0]; z < r.stop[0]; z++)
    for (let y = r.start[1]; y < r.stop[1]; y++)
      for (let x = r.start[2]; x < r.stop[2]; x++) {
        const b = plan.describeBlock([z, y, x]);
        if (b.chunkRange.size === 0) continue;
        blocks.push(b);
        for (const c of plan.contributors(b)) chunks.set(c.index, c);
      }
  const contributors = [...chunks.values()].sort((a, b) => a.index - b.index);
  return { shard, key: gridKey(shard), blocks, contributors };
}

/** The shards a chunk's footprint touches, as units. */
export function shardsOfChunk(
  plan: Plan,
  output: ShardedOutput,
  chunk: ChunkDescriptor,
): ShardUnit[] {
  const shards = new Map<string, Vec3>();
  const r = chunk.blockRange;
  for (let z = r.start[0]; z < r.stop[0]; z++)
    for (let y = r.start[1]; y < r.stop[1]; y++)
      for (let x = r.start[2]; x < r.stop[2]; x++) {
        const s = output.shardOf([z, y, x]);
        shards.set(gridKey(s), s);
      }
  return [...shards.values()].map((s) => shardUnit(plan, output, s));
}

/** What a chunk holds of a shard: its finals (encoded) and its sum over its footprint. */
export interface OwnShardData {
  chunkId: string;
  finals: ReadonlyMap<string, Uint8Array>;
  sum: PartialSum;
}

const touches = (chunk: ChunkDescriptor, b: BlockDescriptor): boolean =>
  chunk.blockRange.containsPoint(b.coord);

/**
 * The chunk's blocks of `unit` made final (encoded; only this chunk touches them), with
 * their preview tiles written; seam blocks stay in `sum`.
 */
export async function ownFinals(
  ctx: JobContext,
  output: ShardedOutput,
  unit: ShardUnit,
  chunk: ChunkDescriptor,
  sum: PartialSum,
  scratch: BlendScratch,
): Promise<Map<string, Uint8Array>> {
  const stored = storedOutput(ctx.manifest);
  const finals = new Map<string, Uint8Array>();
  for (const b of unit.blocks) {
    if (b.seam || !touches(chunk, b)) continue;
    const block = finalBlock(stored, sum, b.box, b.regionBox, scratch);
    finals.set(b.key, await output.encodeBlock(b.coord, block));
    if (ctx.previewTiles) await writePreviewTiles(ctx.work, ctx.plan.region, b.coord, block);
  }
  return finals;
}

/** The chunk's piece of `unit`: its finals and its compressed band partials. */
export async function encodeOwnPiece(
  unit: ShardUnit,
  chunk: ChunkDescriptor,
  own: OwnShardData,
): Promise<Uint8Array> {
  const entries = new Map<string, PieceEntry & { coord: Vec3 }>();
  for (const b of unit.blocks) {
    if (!touches(chunk, b)) continue;
    if (!b.seam) {
      entries.set(b.key, { coord: b.coord, kind: 'final', bytes: own.finals.get(b.key)! });
      continue;
    }
    const band = encodePartial(own.sum, b.box.intersect(chunk.footprint));
    entries.set(b.key, { coord: b.coord, kind: 'partial', bytes: await compressPartial(band) });
  }
  return encodePiece(entries);
}

/**
 * Assembles `unit` and writes it as one shard: finals as they were encoded, seam blocks
 * blended over their contributors in the plan's order. `own`, when given, stands in for
 * that chunk's piece (the last contributor, before it completes).
 */
export async function assembleShard(
  ctx: JobContext,
  output: ShardedOutput,
  unit: ShardUnit,
  scratch: BlendScratch = {},
  own?: OwnShardData,
  /** Runs just before the shard is stored (a worker's lease check: fencing). */
  beforeStore?: () => Promise<void>,
): Promise<void> {
  const channels = ctx.manifest.model.outputChannels;
  const sums = weightSums(ctx.plan, ctx.manifest.blend);
  const stored = storedOutput(ctx.manifest);
  const pieces = new Map<string, Map<string, PieceEntry>>();
  const entryOf = async (c: ChunkDescriptor, b: BlockDescriptor): Promise<PieceEntry> => {
    const key = pieceKey(unit.key, c.id);
    let piece = pieces.get(c.id);
    if (piece === undefined) {
      const bytes = await ctx.work.get(key);
      if (bytes === undefined) throw new MissingPartialError(`shard ${unit.key}`, c.id, key);
      piece = decodePiece(bytes, key);
      pieces.set(c.id, piece);
    }
    const entry = piece.get(b.key);
    if (entry === undefined) throw new MissingPartialError(b.key, c.id, key);
    return entry;
  };
  const blocks: ShardBlock[] = [];
  for (const b of unit.blocks) {
    if (!b.seam) {
      const [owner] = ctx.plan.contributors(b);
      const bytes =
        own?.chunkId === owner!.id ? own.finals.get(b.key)! : (await entryOf(owner!, b)).bytes;
      blocks.push({ coord: b.coord, data: bytes });
      continue;
    }
    const sum = new PartialSum(b.box, channels, sums, scratch.sum);
    if (sum.buffer.buffer !== scratch.sum?.buffer) scratch.sum = sum.buffer;
    for (const c of ctx.plan.contributors(b)) {
      if (own?.chunkId === c.id) {
        sum.addPartial(own.sum);
        continue;
      }
      const key = pieceKey(unit.key, c.id);
      const band = await decompressPartial((await entryOf(c, b)).bytes, key);
      sum.addPartial(decodePartial(band, key, sums));
    }
    const out = finalBlock(stored, sum, b.box, b.regionBox, scratch);
    blocks.push({ coord: b.coord, data: await output.encodeBlock(b.coord, out) });
    if (ctx.previewTiles) await writePreviewTiles(ctx.work, ctx.plan.region, b.coord, out);
  }
  await output.writeShard(unit.shard, blocks, beforeStore ? { beforeStore } : {});
}

/** The shards over the region's blocks, as a box of the shard grid. */
function regionShards(plan: Plan, output: ShardedOutput): { start: Vec3; stop: Vec3 } {
  const first = output.shardOf(plan.regionBlockAt(0));
  const last = output.shardOf(plan.regionBlockAt(plan.counts.blocks - 1));
  return { start: first, stop: [last[0] + 1, last[1] + 1, last[2] + 1] };
}

/**
 * Shards of the region missing from the output: what no last contributor assembled. One
 * listing per z-slab of shards where the store lists, else one index read per shard.
 */
export async function unassembledShards(
  ctx: JobContext,
  output: ShardedOutput,
): Promise<ShardUnit[]> {
  const { start, stop } = regionShards(ctx.plan, output);
  const store = ctx.outputStore;
  const out: ShardUnit[] = [];
  for (let z = start[0]; z < stop[0]; z++) {
    let listed: Set<string> | undefined;
    if (store.list) {
      const first = output.shardKey([z, start[1], start[2]]);
      const prefix = first.slice(0, first.lastIndexOf('/', first.lastIndexOf('/') - 1) + 1);
      listed = new Set();
      for await (const k of store.list(prefix)) listed.add(k);
    }
    for (let y = start[1]; y < stop[1]; y++)
      for (let x = start[2]; x < stop[2]; x++) {
        const s: Vec3 = [z, y, x];
        const there = listed
          ? listed.has(output.shardKey(s))
          : (await output.shardIndex(s)) !== undefined;
        if (there) continue;
        const unit = shardUnit(ctx.plan, output, s);
        if (unit.blocks.length > 0) out.push(unit);
      }
  }
  return out;
}

/** The unit a leftover key names (a shard of the grid). */
export function shardUnitOf(ctx: JobContext, output: ShardedOutput, key: string): ShardUnit {
  return shardUnit(ctx.plan, output, parseGridKey(key, output.shardGrid, 'shard'));
}

/**
 * Pieces lost from shards no worker assembled: a DONE contributor's piece that is missing
 * means its data is gone, so its chunk must run again (each block of the shard it touches
 * is reported, under the piece's key, for repairPlan to map back to chunks).
 */
export async function lostPieces(ctx: JobContext, output: ShardedOutput): Promise<DamagedBlock[]> {
  const lost: DamagedBlock[] = [];
  for (const unit of await unassembledShards(ctx, output)) {
    const prefix = piecePrefix(unit.key);
    const there = new Set<string>();
    if (ctx.work.list) for await (const k of ctx.work.list(prefix)) there.add(k);
    for (const c of unit.contributors) {
      const key = pieceKey(unit.key, c.id);
      const present = ctx.work.list ? there.has(key) : (await ctx.work.get(key)) !== undefined;
      if (present) continue;
      for (const b of unit.blocks)
        if (touches(c, b))
          lost.push({
            kind: 'block',
            level: 0,
            coord: b.coord,
            key,
            problem: 'missing',
            detail: `the piece of chunk ${c.id} for shard ${unit.key} is gone`,
          });
    }
  }
  return lost;
}
