// The seam figures of issue 16 at the default layout, scaled down: what a chunk costs in
// S3 PUTs, partial bytes and ledger writes once workers blend the seams they are last for.
//
// The real pipeline runs in memory (openJob → planJob → runWorker → the Blend step over
// what the workers left), the way test/helpers/chunked.ts runs it, through a Store
// wrapper that counts each set() and its bytes by what the key is, and a Ledger wrapper
// that counts each call by what it does. Nothing here re-derives what the pipeline
// writes: every figure is a count of calls the pipeline made.
//
//   defaults   patch 128  overlap 32  chunk 512  block 120   (pitch 480 = 5 patches × 96 = 4 blocks)
//   ÷ scale 4  patch  32  overlap  8  chunk 128  block  30   (pitch 120 = 5 patches × 24 = 4 blocks)
//
// Every ratio the figures depend on (pitch ÷ block, band ÷ block, chunk ÷ pitch) is the
// defaults', so PUTs per chunk and partial bytes ÷ output bytes are those of the default
// layout; only the chunk count is small. The volume is k chunks per axis, each full-size:
// k × pitch + overlap.

import { Plan, type Vec3 } from '../core/geometry/index.ts';
import type { PatchModel } from '../core/infer/index.ts';
import { type Ledger, MemoryLedger } from '../core/ledger/index.ts';
import { parseManifest } from '../core/manifest/parse.ts';
import {
  ensureOutput,
  finishLeftovers,
  leftoverUnits,
  openJob,
  planJob,
  runWorker,
} from '../core/pipeline/index.ts';
import {
  type AbsolutePath,
  type ListedObject,
  MemoryStore,
  type RangeQuery,
  registerStoreScheme,
  type Store,
  unregisterStoreScheme,
} from '../core/store/index.ts';
import { defaultShardShape, OUTPUT_ARRAY_PATH } from '../core/volume/index.ts';
import { writeZarrArray } from '../core/volume/write-array.ts';
import { benchVolume } from './fixture.ts';

/** The manifest's default layout (README, "The manifest (v1)"). */
const DEFAULT_GRID = {
  patchShape: [128, 128, 128] as Vec3,
  overlap: [32, 32, 32] as Vec3,
  chunkShape: [512, 512, 512] as Vec3,
};
export const DEFAULT_LAYOUT = {
  ...DEFAULT_GRID,
  // The block the planner picks for it when the manifest names none (the pitch's divisor).
  blockShape: new Plan({ volumeShape: [4096, 4096, 4096], ...DEFAULT_GRID }).blockShape,
};

/** What one kind of key received: set() calls and their bytes. */
export interface Writes {
  puts: number;
  bytes: number;
}

type KeyKind = 'outputBlocks' | 'outputMetadata' | 'partials' | 'pieces' | 'workOther';

/**
 * The bytes of a shard piece (core/pipeline/shard-piece.ts: "TPC1" | u32 n | n × (i32[3] |
 * u8 kind, 0 final 1 partial | u32 length | bytes)) that are seam partials; undefined for
 * bytes of another format. Read here, not through the piece codec, so the figure is
 * the bytes as stored.
 */
function partialBytesOfPiece(b: Uint8Array): number | undefined {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.byteLength < 8 || view.getUint32(0, true) !== 0x31435054) return undefined;
  let at = 8;
  let partial = 0;
  for (let i = view.getUint32(4, true); i > 0; i--) {
    if (at + 17 > b.byteLength) return undefined;
    const length = view.getUint32(at + 13, true);
    if (view.getUint8(at + 12) === 1) partial += length;
    at += 17 + length;
  }
  return at === b.byteLength ? partial : undefined;
}

/** A Store that counts every set() by the kind of its key (see `kind`). */
class CountingStore implements Store {
  readonly writes = new Map<KeyKind, Writes>();
  /**
   * Partials and shard pieces by the chunk that wrote them (the key's last segment,
   * `<chunk id>.bin`).
   */
  readonly partialsByChunk = new Map<string, Writes>();
  /** Of the pieces' bytes, those of seam partials (the rest are blocks final already). */
  piecePartialBytes = 0;
  unreadablePieces = 0;
  readonly location: string | undefined;
  readonly getRange?: Store['getRange'];
  readonly delete?: Store['delete'];
  readonly list?: Store['list'];
  readonly listWithSizes?: Store['listWithSizes'];

  constructor(
    private readonly inner: Store,
    private readonly kind: (key: AbsolutePath) => KeyKind,
  ) {
    this.location = inner.location;
    const i = inner;
    if (i.getRange) this.getRange = (key: AbsolutePath, r: RangeQuery) => i.getRange!(key, r);
    if (i.delete) this.delete = (key: AbsolutePath) => i.delete!(key);
    if (i.list) this.list = (prefix: string): AsyncIterable<AbsolutePath> => i.list!(prefix);
    if (i.listWithSizes)
      this.listWithSizes = (prefix: string): AsyncIterable<ListedObject> =>
        i.listWithSizes!(prefix);
  }

  get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    return this.inner.get(key);
  }

  set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    const k = this.kind(key);
    const w = this.writes.get(k) ?? { puts: 0, bytes: 0 };
    w.puts++;
    w.bytes += value.byteLength;
    this.writes.set(k, w);
    if (k === 'pieces') {
      const partial = partialBytesOfPiece(value);
      if (partial === undefined) this.unreadablePieces++;
      else this.piecePartialBytes += partial;
    }
    if (k === 'partials' || k === 'pieces') {
      const chunk = key.slice(key.lastIndexOf('/') + 1).replace(/\.bin$/, '');
      const c = this.partialsByChunk.get(chunk) ?? { puts: 0, bytes: 0 };
      c.puts++;
      c.bytes += value.byteLength;
      this.partialsByChunk.set(chunk, c);
    }
    return this.inner.set(key, value);
  }

  of(kind: KeyKind): Writes {
    return this.writes.get(kind) ?? { puts: 0, bytes: 0 };
  }
}

const LEDGER_WRITES = ['claim', 'heartbeat', 'complete', 'release', 'fail'] as const;
const LEDGER_READS = ['statuses', 'counts', 'getJob', 'list'] as const;

/**
 * A Ledger that counts the calls workers make. A claim that finds nothing is still a
 * conditional write request on DynamoDB, so every claim call counts.
 */
function countingLedger(inner: Ledger): { ledger: Ledger; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const ledger = new Proxy(inner, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { ledger, calls };
}

/** 1 → 2 channels, x and 1 − x: no arithmetic to speak of, so the run is the pipeline's. */
const twoChannels: PatchModel = {
  async run(batch, n, patch) {
    const v = patch[0] * patch[1] * patch[2];
    const out = new Float32Array(n * 2 * v);
    for (let b = 0; b < n; b++) {
      const src = batch.subarray(b * v, (b + 1) * v);
      out.set(src, b * 2 * v);
      const second = out.subarray(b * 2 * v + v, (b + 1) * 2 * v);
      for (let i = 0; i < v; i++) second[i] = 1 - src[i]!;
    }
    return out;
  },
};

export interface SeamsOptions {
  /** The default layout is divided by this (default 4). */
  scale?: number;
  /** Chunks per axis (default 3: the middle chunk has every seam an interior chunk has). */
  chunksPerAxis?: number;
  /** Write output.shardShape = defaultShardShape of the plan. */
  sharded: boolean;
  workers?: number;
  /** Another output block than the default ÷ scale (to try a block that divides the pitch). */
  blockShape?: Vec3;
}

export interface SeamsFigures {
  layout: { patchShape: Vec3; overlap: Vec3; chunkShape: Vec3; blockShape: Vec3; scale: number };
  volumeShape: Vec3;
  chunks: number;
  shardShape: Vec3 | null;
  /** Whether the output written is sharded (its metadata holds sharding_indexed). */
  shardedWritten: boolean;
  /** Output objects + partials + shard pieces, per chunk (target ≤ 10). */
  putsPerChunk: number;
  outputPutsPerChunk: number;
  /** Seam partials (unsharded) and shard pieces (sharded) a chunk leaves for another. */
  partialPutsPerChunk: number;
  /**
   * Bytes written for another worker to finish (partials, and shard pieces whole: their
   * final blocks too are written twice) ÷ bytes the output store holds for level 0
   * (target ≤ 0.25).
   */
  partialRatio: number;
  partialBytes: number;
  /** Of partialBytes, the seam partials alone (pieces' final blocks left out). */
  seamPartialBytes: number;
  seamPartialRatio: number;
  /** Pieces whose bytes were not the format read here (0, or seamPartialBytes is short). */
  unreadablePieces: number;
  outputBytes: number;
  /** Ledger write calls (claim, heartbeat, complete, release, fail) per chunk. */
  ledgerWritesPerChunk: number;
  /** Ledger reads per chunk (statuses: the last-contributor checks; counts, getJob, list). */
  ledgerReadsPerChunk: number;
  ledgerCalls: Record<string, number>;
  /**
   * The middle chunk, the one whose neighbours surround it on every side, as every chunk
   * of a large volume has them: the partials it wrote, and their bytes ÷ the output bytes
   * of one chunk pitch (the volume's level-0 bytes per voxel × pitch voxels). Chunks are
   * claimed in index order, so it meets what an interior chunk of a large job meets.
   */
  middleChunk: { id: string; partialPuts: number; partialBytes: number; partialRatio: number };
  /** Seam blocks the Blend step had left to blend after the workers. */
  leftoverSeamBlocks: number;
  metadataPuts: number;
  workOtherPuts: number;
  seconds: number;
}

/** Where shard pieces live in the work store (core/pipeline/shard-piece.ts). */
const PIECES = '/partials/shards/';

let runs = 0;

export async function seamsBench(o: SeamsOptions): Promise<SeamsFigures> {
  const scale = o.scale ?? 4;
  const k = o.chunksPerAxis ?? 3;
  const div = (v: Vec3): Vec3 => [v[0] / scale, v[1] / scale, v[2] / scale];
  const layout = {
    patchShape: div(DEFAULT_LAYOUT.patchShape),
    overlap: div(DEFAULT_LAYOUT.overlap),
    chunkShape: div(DEFAULT_LAYOUT.chunkShape),
    blockShape: o.blockShape ?? div(DEFAULT_LAYOUT.blockShape),
  };
  const stride = layout.patchShape.map((p, a) => p - layout.overlap[a]!);
  const perChunk = layout.chunkShape.map((c, a) =>
    Math.floor((c - layout.patchShape[a]!) / stride[a]! + 1),
  );
  const pitch = perChunk.map((n, a) => n * stride[a]!);
  const volumeShape = pitch.map((p, a) => k * p + layout.overlap[a]!) as unknown as Vec3;
  const shardShape = o.sharded
    ? defaultShardShape({
        blockShape: layout.blockShape,
        patchesPerChunk: perChunk as unknown as Vec3,
        stride: stride as unknown as Vec3,
        volumeShape,
      })
    : undefined;

  const bucket = `bench-seams-${++runs}`;
  const levelZero = `/${OUTPUT_ARRAY_PATH}/`;
  const output = new CountingStore(new MemoryStore(`s3://${bucket}/out.zarr`), (key) =>
    key.startsWith(levelZero) && !key.endsWith('zarr.json') ? 'outputBlocks' : 'outputMetadata',
  );
  const work = new CountingStore(new MemoryStore('work'), (key) =>
    key.startsWith(PIECES) ? 'pieces' : key.startsWith('/partials/') ? 'partials' : 'workOther',
  );
  const input = new MemoryStore(`s3://${bucket}/input.zarr`);
  const stores = new Map<string, Store>([
    [`s3://${bucket}/input.zarr`, input],
    [`s3://${bucket}/out.zarr`, output],
  ]);
  registerStoreScheme('s3', (url) => {
    const store = stores.get(url);
    if (!store) throw new RangeError(`bench seams: no store for ${url}`);
    return store;
  });
  try {
    await writeZarrArray(input, {
      data: benchVolume(volumeShape),
      shape: [...volumeShape],
      chunkShape: [64, 64, 64],
    });
    const manifest = parseManifest({
      version: 1,
      name: 'bench-seams',
      input: { url: `s3://${bucket}/input.zarr` },
      output: {
        url: `s3://${bucket}/out.zarr`,
        dtype: 'float32',
        blockShape: layout.blockShape,
        ...(shardShape ? { shardShape } : {}),
      },
      model: { url: `s3://${bucket}/model.onnx`, patchShape: layout.patchShape, outputChannels: 2 },
      overlap: layout.overlap,
      blend: 'bump',
      chunkShape: layout.chunkShape,
    });
    const ctx = await openJob(manifest, { jobId: bucket, work });
    const memory = new MemoryLedger();
    await planJob(ctx, memory);
    const chunks = ctx.plan.counts.chunks;
    const { ledger, calls } = countingLedger(memory);
    const t0 = performance.now();
    const volume = await ensureOutput(ctx);
    const workers = o.workers ?? 1;
    await Promise.all(
      Array.from({ length: workers }, (_, i) =>
        runWorker({
          ctx,
          ledger,
          output: volume,
          owner: `w${i}`,
          model: twoChannels,
          startIndex: Math.floor((i * chunks) / workers),
          batchSize: 4,
          idlePollMs: 0,
        }),
      ),
    );
    // The Blend step: what no worker finished (seam blocks, or shards when sharded).
    const leftovers = await leftoverUnits(ctx, volume);
    await finishLeftovers(ctx, volume, leftovers);
    const seconds = (performance.now() - t0) / 1000;

    let outputBytes = 0;
    for await (const { key, size } of output.listWithSizes!(levelZero))
      if (!key.endsWith('zarr.json')) outputBytes += size;
    const meta = await output.get(`${levelZero}zarr.json` as AbsolutePath);
    const shardedWritten =
      meta !== undefined && new TextDecoder().decode(meta).includes('"sharding_indexed"');
    const blocks = output.of('outputBlocks');
    const plain = work.of('partials');
    const pieces = work.of('pieces');
    const partials = { puts: plain.puts + pieces.puts, bytes: plain.bytes + pieces.bytes };
    const seamPartialBytes = plain.bytes + work.piecePartialBytes;
    const sum = (names: readonly string[]): number =>
      names.reduce((s, n) => s + (calls.get(n) ?? 0), 0);
    const middleId = ctx.plan.chunkId([Math.floor(k / 2), Math.floor(k / 2), Math.floor(k / 2)]);
    const middle = work.partialsByChunk.get(middleId) ?? { puts: 0, bytes: 0 };
    const voxels = volumeShape[0] * volumeShape[1] * volumeShape[2];
    const pitchBytes = (outputBytes / voxels) * pitch[0]! * pitch[1]! * pitch[2]!;
    return {
      layout: { ...layout, scale },
      volumeShape,
      chunks,
      shardShape: shardShape ?? null,
      shardedWritten,
      putsPerChunk: round((blocks.puts + partials.puts) / chunks),
      outputPutsPerChunk: round(blocks.puts / chunks),
      partialPutsPerChunk: round(partials.puts / chunks),
      partialRatio: round(partials.bytes / outputBytes),
      partialBytes: partials.bytes,
      seamPartialBytes,
      seamPartialRatio: round(seamPartialBytes / outputBytes),
      unreadablePieces: work.unreadablePieces,
      outputBytes,
      ledgerWritesPerChunk: round(sum(LEDGER_WRITES) / chunks),
      ledgerReadsPerChunk: round(sum(LEDGER_READS) / chunks),
      ledgerCalls: Object.fromEntries(calls),
      middleChunk: {
        id: middleId,
        partialPuts: middle.puts,
        partialBytes: middle.bytes,
        partialRatio: round(middle.bytes / pitchBytes),
      },
      leftoverSeamBlocks: leftovers.length,
      metadataPuts: output.of('outputMetadata').puts,
      workOtherPuts: work.of('workOther').puts,
      seconds: round(seconds),
    };
  } finally {
    unregisterStoreScheme('s3');
  }
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}
