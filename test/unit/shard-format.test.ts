// The sharded output format (core/volume/shard.ts, sharded-output.ts, output-layout.ts):
// shards Tessera writes are read back by zarrita's own sharding reader (an independent
// implementation), shards written by hand in Python from the spec are read by Tessera
// (test/fixtures/shard/generate.py), CRC-32C against published check values, damaged
// indexes refused by name, deterministic bytes, and one object per shard.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as zarr from 'zarrita';
import type { Dense } from '../../core/array/dense.ts';
import { Box, Plan, type Vec3 } from '../../core/geometry/index.ts';
import { safeParseManifest } from '../../core/manifest/index.ts';
import { type AbsolutePath, LocalStore, MemoryStore, type Store } from '../../core/store/index.ts';
import { crc32c } from '../../core/volume/crc32c.ts';
import {
  OutputMismatchError,
  ShardedWriteError,
  ShardIndexError,
  VolumeReadError,
} from '../../core/volume/errors.ts';
import { createOutputVolume, openOutputVolume } from '../../core/volume/output.ts';
import {
  arrayMetadata,
  defaultShardShape,
  type OutputVolumeOptions,
} from '../../core/volume/output-layout.ts';
import { decodeShardIndex, readShardIndex } from '../../core/volume/shard.ts';
import { isShardedOutput, type ShardedOutput } from '../../core/volume/sharded-output.ts';

const FIXTURES = new URL('../fixtures/shard/', import.meta.url);

// --- a small sharded output, its values defined here -------------------------------------
//
// Volume [5, 6, 7] (z, y, x), 2 channels, blocks [2, 3, 4], shards [4, 6, 8] = 2×2×2
// blocks: shard grid [2, 1, 1], block grid [3, 2, 2]. Shard [1, 0, 0] is clipped by the
// volume in z (its second layer of blocks lies outside), and every block touching x = 7
// or z = 5 is an edge block.
const SHAPE: Vec3 = [5, 6, 7];
const BLOCK: Vec3 = [2, 3, 4];
const SHARD: Vec3 = [4, 6, 8];
const C = 2;
const value = (c: number, z: number, y: number, x: number) =>
  c * 1000 + z * 100 + y * 10 + x + 0.25;

const options = (o: Partial<OutputVolumeOptions> = {}): OutputVolumeOptions => ({
  shape: SHAPE,
  channels: C,
  dtype: 'float32',
  blockShape: BLOCK,
  shardShape: SHARD,
  ...o,
});

function blockBox(coord: Vec3): Box {
  const start: Vec3 = [coord[0] * BLOCK[0], coord[1] * BLOCK[1], coord[2] * BLOCK[2]];
  return new Box(start, [
    Math.min(start[0] + BLOCK[0], SHAPE[0]),
    Math.min(start[1] + BLOCK[1], SHAPE[1]),
    Math.min(start[2] + BLOCK[2], SHAPE[2]),
  ]);
}

function blockData(coord: Vec3): Dense<Float32Array> {
  const box = blockBox(coord);
  const data = new Float32Array(C * box.size);
  let i = 0;
  for (let c = 0; c < C; c++)
    for (let z = box.start[0]; z < box.stop[0]; z++)
      for (let y = box.start[1]; y < box.stop[1]; y++)
        for (let x = box.start[2]; x < box.stop[2]; x++) data[i++] = value(c, z, y, x);
  return { box, channels: C, data };
}

const key = (c: Vec3) => c.join(',');
const BLOCKS: Vec3[] = [];
for (let z = 0; z < 3; z++)
  for (let y = 0; y < 2; y++) for (let x = 0; x < 2; x++) BLOCKS.push([z, y, x]);
/** Blocks left out of their shards: they must read as the fill value. */
const LEFT_OUT = new Set([key([0, 1, 0]), key([2, 0, 1])]);
/** Blocks handed to writeShard already encoded (the rest as voxels). */
const PRE_ENCODED = new Set([key([0, 0, 1]), key([1, 1, 1])]);

/** Writes both shards; returns the volume. */
async function writeSample(store: Store, fillValue = 0): Promise<ShardedOutput> {
  const volume = await createOutputVolume(store, options({ fillValue }));
  if (!isShardedOutput(volume)) throw new Error('expected a sharded output');
  for (const shard of [
    [0, 0, 0],
    [1, 0, 0],
  ] as Vec3[]) {
    const blocks = [];
    for (const b of BLOCKS) {
      if (volume.shardOf(b).join() !== shard.join() || LEFT_OUT.has(key(b))) continue;
      const dense = blockData(b);
      blocks.push({
        coord: b,
        data: PRE_ENCODED.has(key(b)) ? await volume.encodeBlock(b, dense) : dense,
      });
    }
    await volume.writeShard(shard, blocks);
  }
  return volume;
}

/** The whole array [c, z, y, x] as it must read: the values, or the fill where left out. */
function expectedArray(fillValue: number): Float32Array {
  const out = new Float32Array(C * SHAPE[0] * SHAPE[1] * SHAPE[2]);
  let i = 0;
  for (let c = 0; c < C; c++)
    for (let z = 0; z < SHAPE[0]; z++)
      for (let y = 0; y < SHAPE[1]; y++)
        for (let x = 0; x < SHAPE[2]; x++) {
          const b: Vec3 = [Math.floor(z / 2), Math.floor(y / 3), Math.floor(x / 4)];
          out[i++] = LEFT_OUT.has(key(b)) ? fillValue : value(c, z, y, x);
        }
  return out;
}

async function readWithZarrita(store: Store): Promise<Float32Array> {
  const array = await zarr.open.v3(zarr.root(store).resolve('0'), { kind: 'array' });
  const chunk = await zarr.get(array);
  expect(chunk.shape).toEqual([C, ...SHAPE]);
  return chunk.data as Float32Array;
}

/** Counts the objects written through a store. */
class CountingStore extends MemoryStore {
  readonly puts: AbsolutePath[] = [];
  override async set(k: AbsolutePath, v: Uint8Array): Promise<void> {
    this.puts.push(k);
    await super.set(k, v);
  }
}

// --- CRC-32C ------------------------------------------------------------------------------

describe('crc32c', () => {
  const ascii = (s: string) => new TextEncoder().encode(s);

  it('gives the published check value of "123456789" and the RFC 3720 B.4 vectors', () => {
    expect(crc32c(ascii('123456789'))).toBe(0xe3069283);
    // RFC 3720, appendix B.4 (the CRC as a number; the RFC lists its bytes low first).
    expect(crc32c(new Uint8Array(32))).toBe(0x8a9136aa);
    expect(crc32c(new Uint8Array(32).fill(0xff))).toBe(0x62a8ab43);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i))).toBe(0x46dd794e);
    expect(crc32c(Uint8Array.from({ length: 32 }, (_, i) => 31 - i))).toBe(0x113fdb5c);
    const readPdu = [
      [0x01, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
      [0x14, 0, 0, 0, 0, 0, 0x04, 0, 0, 0, 0, 0x14, 0, 0, 0, 0x18],
      [0x28, 0, 0, 0, 0, 0, 0, 0, 0x02, 0, 0, 0, 0, 0, 0, 0],
    ].flat();
    expect(crc32c(Uint8Array.from(readPdu))).toBe(0xd9963a56);
  });

  it('agrees with the Python crc32c package (test/fixtures/shard/crc32c.json)', () => {
    const want = JSON.parse(readFileSync(new URL('crc32c.json', FIXTURES), 'utf8')) as Record<
      string,
      number
    >;
    const bytes: Record<string, Uint8Array> = {
      '': new Uint8Array(0),
      a: ascii('a'),
      '123456789': ascii('123456789'),
      'bytes 0..255 three times': Uint8Array.from({ length: 768 }, (_, i) => i % 256),
    };
    expect(Object.keys(want).sort()).toEqual(Object.keys(bytes).sort());
    for (const [name, b] of Object.entries(bytes)) expect(crc32c(b), name).toBe(want[name]);
  });
});

// --- what Tessera writes, read by zarrita -------------------------------------------------

describe('sharded output written by Tessera', () => {
  it('is read by zarrita equal to the written blocks: empty inner chunks, clipped edge shards, 2 channels', async () => {
    const store = new MemoryStore();
    await writeSample(store);
    expect(await readWithZarrita(store)).toEqual(expectedArray(0));
  });

  it('reads empty inner chunks as a non-zero fill value, in zarrita and in readBox', async () => {
    const store = new MemoryStore();
    const volume = await writeSample(store, 0.5);
    const want = expectedArray(0.5);
    expect(await readWithZarrita(store)).toEqual(want);
    expect((await volume.readBox(Box.ofShape(SHAPE))).data).toEqual(want);
  });

  it('holds a uint8 output too', async () => {
    const store = new MemoryStore();
    const volume = await createOutputVolume(store, options({ dtype: 'uint8', channels: 1 }));
    if (!isShardedOutput(volume)) throw new Error('expected a sharded output');
    const box = blockBox([2, 1, 1]); // a corner block, clipped on z and x
    const data = Uint8Array.from({ length: box.size }, (_, i) => (i * 7) % 256);
    await volume.writeShard([1, 0, 0], [{ coord: [2, 1, 1], data: { box, channels: 1, data } }]);
    const array = await zarr.open.v3(zarr.root(store).resolve('0'), { kind: 'array' });
    const got = await zarr.get(array, [null, zarr.slice(4, 5), zarr.slice(3, 6), zarr.slice(4, 7)]);
    expect(Array.from(got.data as Uint8Array)).toEqual(Array.from(data));
  });

  it('readBox equals the data on boxes across shard and block boundaries, and outside the volume', async () => {
    const volume = await writeSample(new MemoryStore());
    const all = expectedArray(0);
    const at = (c: number, z: number, y: number, x: number) =>
      all[((c * SHAPE[0] + z) * SHAPE[1] + y) * SHAPE[2] + x]!;
    for (const box of [
      Box.ofShape(SHAPE),
      new Box([1, 2, 3], [5, 5, 6]),
      new Box([3, 0, 0], [5, 6, 7]),
      new Box([-2, -1, 5], [6, 4, 9]), // reaches outside: zeros there
    ]) {
      const got = await volume.readBox(box);
      let i = 0;
      for (let c = 0; c < C; c++)
        for (let z = box.start[0]; z < box.stop[0]; z++)
          for (let y = box.start[1]; y < box.stop[1]; y++)
            for (let x = box.start[2]; x < box.stop[2]; x++) {
              const inside = [z, y, x].every((v, a) => v >= 0 && v < SHAPE[a]!);
              expect(got.data[i++], `${box} c${c} ${z},${y},${x}`).toBe(
                inside ? at(c, z, y, x) : 0,
              );
            }
    }
  });

  it('blockExists is "the inner chunk is stored", per block; blockKey is its shard', async () => {
    const volume = await writeSample(new MemoryStore());
    for (const b of BLOCKS) expect(await volume.blockExists(b), key(b)).toBe(!LEFT_OUT.has(key(b)));
    expect(volume.blockKey([0, 1, 1])).toBe('/0/c/0/0/0/0');
    expect(volume.blockKey([2, 0, 0])).toBe('/0/c/0/1/0/0');
    const fresh = await createOutputVolume(new MemoryStore(), options());
    expect(await fresh.blockExists([0, 0, 0])).toBe(false);
  });

  it('reads a rewritten shard through its new index (no index kept from an earlier read)', async () => {
    const volume = await writeSample(new MemoryStore());
    const box = blockBox([0, 1, 0]); // left out of the sample: fill value so far
    expect((await volume.readBox(box)).data.every((v) => v === 0)).toBe(true);
    const shard = BLOCKS.filter((c) => volume.shardOf(c).join() === '0,0,0');
    await volume.writeShard(
      [0, 0, 0],
      shard.map((c) => ({ coord: c, data: blockData(c) })),
    );
    expect((await volume.readBox(box)).data).toEqual(blockData([0, 1, 0]).data);
    expect(await volume.blockExists([0, 1, 0])).toBe(true);
  });

  it('writes the same bytes for the same blocks, whatever their order or encoding', async () => {
    const a = new MemoryStore();
    const b = new MemoryStore();
    await writeSample(a);
    const volume = await createOutputVolume(b, options());
    if (!isShardedOutput(volume)) throw new Error('expected a sharded output');
    const blocks = BLOCKS.filter(
      (c) => volume.shardOf(c).join() === '0,0,0' && !LEFT_OUT.has(key(c)),
    ).reverse();
    // All as voxels this time (the sample pre-encodes two), in reverse order, twice.
    await volume.writeShard(
      [0, 0, 0],
      blocks.map((c) => ({ coord: c, data: blockData(c) })),
    );
    const first = await b.get('/0/c/0/0/0/0');
    await volume.writeShard(
      [0, 0, 0],
      blocks.map((c) => ({ coord: c, data: blockData(c) })),
    );
    expect(await b.get('/0/c/0/0/0/0')).toEqual(first);
    expect(first).toEqual(await a.get('/0/c/0/0/0/0'));
  });

  it('rewrites a shard from its stored blocks plus new ones: the bytes of writing all as voxels', async () => {
    const store = new MemoryStore();
    const volume = await writeSample(store); // shard [0, 0, 0] lacks block [0, 1, 0]
    const carried = await volume.storedBlocks([0, 0, 0]);
    expect(carried.map((b) => key(b.coord))).toEqual([
      '0,0,0',
      '0,0,1',
      '0,1,1',
      '1,0,0',
      '1,0,1',
      '1,1,0',
      '1,1,1',
    ]);
    expect(carried.every((b) => b.data instanceof Uint8Array)).toBe(true);
    await volume.writeShard(
      [0, 0, 0],
      [...carried, { coord: [0, 1, 0], data: blockData([0, 1, 0]) }],
    );

    const direct = new MemoryStore();
    const all = await createOutputVolume(direct, options());
    if (!isShardedOutput(all)) throw new Error('expected a sharded output');
    const shard = BLOCKS.filter((c) => all.shardOf(c).join() === '0,0,0');
    await all.writeShard(
      [0, 0, 0],
      shard.map((c) => ({ coord: c, data: blockData(c) })),
    );
    expect(await store.get('/0/c/0/0/0/0')).toEqual(await direct.get('/0/c/0/0/0/0'));
    expect(await volume.storedBlocks([0, 0, 0])).toHaveLength(8);
    expect(await all.storedBlocks([1, 0, 0])).toEqual([]); // not written
  });

  it('refuses writeBlock into a shard of several blocks (ShardedWriteError), allows it for a one-block shard', async () => {
    const volume = await createOutputVolume(new MemoryStore(), options());
    const error = await volume.writeBlock([0, 0, 0], blockData([0, 0, 0])).catch((e) => e);
    expect(error).toBeInstanceOf(ShardedWriteError);
    expect(error.shard).toEqual([0, 0, 0]);

    // Shards [4, 3, 4] over blocks [2, 3, 4]: shard [1, 0, 0] holds block [2, 0, 0] only
    // (its z-neighbour [3, 0, 0] is outside the volume), shard [0, 0, 0] holds two.
    const store = new MemoryStore();
    const narrow = await createOutputVolume(store, options({ shardShape: [4, 3, 4] }));
    await narrow.writeBlock([2, 0, 0], blockData([2, 0, 0]));
    expect(await narrow.blockExists([2, 0, 0])).toBe(true);
    await expect(narrow.writeBlock([1, 0, 0], blockData([1, 0, 0]))).rejects.toBeInstanceOf(
      ShardedWriteError,
    );
    const array = await zarr.open.v3(zarr.root(store).resolve('0'), { kind: 'array' });
    expect(await zarr.get(array, [1, 4, 1, 2])).toBe(value(1, 4, 1, 2)); // in block [2, 0, 0]
  });

  it('refuses a block given for another shard, twice, or as empty bytes', async () => {
    const volume = await createOutputVolume(new MemoryStore(), options());
    if (!isShardedOutput(volume)) throw new Error('expected a sharded output');
    await expect(
      volume.writeShard([0, 0, 0], [{ coord: [2, 0, 0], data: blockData([2, 0, 0]) }]),
    ).rejects.toThrow(/not a block of shard \[0, 0, 0\]/);
    const twice = { coord: [0, 0, 0] as Vec3, data: blockData([0, 0, 0]) };
    await expect(volume.writeShard([0, 0, 0], [twice, twice])).rejects.toThrow(/given twice/);
    await expect(
      volume.writeShard([0, 0, 0], [{ coord: [0, 0, 0], data: new Uint8Array(0) }]),
    ).rejects.toThrow(/encoded bytes are empty/);
  });
});

describe('any sharded geometry', () => {
  it('reads back in zarrita as written: random shapes, channels, shard multiples and left-out blocks', async () => {
    const dim = fc.record({
      n: fc.integer({ min: 1, max: 9 }),
      b: fc.integer({ min: 1, max: 4 }),
      k: fc.integer({ min: 1, max: 3 }),
    });
    await fc.assert(
      fc.asyncProperty(
        fc.tuple(dim, dim, dim),
        fc.integer({ min: 1, max: 3 }),
        fc.double({ min: -2, max: 2, noNaN: true }).map((v) => (v === 0 ? 0 : v)), // JSON has no -0
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        async (axes, channels, fillValue, seed) => {
          const shape = axes.map((a) => a.n) as unknown as Vec3;
          const blockShape = axes.map((a) => a.b) as unknown as Vec3;
          const shardShape = axes.map((a) => a.b * a.k) as unknown as Vec3;
          const store = new MemoryStore();
          const o = {
            shape,
            channels,
            dtype: 'float32' as const,
            blockShape,
            shardShape,
            fillValue,
          };
          const volume = await createOutputVolume(store, o);
          if (!isShardedOutput(volume)) throw new Error('expected a sharded output');
          // Expected array, filled as blocks are (or are not) written: x*7 + y*5 + z*3 + c + seed bit.
          const [Z, Y, X] = shape;
          const want = new Float32Array(channels * Z * Y * X).fill(fillValue);
          const g = volume.shardGrid;
          for (let sz = 0; sz < g[0]; sz++)
            for (let sy = 0; sy < g[1]; sy++)
              for (let sx = 0; sx < g[2]; sx++) {
                const r = volume.shardBlocks([sz, sy, sx]);
                const blocks = [];
                for (let z = r.start[0]; z < r.stop[0]; z++)
                  for (let y = r.start[1]; y < r.stop[1]; y++)
                    for (let x = r.start[2]; x < r.stop[2]; x++) {
                      if (((seed >>> ((z * 7 + y * 3 + x) % 31)) & 1) === 0) continue; // left out
                      const box = volume.blockBox([z, y, x]);
                      const data = new Float32Array(channels * box.size);
                      let i = 0;
                      for (let c = 0; c < channels; c++)
                        for (let vz = box.start[0]; vz < box.stop[0]; vz++)
                          for (let vy = box.start[1]; vy < box.stop[1]; vy++)
                            for (let vx = box.start[2]; vx < box.stop[2]; vx++) {
                              const v = vx * 7 + vy * 5 + vz * 3 + c + 0.5;
                              data[i++] = v;
                              want[((c * Z + vz) * Y + vy) * X + vx] = v;
                            }
                      blocks.push({ coord: [z, y, x] as Vec3, data: { box, channels, data } });
                    }
                await volume.writeShard([sz, sy, sx], blocks);
              }
          const array = await zarr.open.v3(zarr.root(store).resolve('0'), { kind: 'array' });
          expect((await zarr.get(array)).data).toEqual(want);
        },
      ),
      { numRuns: 40, seed: 16 },
    );
  });
});

// --- damaged shards -----------------------------------------------------------------------

describe('a damaged shard index', () => {
  const SHARD_KEY: AbsolutePath = '/0/c/0/0/0/0';
  const INNER = 8;
  const ref = { location: 'memory://', key: SHARD_KEY };

  async function damaged(edit: (bytes: Uint8Array) => Uint8Array) {
    const store = new MemoryStore();
    const volume = await writeSample(store);
    await store.set(SHARD_KEY, edit((await store.get(SHARD_KEY))!));
    return { store, volume };
  }

  it('fails its checksum when a byte of the index changes: ShardIndexError naming the key', async () => {
    const { store, volume } = await damaged((b) => {
      b[b.length - 20]! ^= 0x01; // an entry's byte, not the checksum
      return b;
    });
    const error = await readShardIndex(store, ref, INNER).catch((e) => e);
    expect(error).toBeInstanceOf(ShardIndexError);
    expect(error).toMatchObject({ key: SHARD_KEY, problem: 'checksum' });
    expect(error.message).toContain(SHARD_KEY);

    const read = await volume.readBox(Box.ofShape(SHAPE)).catch((e) => e);
    expect(read).toBeInstanceOf(VolumeReadError);
    expect(read.reason).toBe('corrupt-chunk');
    expect(read.cause).toBeInstanceOf(ShardIndexError);
    expect(read.message).toContain(SHARD_KEY);
    await expect(volume.blockExists([0, 0, 0])).rejects.toBeInstanceOf(ShardIndexError);
  });

  it('is cut short: a shard shorter than its index', async () => {
    const { store } = await damaged((b) => b.subarray(b.length - 50));
    await expect(readShardIndex(store, ref, INNER)).rejects.toMatchObject({
      name: 'ShardIndexError',
      problem: 'length',
    });
  });

  it('loses its tail: the last bytes are no longer the index', async () => {
    const { store } = await damaged((b) => b.subarray(0, b.length - 3));
    await expect(readShardIndex(store, ref, INNER)).rejects.toMatchObject({
      name: 'ShardIndexError',
      key: SHARD_KEY,
    });
  });

  it('points past the shard although its checksum holds', async () => {
    // A shard that is nothing but an index whose entry 0 says (offset 0, nbytes 10^6),
    // with a correct checksum: only the range read finds that the bytes are not there.
    const entries = new Uint8Array(INNER * 16).fill(0xff);
    const view = new DataView(entries.buffer);
    view.setBigUint64(0, 0n, true);
    view.setBigUint64(8, 1_000_000n, true);
    const tail = new Uint8Array(entries.length + 4);
    tail.set(entries);
    new DataView(tail.buffer).setUint32(entries.length, crc32c(entries), true);
    const store = new MemoryStore();
    const volume = await writeSample(store);
    await store.set(SHARD_KEY, tail);
    const error = await volume.readBox(new Box([0, 0, 0], [1, 1, 1])).catch((e) => e);
    expect(error).toBeInstanceOf(VolumeReadError);
    expect(error.cause).toMatchObject({ name: 'ShardIndexError', problem: 'entry' });
    // With the shard's size known, the entry is refused while decoding the index.
    expect(() => decodeShardIndex(tail, INNER, ref, tail.length)).toThrow(ShardIndexError);
  });

  it('with only one half of an entry marked empty', () => {
    const entries = new Uint8Array(16).fill(0xff);
    new DataView(entries.buffer).setBigUint64(8, 5n, true);
    const tail = new Uint8Array(20);
    tail.set(entries);
    new DataView(tail.buffer).setUint32(16, crc32c(entries), true);
    expect(() => decodeShardIndex(tail, 1, ref)).toThrow(/inner chunk 0 has the entry/);
  });
});

// --- shards written by an independent writer ----------------------------------------------

describe('a sharded array written by Python from the spec (test/fixtures/shard)', () => {
  const store = new LocalStore(fileURLToPath(new URL('sharded.zarr', FIXTURES)));
  const expected = () => {
    const bytes = readFileSync(new URL('expected.f32', FIXTURES));
    return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  };

  it('opens as a sharded output and reads equal to the values Python wrote', async () => {
    const volume = await openOutputVolume(store);
    expect(isShardedOutput(volume)).toBe(true);
    expect(volume).toMatchObject({ shape: [5, 6, 7], channels: 2, blockShape: [2, 3, 4] });
    expect((await volume.readBox(Box.ofShape([5, 6, 7]))).data).toEqual(expected());
  });

  it('reports exactly the inner chunks Python left empty as missing', async () => {
    const volume = await openOutputVolume(store);
    const empty = new Set(['0,1,0', '1,0,1', '2,1,1']); // EMPTY_CHUNKS in generate.py
    for (let z = 0; z < 3; z++)
      for (let y = 0; y < 2; y++)
        for (let x = 0; x < 2; x++)
          expect(await volume.blockExists([z, y, x]), `${z},${y},${x}`).toBe(
            !empty.has(`${z},${y},${x}`),
          );
  });

  it('is read the same by zarrita (the fixture itself is sound)', async () => {
    const array = await zarr.open.v3(zarr.root(store).resolve('0'), { kind: 'array' });
    expect((await zarr.get(array)).data).toEqual(expected());
  });
});

// --- layout, metadata, manifest -----------------------------------------------------------

describe('sharded layout', () => {
  it('leaves the unsharded metadata exactly as before', async () => {
    const store = new MemoryStore();
    await createOutputVolume(store, options({ shardShape: undefined }));
    const text = new TextDecoder().decode(await store.get('/0/zarr.json'));
    expect(JSON.parse(text)).toEqual({
      zarr_format: 3,
      node_type: 'array',
      shape: [2, 5, 6, 7],
      data_type: 'float32',
      chunk_grid: { name: 'regular', configuration: { chunk_shape: [2, 2, 3, 4] } },
      chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
      fill_value: 0,
      codecs: [
        { name: 'bytes', configuration: { endian: 'little' } },
        { name: 'zstd', configuration: { level: 1, checksum: false } },
      ],
      attributes: {},
      dimension_names: ['c', 'z', 'y', 'x'],
    });
    // Byte for byte: the key order and formatting of the document did not move either.
    expect(text).toBe(`${JSON.stringify(JSON.parse(text), null, 2)}\n`);
    expect(Object.keys(JSON.parse(text))).toEqual([
      'zarr_format',
      'node_type',
      'shape',
      'data_type',
      'chunk_grid',
      'chunk_key_encoding',
      'fill_value',
      'codecs',
      'attributes',
      'dimension_names',
    ]);
  });

  it('describes shards with sharding_indexed: inner blocks, bytes + zstd, index bytes + crc32c at the end', () => {
    const doc = arrayMetadata(options());
    expect(doc.chunk_grid).toEqual({
      name: 'regular',
      configuration: { chunk_shape: [2, 4, 6, 8] },
    });
    expect(doc.codecs).toEqual([
      {
        name: 'sharding_indexed',
        configuration: {
          chunk_shape: [2, 2, 3, 4],
          codecs: [
            { name: 'bytes', configuration: { endian: 'little' } },
            { name: 'zstd', configuration: { level: 1, checksum: false } },
          ],
          index_codecs: [
            { name: 'bytes', configuration: { endian: 'little' } },
            { name: 'crc32c' },
          ],
          index_location: 'end',
        },
      },
    ]);
  });

  it("uses only codecs neuroglancer's zarr3 reader registers", () => {
    // google/neuroglancer src/datasource/zarr/codec/: blosc, bytes, crc32c, gzip, jpegxl,
    // reshape, sharding_indexed, transpose, zstd (each a decode.ts registering its name).
    const neuroglancer = new Set([
      'blosc',
      'bytes',
      'crc32c',
      'gzip',
      'sharding_indexed',
      'transpose',
      'zstd',
    ]);
    const names: string[] = [];
    const walk = (codecs: unknown) => {
      for (const c of codecs as { name: string; configuration?: Record<string, unknown> }[]) {
        names.push(c.name);
        if (c.configuration?.codecs) walk(c.configuration.codecs);
        if (c.configuration?.index_codecs) walk(c.configuration.index_codecs);
      }
    };
    walk(arrayMetadata(options()).codecs);
    expect(names.filter((n) => !neuroglancer.has(n))).toEqual([]);
    expect(names).toContain('sharding_indexed');
  });

  it('reopens a sharded output, and refuses it to a run that writes it unsharded or with other shards', async () => {
    const store = new MemoryStore();
    await writeSample(store);
    const again = await createOutputVolume(store, options());
    expect(isShardedOutput(again)).toBe(true);
    expect(await again.blockExists([0, 0, 0])).toBe(true);
    for (const shardShape of [undefined, [4, 6, 4] as Vec3]) {
      const error = await createOutputVolume(store, options({ shardShape })).catch((e) => e);
      expect(error).toBeInstanceOf(OutputMismatchError);
      expect(error.field).toBe('shard shape');
    }
    const plain = new MemoryStore();
    await createOutputVolume(plain, options({ shardShape: undefined }));
    await expect(createOutputVolume(plain, options())).rejects.toMatchObject({
      name: 'OutputMismatchError',
      field: 'shard shape',
    });
  });

  it('refuses a shard shape that is not a multiple of the block shape', async () => {
    await expect(
      createOutputVolume(new MemoryStore(), options({ shardShape: [4, 6, 6] })),
    ).rejects.toThrow(
      /shardShape \[4, 6, 6\] must be a positive multiple of blockShape \[2, 3, 4\]/,
    );
  });

  it('is a manifest field, output.shardShape, checked against output.blockShape', () => {
    const manifest = (output: Record<string, unknown>) => ({
      version: 1,
      name: 'shards',
      input: { url: 'raw.zarr' },
      output: { url: 'out.zarr', dtype: 'float32', ...output },
      model: { url: 'm.onnx', patchShape: [32, 64, 64], outputChannels: 1 },
      overlap: [0, 0, 0],
      chunkShape: [64, 128, 128],
    });
    const ok = safeParseManifest(
      manifest({ blockShape: [32, 64, 64], shardShape: [64, 128, 128] }),
    );
    expect(ok.ok && ok.manifest.output.shardShape).toEqual([64, 128, 128]);
    const bad = safeParseManifest(
      manifest({ blockShape: [32, 64, 64], shardShape: [64, 96, 128] }),
    );
    expect(bad.ok).toBe(false);
    if (!bad.ok)
      expect(bad.error.issues).toEqual([
        expect.objectContaining({
          path: 'output.shardShape[1]',
          message: expect.stringMatching(/multiple of output.blockShape\[1\] = 64/),
        }),
      ]);
  });
});

// --- default shard shape and object counts ------------------------------------------------

describe('defaultShardShape', () => {
  it('is the chunk pitch when it is whole blocks, else the pitch rounded to blocks, capped at the volume', () => {
    // pitch = patchesPerChunk × stride = [480, 512, 384]
    const src = { stride: [96, 128, 96] as Vec3, patchesPerChunk: [5, 4, 4] as Vec3 };
    expect(defaultShardShape({ ...src, blockShape: [96, 128, 128] })).toEqual([480, 512, 384]);
    // 480 / 128 = 3.75 → 4 blocks; 384 / 256 = 1.5 → 2 blocks; 512 / 1024 → at least 1 block.
    expect(defaultShardShape({ ...src, blockShape: [128, 1024, 256] })).toEqual([512, 1024, 512]);
    // A volume 200 voxels deep is covered by 2 blocks of 128: no shard deeper than that.
    expect(
      defaultShardShape({ ...src, blockShape: [128, 128, 128], volumeShape: [200, 4096, 4096] }),
    ).toEqual([256, 512, 384]);
  });

  it('takes a plan: one object per shard when a chunk-pitch-aligned region is written', async () => {
    // No overlap, chunks of 2×1×2 patches: pitch [16, 16, 32] = whole blocks of [8, 8, 16].
    const plan = new Plan({
      volumeShape: [32, 48, 64],
      patchShape: [8, 16, 16],
      overlap: [0, 0, 0],
      chunkShape: [16, 16, 32],
      blockShape: [8, 8, 16],
    });
    const shardShape = defaultShardShape(plan);
    expect(shardShape).toEqual([16, 16, 32]);

    const store = new CountingStore();
    const volume = await createOutputVolume(store, {
      shape: plan.volumeShape,
      channels: 1,
      dtype: 'float32',
      blockShape: plan.blockShape,
      shardShape,
    });
    if (!isShardedOutput(volume)) throw new Error('expected a sharded output');
    const before = store.puts.length; // the two zarr.json
    for (const chunk of plan.chunks()) {
      const r = chunk.blockRange;
      const blocks = [];
      for (let z = r.start[0]; z < r.stop[0]; z++)
        for (let y = r.start[1]; y < r.stop[1]; y++)
          for (let x = r.start[2]; x < r.stop[2]; x++) {
            const coord: Vec3 = [z, y, x];
            const box = volume.blockBox(coord);
            blocks.push({
              coord,
              data: { box, channels: 1, data: new Float32Array(box.size).fill(chunk.index) },
            });
          }
      const shard = volume.shardOf(r.start);
      // The chunk's whole footprint lies in one shard, and covers it.
      expect(volume.shardBlocks(shard)).toEqual(r);
      await volume.writeShard(shard, blocks);
    }
    const written = store.puts.slice(before);
    expect(written).toHaveLength(plan.counts.chunks); // 2 × 3 × 2 = 12
    expect(new Set(written).size).toBe(plan.counts.chunks);
    expect(plan.counts.blocks / plan.counts.chunks).toBe(8); // vs 8 objects per chunk unsharded
    const back = await volume.readBox(Box.ofShape(plan.volumeShape));
    const last = plan.describeChunk([1, 2, 1]);
    const fp = last.footprint;
    expect(back.data[(fp.start[0] * 48 + fp.start[1]) * 64 + fp.start[2]]).toBe(last.index);
  });
});
