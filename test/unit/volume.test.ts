// Volume IO against real Zarr files in a temp dir: input boxes padded with zeros on
// every side, normalisation, the output written block by block, OME metadata, the
// typed errors, and the stores underneath.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { mkdtemp, readdir, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zarr from 'zarrita';
import type { Dense, NumericArray } from '../../core/array/dense.ts';
import { Box, fromFn, points, type Vec3 } from '../../core/geometry/index.ts';
import {
  type AbsolutePath,
  InvalidStoreKeyError,
  LocalStore,
  MemoryStore,
  openStoreForUrl,
  PrefixedStore,
  registerStoreScheme,
  type Store,
  UnsupportedStoreSchemeError,
  unregisterStoreScheme,
} from '../../core/store/index.ts';
import {
  createOutputVolume,
  InvalidBlockError,
  normalize,
  OutputMismatchError,
  OutputOwnedError,
  openInputVolume,
  openOutputVolume,
  VolumeFormatError,
  VolumeNotFoundError,
  VolumeReadError,
  writeOmeMetadata,
} from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { frameContentSize } from '../../core/volume/zstd.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'tessera-volume-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

let seq = 0;
/** A fresh store in its own sub-directory of the temp dir. */
function freshStore(): { store: LocalStore; root: string } {
  const root = join(dir, `case-${seq++}`);
  return { store: new LocalStore(root, { fsync: false }), root };
}

const SHAPE: Vec3 = [13, 17, 19];
const CHUNKS: Vec3 = [5, 6, 7];
const value = (c: number, [z, y, x]: Vec3): number => (c * 53 + z * 31 + y * 17 + x * 3 + 1) % 251;

const cOrderStrides = (shape: number[]): number[] =>
  shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));

async function createV3Input(
  store: Store,
  o: { path?: string; channels?: number; dtype?: 'uint8' | 'float32'; codecs?: 'zstd' | 'raw' },
): Promise<void> {
  const channels = o.channels;
  const shape = channels === undefined ? [...SHAPE] : [channels, ...SHAPE];
  const chunkShape = channels === undefined ? [...CHUNKS] : [2, ...CHUNKS];
  const bytes = { name: 'bytes', configuration: { endian: 'little' } };
  const codecs =
    o.codecs === 'raw' ? [bytes] : [bytes, { name: 'zstd', configuration: { level: 1 } }];
  const location = o.path === undefined ? zarr.root(store) : zarr.root(store).resolve(o.path);
  const n = shape.reduce((a, b) => a * b, 1);
  const common = { shape, chunkShape, codecs, fillValue: 0 };
  const sp = Box.ofShape(SHAPE);
  if (o.dtype === 'float32') {
    const arr = await zarr.create(location, { ...common, dtype: 'float32' });
    const data = new Float32Array(n);
    fillExpected(data, channels ?? 1, sp);
    await zarr.set(arr, null, { data, shape, stride: cOrderStrides(shape) });
  } else {
    const arr = await zarr.create(location, { ...common, dtype: 'uint8' });
    const data = new Uint8Array(n);
    fillExpected(data, channels ?? 1, sp);
    await zarr.set(arr, null, { data, shape, stride: cOrderStrides(shape) });
  }
}

function fillExpected(data: NumericArray, channels: number, box: Box): void {
  let i = 0;
  for (let c = 0; c < channels; c++) for (const p of points(box)) data[i++] = value(c, p);
}

/** What readBox must return: the values inside the volume, `pad` outside. */
function expectedBox(
  box: Box,
  channels: number,
  inside: (c: number, p: Vec3) => number,
  pad = 0,
): number[] {
  const volume = Box.ofShape(SHAPE);
  const out: number[] = [];
  for (let c = 0; c < channels; c++)
    for (const p of points(box)) out.push(volume.containsPoint(p) ? inside(c, p) : pad);
  return out;
}

/** Boxes fully inside, straddling each of the six faces, containing everything, fully outside. */
function testBoxes(): Box[] {
  const boxes = [new Box([2, 3, 4], [9, 11, 13]), new Box([-3, -2, -4], [16, 20, 23])];
  for (let a = 0; a < 3; a++) {
    const lo = fromFn((b) => (b === a ? -3 : 1));
    const hi = fromFn((b) => (b === a ? 4 : 6));
    boxes.push(new Box(lo, hi));
    const lo2 = fromFn((b) => (b === a ? SHAPE[b] - 2 : 5));
    const hi2 = fromFn((b) => (b === a ? SHAPE[b] + 3 : 9));
    boxes.push(new Box(lo2, hi2));
  }
  boxes.push(new Box([20, 20, 20], [23, 24, 25]), new Box([-6, 0, 0], [-1, 4, 4]));
  return boxes;
}

describe('input volume', () => {
  it('reads a v3 uint8 array: inside, straddling every face, and fully outside', async () => {
    const { store } = freshStore();
    await createV3Input(store, {});
    const input = await openInputVolume(store);
    expect(input).toMatchObject({ shape: SHAPE, channels: 1, dtype: 'uint8', chunkShape: CHUNKS });
    expect(input.voxelSize).toBeUndefined();
    for (const box of testBoxes()) {
      const d = await input.readBox(box);
      expect(d.data).toBeInstanceOf(Uint8Array);
      expect(d.box.equals(box)).toBe(true);
      expect(Array.from(d.data), `box ${box}`).toEqual(expectedBox(box, 1, value));
    }
  });

  it('reads a v2 array (raw chunks, "." keys), with a missing chunk read as the fill value', async () => {
    const { store } = freshStore();
    const fill = 7;
    const zarray = {
      zarr_format: 2,
      shape: SHAPE,
      chunks: CHUNKS,
      dtype: '|u1',
      compressor: null,
      filters: null,
      fill_value: fill,
      order: 'C',
    };
    await store.set('/.zarray', new TextEncoder().encode(JSON.stringify(zarray)));
    const grid = fromFn((a) => Math.ceil(SHAPE[a] / CHUNKS[a]));
    const missing: Vec3 = [1, 1, 1];
    for (const g of points(Box.ofShape(grid))) {
      if (g.every((v, a) => v === missing[a])) continue;
      const chunkBox = Box.ofShape(
        CHUNKS,
        fromFn((a) => g[a] * CHUNKS[a]),
      );
      // v2 edge chunks are stored full size; what lies past the array is ignored.
      const bytes = new Uint8Array(chunkBox.size);
      let i = 0;
      for (const p of points(chunkBox)) bytes[i++] = value(0, p);
      await store.set(`/${g.join('.')}` as AbsolutePath, bytes);
    }
    const input = await openInputVolume(store);
    const missingBox = Box.ofShape(
      CHUNKS,
      fromFn((a) => missing[a] * CHUNKS[a]),
    );
    const inside = (c: number, p: Vec3) => (missingBox.containsPoint(p) ? fill : value(c, p));
    for (const box of testBoxes()) {
      const d = await input.readBox(box);
      expect(Array.from(d.data), `box ${box}`).toEqual(expectedBox(box, 1, inside));
    }
  });

  it('reads [c, z, y, x] arrays with chunked channels', async () => {
    const { store } = freshStore();
    await createV3Input(store, { path: 'raw', channels: 3, dtype: 'float32' });
    const input = await openInputVolume(store, 'raw');
    expect(input).toMatchObject({ shape: SHAPE, channels: 3, dtype: 'float32', arrayPath: 'raw' });
    for (const box of testBoxes()) {
      const d = await input.readBox(box);
      expect(d.channels).toBe(3);
      expect(d.data).toBeInstanceOf(Float32Array);
      expect(Array.from(d.data), `box ${box}`).toEqual(expectedBox(box, 3, value));
    }
  });

  it('refuses other ranks and data types with a VolumeFormatError naming the shape', async () => {
    const { store } = freshStore();
    await zarr.create(zarr.root(store).resolve('flat'), {
      shape: [4, 5],
      chunkShape: [2, 2],
      dtype: 'uint8',
    });
    const error = await openInputVolume(store, 'flat').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect(error).toMatchObject({ field: 'shape', arrayPath: 'flat' });
    expect(String(error)).toMatch(/\[4, 5\].*\[z, y, x\] or \[c, z, y, x\]/);

    await zarr.create(zarr.root(store).resolve('big'), {
      shape: [2, 2, 2],
      chunkShape: [2, 2, 2],
      dtype: 'int64',
    });
    await expect(openInputVolume(store, 'big')).rejects.toMatchObject({
      name: 'VolumeFormatError',
      field: 'data_type',
    });
  });

  it('checks the metadata at open: VolumeFormatError naming the field, for v3 and v2 arrays', async () => {
    const v2 = {
      zarr_format: 2,
      shape: SHAPE,
      chunks: CHUNKS,
      dtype: '<u2',
      compressor: { id: 'zstd', level: 1 },
      filters: null,
      fill_value: 0,
      order: 'C',
    };
    const v3 = async (store: LocalStore) =>
      JSON.parse(new TextDecoder().decode(await store.get('/zarr.json'))) as Record<
        string,
        unknown
      >;
    const cases: [string, 'v2' | 'v3', (m: Record<string, unknown>) => void, string][] = [
      ['v2 unknown compressor', 'v2', (m) => (m.compressor = { id: 'evil' }), 'codecs'],
      ['v2 unknown filter', 'v2', (m) => (m.filters = [{ id: 'evil' }]), 'codecs'],
      ['v2 64-bit dtype', 'v2', (m) => (m.dtype = '<i8'), 'data_type'],
      ['v2 no dtype', 'v2', (m) => delete m.dtype, 'data_type'],
      ['v2 zero chunk', 'v2', (m) => (m.chunks = [5, 0, 7]), 'chunk_grid'],
      ['v2 chunk rank', 'v2', (m) => (m.chunks = [5, 6]), 'chunk_grid'],
      ['v2 fill out of range', 'v2', (m) => (m.fill_value = 70000), 'fill_value'],
      ['v2 separator', 'v2', (m) => (m.dimension_separator = '|'), 'chunk_key_encoding'],
      ['v3 negative shape', 'v3', (m) => (m.shape = [13, -1, 19]), 'shape'],
      ['v3 no codecs', 'v3', (m) => delete m.codecs, 'codecs'],
      ['v3 no chunk_key_encoding', 'v3', (m) => delete m.chunk_key_encoding, 'chunk_key_encoding'],
      ['v3 fractional fill', 'v3', (m) => (m.fill_value = 0.5), 'fill_value'],
      ['v3 missing fill', 'v3', (m) => delete m.fill_value, 'fill_value'],
      ['v3 irregular grid', 'v3', (m) => (m.chunk_grid = { name: 'rectilinear' }), 'chunk_grid'],
      [
        'v3 huge chunks',
        'v3',
        (m) =>
          (m.chunk_grid = { name: 'regular', configuration: { chunk_shape: [2048, 2048, 2048] } }),
        'chunk_grid',
      ],
      [
        'v3 shard not dividing',
        'v3',
        (m) =>
          (m.codecs = [
            {
              name: 'sharding_indexed',
              configuration: { chunk_shape: [2, 6, 7], codecs: [{ name: 'bytes' }] },
            },
          ]),
        'codecs',
      ],
      [
        'v3 unknown codec inside a shard',
        'v3',
        (m) =>
          (m.codecs = [
            {
              name: 'sharding_indexed',
              configuration: { chunk_shape: [5, 6, 7], codecs: [{ name: 'evil' }] },
            },
          ]),
        'codecs',
      ],
      [
        'v3 storage transformer',
        'v3',
        (m) => (m.storage_transformers = [{ name: 'x' }]),
        'metadata',
      ],
    ];
    for (const [what, version, edit, field] of cases) {
      const { store } = freshStore();
      let doc: Record<string, unknown>;
      if (version === 'v2') doc = structuredClone(v2);
      else {
        await createV3Input(store, {});
        doc = await v3(store);
      }
      edit(doc);
      await store.set(
        version === 'v2' ? '/.zarray' : '/zarr.json',
        new TextEncoder().encode(JSON.stringify(doc)),
      );
      const error = await openInputVolume(store).catch((e: unknown) => e);
      expect(error, what).toBeInstanceOf(VolumeFormatError);
      expect((error as VolumeFormatError).field, what).toBe(field);
      expect(String(error), what).toMatch(version === 'v2' ? /\.zarray/ : /zarr\.json/);
    }
    // The unedited documents open (v2 with a numcodecs compressor, v3 as written).
    const ok = freshStore().store;
    await ok.set('/.zarray', new TextEncoder().encode(JSON.stringify(v2)));
    await expect(openInputVolume(ok)).resolves.toMatchObject({ dtype: 'uint16', shape: SHAPE });
  });

  it('reports a missing array as VolumeNotFoundError naming the location', async () => {
    const { store, root } = freshStore();
    const error = await openInputVolume(store).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeNotFoundError);
    expect(String(error)).toContain(root);
    await createV3Input(store, { path: 'raw' });
    const wrongPath = await openInputVolume(store, 'raw/0').catch((e: unknown) => e);
    expect(wrongPath).toBeInstanceOf(VolumeNotFoundError);
    expect(String(wrongPath)).toContain('raw/0');
    // The root is now a bare (implicit) hierarchy without multiscales: say so.
    await zarr.create(store, { attributes: {} });
    await expect(openInputVolume(store)).rejects.toThrow(/group without OME-Zarr multiscales/);
  });

  it('turns a truncated compressed chunk into a VolumeReadError naming the array and box', async () => {
    const { store, root } = freshStore();
    await createV3Input(store, { path: 'raw' });
    await truncate(join(root, 'raw', 'c', '1', '1', '1'), 10);
    const input = await openInputVolume(store, 'raw');
    const box = new Box([4, 4, 4], [8, 9, 10]);
    const error = await input.readBox(box).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeReadError);
    expect(error).toMatchObject({ reason: 'corrupt-chunk', arrayPath: 'raw' });
    expect(String(error)).toContain(join(root, 'raw'));
    expect(String(error)).toContain(String(box));
    expect((error as Error).cause).toBeDefined();
    // Boxes that do not touch the damaged chunk still read.
    await expect(input.readBox(new Box([0, 0, 0], [4, 4, 4]))).resolves.toBeDefined();
  });

  it('catches a truncated uncompressed chunk, which decodes without error', async () => {
    const { store, root } = freshStore();
    await createV3Input(store, { codecs: 'raw' });
    await truncate(join(root, 'c', '0', '0', '0'), 100);
    const input = await openInputVolume(store);
    await expect(input.readBox(new Box([0, 0, 0], [3, 3, 3]))).rejects.toMatchObject({
      name: 'VolumeReadError',
      reason: 'corrupt-chunk',
    });
  });
});

describe('normalize', () => {
  const raw = (): Dense<NumericArray> => {
    const box = new Box([-1, 0, 0], [2, 2, 3]);
    const data = new Uint8Array(2 * box.size);
    for (let i = 0; i < data.length; i++) data[i] = (i * 37) % 256;
    return { box, channels: 2, data };
  };

  it('maps uint8 to v / 255 by default', () => {
    const r = raw();
    const n = normalize(r, { dtype: 'uint8' });
    expect(n.data).toBeInstanceOf(Float32Array);
    expect(Array.from(n.data)).toEqual(Array.from(r.data, (v) => Math.fround(v / 255)));
    expect(n.box.equals(r.box)).toBe(true);
  });

  it('applies scale and offset when given (also for uint8)', () => {
    const r = raw();
    const n = normalize(r, { dtype: 'uint8', scale: 0.5, offset: -3 });
    expect(Array.from(n.data)).toEqual(Array.from(r.data, (v) => Math.fround(v * 0.5 - 3)));
    const u16: Dense<NumericArray> = { ...r, data: Uint16Array.from(r.data, (v) => v * 100) };
    // Without scale/offset, uint16 maps its range onto [0, 1] (as uint8 does).
    expect(Array.from(normalize(u16, { dtype: 'uint16' }).data)).toEqual(
      Array.from(u16.data, (v) => Math.fround(v / 65535)),
    );
    expect(Array.from(normalize(u16, { dtype: 'uint16', offset: 1 }).data)).toEqual(
      Array.from(u16.data, (v) => v + 1),
    );
  });

  it('maps every 8- and 16-bit value exactly as the per-voxel formula (large inputs use a table)', () => {
    const box = Box.ofShape([4, 32, 32]);
    const u8: Dense<NumericArray> = {
      box,
      channels: 1,
      data: new Uint8Array(box.size).map((_, i) => (i * 7919) % 256),
    };
    const big = Box.ofShape([8, 256, 256]);
    const u16: Dense<NumericArray> = {
      box: big,
      channels: 1,
      data: new Uint16Array(big.size).map((_, i) => (i * 40503) % 65_536),
    };
    for (const [r, dtype] of [
      [u8, 'uint8'],
      [u16, 'uint16'],
    ] as const) {
      const plain = normalize(r, { dtype });
      const scaled = normalize(r, { dtype, scale: 0.013, offset: -0.7 });
      for (let i = 0; i < r.data.length; i++) {
        const v = r.data[i]!;
        expect(plain.data[i]).toBe(Math.fround(dtype === 'uint8' ? v / 255 : v / 65535));
        expect(scaled.data[i]).toBe(Math.fround(v * 0.013 - 0.7));
      }
    }
  });

  it('writes into reused memory, leaving nothing of what it held', () => {
    const r = raw();
    const fresh = normalize(r, { dtype: 'uint8', offset: 1, valid: Box.ofShape([1, 2, 2]) });
    const reuse = new Float32Array(r.data.length + 10).fill(42);
    const again = normalize(r, {
      dtype: 'uint8',
      offset: 1,
      valid: Box.ofShape([1, 2, 2]),
      reuse,
    });
    expect(again.data.buffer).toBe(reuse.buffer);
    expect(Array.from(again.data)).toEqual(Array.from(fresh.data));
  });

  it('leaves voxels outside `valid` at exactly 0, even with an offset', () => {
    const r = raw();
    const valid = Box.ofShape([5, 5, 2]);
    const n = normalize(r, { dtype: 'uint8', scale: 2, offset: 10, valid });
    let i = 0;
    for (let c = 0; c < 2; c++)
      for (const p of points(r.box)) {
        const expected = valid.containsPoint(p) ? Math.fround(r.data[i]! * 2 + 10) : 0;
        expect(n.data[i], `c${c} ${p}`).toBe(expected);
        i++;
      }
    const none = normalize(r, {
      dtype: 'uint8',
      offset: 1,
      valid: new Box([9, 9, 9], [10, 10, 10]),
    });
    expect(none.data.every((v) => v === 0)).toBe(true);
  });
});

describe('output volume', () => {
  const BLOCK: Vec3 = [5, 6, 7];
  const outValue = (c: number, [z, y, x]: Vec3) => (c + 1) * 0.25 + z * 0.001 + y * 0.01 + x * 0.1;

  function blockData(
    out: { blockBox(c: Vec3): Box; channels: number },
    coord: Vec3,
    dtype: 'float32' | 'uint8',
    f: (c: number, p: Vec3) => number,
  ) {
    const box = out.blockBox(coord);
    const data =
      dtype === 'float32'
        ? new Float32Array(out.channels * box.size)
        : new Uint8Array(out.channels * box.size);
    let i = 0;
    for (let c = 0; c < out.channels; c++) for (const p of points(box)) data[i++] = f(c, p);
    return { box, channels: out.channels, data };
  }

  it('writes every block as one chunk object and reads back exactly what was written', async () => {
    const { store, root } = freshStore();
    const out = await createOutputVolume(store, {
      shape: SHAPE,
      channels: 2,
      dtype: 'float32',
      blockShape: BLOCK,
      attributes: { name: 'demo' },
    });
    expect(out.blockGrid).toEqual([3, 3, 3]);
    for (const g of points(Box.ofShape(out.blockGrid))) {
      expect(await out.blockExists(g)).toBe(false);
      await out.writeBlock(g, blockData(out, g, 'float32', outValue));
      expect(await out.blockExists(g)).toBe(true);
    }
    const chunkFiles = await readdir(join(root, '0', 'c'), {
      recursive: true,
      withFileTypes: true,
    });
    expect(chunkFiles.filter((f) => f.isFile())).toHaveLength(27);

    for (const box of [Box.ofShape(SHAPE), new Box([3, 4, 5], [11, 13, 17]), ...testBoxes()]) {
      const d = await out.readBox(box);
      expect(d.data).toBeInstanceOf(Float32Array);
      const want = expectedBox(box, 2, (c, p) => Math.fround(outValue(c, p)));
      expect(Array.from(d.data), `box ${box}`).toEqual(want);
    }

    // Any Zarr reader sees the same array: zarrita directly, with named dimensions.
    const arr = await zarr.open(zarr.root(store).resolve('0'), { kind: 'array' });
    expect(arr.shape).toEqual([2, ...SHAPE]);
    expect(arr.chunks).toEqual([2, ...BLOCK]);
    expect(arr.dimensionNames).toEqual(['c', 'z', 'y', 'x']);
    const group = await zarr.open(store, { kind: 'group' });
    expect(group.attrs).toEqual({ name: 'demo' });
  });

  it('writes one object per block with no read, padding edge chunks with the fill value', async () => {
    const memory = new MemoryStore();
    const calls = { get: 0, set: 0 };
    const counting: Store = {
      location: 'memory://counted',
      get: (k) => {
        calls.get++;
        return memory.get(k);
      },
      set: (k, v) => {
        calls.set++;
        return memory.set(k, v);
      },
    };
    const out = await createOutputVolume(counting, {
      shape: SHAPE,
      channels: 1,
      dtype: 'float32',
      blockShape: BLOCK,
      fillValue: -1,
    });
    calls.get = 0;
    calls.set = 0;
    const edge: Vec3 = [2, 2, 2];
    await out.writeBlock(
      edge,
      blockData(out, edge, 'float32', () => 5),
    );
    expect(calls).toEqual({ get: 0, set: 1 });

    const arr = await zarr.open(zarr.root(memory).resolve('0'), { kind: 'array' });
    const chunk = await arr.getChunk([0, 2, 2, 2]);
    const full = Box.ofShape(BLOCK, [10, 12, 14]);
    const stored = Array.from(chunk.data as Float32Array);
    expect(stored).toEqual(
      [...points(full)].map((p) => (out.blockBox(edge).containsPoint(p) ? 5 : -1)),
    );
    // Unwritten blocks read as the fill value.
    const d = await out.readBox(new Box([0, 0, 0], [2, 2, 2]));
    expect(Array.from(d.data)).toEqual(new Array(8).fill(-1));
  });

  it('reopens an existing output with the same layout and keeps its blocks', async () => {
    const { store } = freshStore();
    const o = { shape: SHAPE, channels: 2, dtype: 'float32', blockShape: BLOCK } as const;
    const first = await createOutputVolume(store, { ...o, attributes: { a: 1 } });
    await first.writeBlock([1, 1, 1], blockData(first, [1, 1, 1], 'float32', outValue));
    const again = await createOutputVolume(store, { ...o, attributes: { b: 2 } });
    expect(await again.blockExists([1, 1, 1])).toBe(true);
    const box = again.blockBox([1, 1, 1]);
    const d = await again.readBox(box);
    expect(Array.from(d.data)).toEqual(expectedBox(box, 2, (c, p) => Math.fround(outValue(c, p))));
    const opened = await openOutputVolume(store);
    expect(opened).toMatchObject({
      shape: SHAPE,
      channels: 2,
      dtype: 'float32',
      blockShape: BLOCK,
    });
    const group = await zarr.open(store, { kind: 'group' });
    expect(group.attrs).toEqual({ a: 1, b: 2 });
  });

  it('refuses an existing output with a different layout, naming the field', async () => {
    const { store, root } = freshStore();
    const o = { shape: SHAPE, channels: 2, dtype: 'float32', blockShape: BLOCK } as const;
    await createOutputVolume(store, o);
    const cases: [object, string][] = [
      [{ blockShape: [8, 8, 8] }, 'block shape'],
      [{ channels: 3 }, 'channel count'],
      [{ shape: [13, 17, 20] }, 'shape'],
      [{ dtype: 'uint8' }, 'data type'],
      [{ fillValue: 1 }, 'fill value'],
    ];
    for (const [change, field] of cases) {
      const error = await createOutputVolume(store, { ...o, ...change }).catch((e: unknown) => e);
      expect(error, field).toBeInstanceOf(OutputMismatchError);
      expect(error).toMatchObject({ field });
      expect(String(error)).toContain(root);
      expect(String(error)).toMatch(/another output\.url/);
    }
  });

  it('writes and reads uint8 outputs; rejects blocks that do not match', async () => {
    const { store } = freshStore();
    const out = await createOutputVolume(store, {
      shape: SHAPE,
      channels: 1,
      dtype: 'uint8',
      blockShape: BLOCK,
    });
    for (const g of points(Box.ofShape(out.blockGrid)))
      await out.writeBlock(g, blockData(out, g, 'uint8', value));
    const d = await out.readBox(Box.ofShape(SHAPE));
    expect(d.data).toBeInstanceOf(Uint8Array);
    expect(Array.from(d.data)).toEqual(expectedBox(Box.ofShape(SHAPE), 1, value));

    const good = blockData(out, [0, 0, 0], 'uint8', value);
    await expect(
      out.writeBlock([0, 0, 0], { ...good, box: good.box.shift([1, 0, 0]) }),
    ).rejects.toBeInstanceOf(InvalidBlockError);
    await expect(
      out.writeBlock([0, 0, 0], { ...good, data: new Float32Array(good.data.length) }),
    ).rejects.toThrow(/convert before writing/);
    await expect(out.writeBlock([3, 0, 0], good)).rejects.toBeInstanceOf(InvalidBlockError);
  });

  it("records the job that owns an output, and refuses another job's writers", async () => {
    const { store, root } = freshStore();
    const o = { shape: SHAPE, channels: 2, dtype: 'float32', blockShape: BLOCK } as const;
    const first = await createOutputVolume(store, { ...o, owner: 'job-a' });
    await first.writeBlock([0, 0, 0], blockData(first, [0, 0, 0], 'float32', outValue));
    // Recorded in the root group and in the array; the same job reopens it as before.
    const group = await zarr.open(store, { kind: 'group' });
    expect(group.attrs).toEqual({ tessera: { job: 'job-a' } });
    const array = await zarr.open(zarr.root(store).resolve('0'), { kind: 'array' });
    expect(array.attrs).toEqual({ tessera: { job: 'job-a' } });
    await expect(createOutputVolume(store, { ...o, owner: 'job-a' })).resolves.toBeDefined();
    await expect(openOutputVolume(store, { owner: 'job-a' })).resolves.toBeDefined();
    // Another job, with the very same layout: refused before it writes anything.
    for (const attempt of [
      () => createOutputVolume(store, { ...o, owner: 'job-b' }),
      () => openOutputVolume(store, { owner: 'job-b' }),
    ]) {
      const error = await attempt().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OutputOwnedError);
      expect(error).toMatchObject({ owner: 'job-a', jobId: 'job-b' });
      expect(String(error)).toContain(root);
      expect(String(error)).toMatch(/another output\.url.*delete its output/);
    }
    expect(array.attrs).toEqual({ tessera: { job: 'job-a' } });
    // A job whose output.url is nested in job-a's (its root group would be job-a's array).
    const nested = new PrefixedStore(store, '0');
    await expect(createOutputVolume(nested, { ...o, owner: 'job-c' })).rejects.toBeInstanceOf(
      OutputOwnedError,
    );
  });

  it("an output that records no job becomes the first owner's (crash before recording, older runs)", async () => {
    const { store } = freshStore();
    const o = { shape: SHAPE, channels: 2, dtype: 'float32', blockShape: BLOCK } as const;
    await createOutputVolume(store, o);
    await createOutputVolume(store, { ...o, owner: 'job-a' });
    const array = await zarr.open(zarr.root(store).resolve('0'), { kind: 'array' });
    expect(array.attrs).toEqual({ tessera: { job: 'job-a' } });
    await expect(createOutputVolume(store, { ...o, owner: 'job-b' })).rejects.toBeInstanceOf(
      OutputOwnedError,
    );
    // Callers that name no owner (tools, previews) open it as before.
    await expect(openOutputVolume(store)).resolves.toBeDefined();
  });

  it('reports a missing output array as VolumeNotFoundError, unreadable metadata as VolumeFormatError', async () => {
    const { store } = freshStore();
    await expect(openOutputVolume(store)).rejects.toBeInstanceOf(VolumeNotFoundError);
    await store.set('/0/zarr.json', new TextEncoder().encode('{"zarr_format": 3,'));
    const o = { shape: SHAPE, channels: 1, dtype: 'uint8', blockShape: BLOCK } as const;
    await expect(createOutputVolume(store, o)).rejects.toBeInstanceOf(VolumeFormatError);
    await expect(openOutputVolume(store)).rejects.toBeInstanceOf(VolumeFormatError);
  });
});

describe('OME-Zarr metadata', () => {
  it('writes ome.multiscales into the group, keeps other attributes, and feeds voxelSize back', async () => {
    const { store } = freshStore();
    const out = await createOutputVolume(store, {
      shape: SHAPE,
      channels: 2,
      dtype: 'uint8',
      blockShape: CHUNKS,
      attributes: { tessera: { job: 'j1' } },
    });
    await out.writeBlock([0, 0, 0], {
      box: out.blockBox([0, 0, 0]),
      channels: 2,
      data: new Uint8Array(2 * out.blockBox([0, 0, 0]).size).fill(9),
    });
    await writeOmeMetadata(store, {
      name: 'membranes',
      channels: ['boundary', 'background'],
      voxelSize: [40, 4, 4],
      unit: 'nanometer',
    });
    const group = await zarr.open(store, { kind: 'group' });
    expect(group.attrs.tessera).toEqual({ job: 'j1' });
    expect(group.attrs.ome).toMatchObject({
      version: '0.5',
      multiscales: [
        {
          name: 'membranes',
          axes: [
            { name: 'c', type: 'channel' },
            { name: 'z', type: 'space', unit: 'nanometer' },
            { name: 'y', type: 'space', unit: 'nanometer' },
            { name: 'x', type: 'space', unit: 'nanometer' },
          ],
          datasets: [
            { path: '0', coordinateTransformations: [{ type: 'scale', scale: [1, 40, 4, 4] }] },
          ],
        },
      ],
      omero: { channels: [{ label: 'boundary' }, { label: 'background' }] },
    });

    // The image group opens as an input (level 0 picked), and so does its array path.
    for (const input of [await openInputVolume(store), await openInputVolume(store, '0')]) {
      expect(input.voxelSize).toEqual([40, 4, 4]);
      expect(input).toMatchObject({ shape: SHAPE, channels: 2, dtype: 'uint8', arrayPath: '0' });
      const d = await input.readBox(new Box([0, 0, 0], [1, 1, 2]));
      expect(Array.from(d.data)).toEqual([9, 9, 9, 9]);
    }

    // Rewriting is idempotent and the channel count must match the array.
    await writeOmeMetadata(store, { name: 'membranes', channels: 2, voxelSize: [40, 4, 4] });
    await expect(writeOmeMetadata(store, { name: 'm', channels: 3 })).rejects.toBeInstanceOf(
      OutputMismatchError,
    );
  });
});

describe('stores', () => {
  it('LocalStore: atomic set leaves no temp files; missing keys are undefined', async () => {
    const { store, root } = freshStore();
    expect(await store.get('/nothing/here')).toBeUndefined();
    expect(await store.getRange('/nothing', { offset: 0, length: 4 })).toBeUndefined();
    await store.set('/a/b/c.bin', new Uint8Array([1, 2, 3, 4, 5]));
    await store.set('/a/b/c.bin', new Uint8Array([6, 7, 8]));
    await store.set('/a/.zattrs', new Uint8Array([1]));
    await store.set('/top', new Uint8Array([0]));
    expect(Array.from((await store.get('/a/b/c.bin'))!)).toEqual([6, 7, 8]);
    expect(Array.from((await store.getRange('/a/b/c.bin', { offset: 1, length: 9 }))!)).toEqual([
      7, 8,
    ]);
    expect(Array.from((await store.getRange('/a/b/c.bin', { suffixLength: 2 }))!)).toEqual([7, 8]);
    expect(await store.get('/top/below')).toBeUndefined();
    // A "directory" is not an object, as in S3.
    expect(await store.get('/a/b')).toBeUndefined();
    expect(await store.getRange('/a/b', { offset: 0, length: 1 })).toBeUndefined();
    const files = await readdir(root, { recursive: true });
    expect(files.filter((f) => f.includes('tmp'))).toEqual([]);
    const keys: string[] = [];
    for await (const k of store.list('/')) keys.push(k);
    expect(keys.sort()).toEqual(['/a/.zattrs', '/a/b/c.bin', '/top']);
    const under: string[] = [];
    for await (const k of store.list('/a/b')) under.push(k);
    expect(under).toEqual(['/a/b/c.bin']);
    await store.delete('/a/b/c.bin');
    await store.delete('/a/b/c.bin');
    expect(await store.get('/a/b/c.bin')).toBeUndefined();
    await expect(store.get('/a/../../etc/passwd' as AbsolutePath)).rejects.toBeInstanceOf(
      InvalidStoreKeyError,
    );
  });

  it('LocalStore: a failed write leaves the old object and no temp file', async () => {
    const { store, root } = freshStore();
    await store.set('/x/obj', new Uint8Array([1]));
    // A directory where the object should go makes the rename fail after the temp write.
    await store.set('/x/dir/inner', new Uint8Array([2]));
    await expect(store.set('/x/dir', new Uint8Array([3]))).rejects.toThrow();
    expect(Array.from((await store.get('/x/obj'))!)).toEqual([1]);
    const files = await readdir(join(root, 'x'));
    expect(files.sort()).toEqual(['dir', 'obj']);
  });

  it('PrefixedStore maps keys under a prefix and lists relative keys', async () => {
    const memory = new MemoryStore('memory://bucket');
    const partials = new PrefixedStore(memory, 'jobs/j1/partials/');
    const output = new PrefixedStore(memory, '/out.zarr');
    await partials.set('/0_0_0/c.bin', new Uint8Array([1]));
    await output.set('/notes.bin', new Uint8Array([2]));
    expect(await memory.get('/jobs/j1/partials/0_0_0/c.bin')).toEqual(new Uint8Array([1]));
    expect(await partials.get('/notes.bin')).toBeUndefined();
    expect(await memory.get('/out.zarr/notes.bin')).toEqual(new Uint8Array([2]));
    const keys: string[] = [];
    for await (const k of partials.list('/')) keys.push(k);
    expect(keys).toEqual(['/0_0_0/c.bin']);
    expect(partials.location).toBe('memory://bucket/jobs/j1/partials');
    expect(() => new PrefixedStore(memory, 'a/../b')).toThrow(InvalidStoreKeyError);
    // An output volume behind a prefix works like any other store.
    const out = await createOutputVolume(output, {
      shape: [2, 2, 2],
      channels: 1,
      dtype: 'uint8',
      blockShape: [2, 2, 2],
    });
    await out.writeBlock([0, 0, 0], {
      box: out.blockBox([0, 0, 0]),
      channels: 1,
      data: new Uint8Array(8).fill(4),
    });
    expect(await memory.get('/out.zarr/0/c/0/0/0/0')).toBeDefined();
  });

  it('openStoreForUrl: paths relative to baseDir, file:// URLs, and s3:// through the registry', async () => {
    const local = openStoreForUrl('data/in.zarr', { baseDir: dir });
    expect(local).toBeInstanceOf(LocalStore);
    expect(local.location).toBe(join(dir, 'data', 'in.zarr'));
    const fileUrl = openStoreForUrl(pathToFileURL(join(dir, 'x.zarr')).href);
    expect(fileUrl.location).toBe(join(dir, 'x.zarr'));

    const error = (() => {
      try {
        openStoreForUrl('s3://bucket/out.zarr');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(UnsupportedStoreSchemeError);
    expect(String(error)).toMatch(/AWS adapter/);
    expect(() => openStoreForUrl('gs://bucket/x')).toThrow(UnsupportedStoreSchemeError);

    registerStoreScheme('s3', (url) => new MemoryStore(url));
    try {
      expect(openStoreForUrl('s3://bucket/out.zarr').location).toBe('s3://bucket/out.zarr');
    } finally {
      unregisterStoreScheme('s3');
    }
  });
});

describe('rewriting a Zarr array in place', () => {
  it('keeps every edge chunk its own size (zarrita merges into the stored chunk)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-rewrite-'));
    try {
      // 16 = 7 + 7 + 2: the last z chunk is partly covered, so zarrita reads it to merge.
      const shape: [number, number, number] = [16, 40, 40];
      const data = new Float32Array(16 * 40 * 40).map((_, i) => (i % 255) / 255);
      for (let round = 0; round < 3; round++) {
        await writeZarrArray(new LocalStore(dir, { fsync: false }), {
          data,
          shape: [...shape],
          chunkShape: [7, 9, 11],
        });
        // Each stored chunk's frame says it holds 7·9·11 float32 values, no more.
        for (const key of ['c/2/0/0', 'c/2/4/3', 'c/0/0/0'])
          expect(frameContentSize(readFileSync(join(dir, key))), `round ${round}, ${key}`).toBe(
            7 * 9 * 11 * 4,
          );
        const v = await openInputVolume(new LocalStore(dir), undefined);
        const got = await v.readBox(Box.ofShape(shape));
        expect(Array.from(got.data).every((x, i) => x === data[i])).toBe(true);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('LocalStore on a read-only filesystem', () => {
  it('names the real cause (EROFS), not ENOENT of the directory it could not make', async (t) => {
    const mountPoint = mkdtempSync(join(tmpdir(), 'tessera-ro-'));
    try {
      try {
        execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m,ro', 'tmpfs', mountPoint]);
      } catch {
        t.skip(); // not root here: no read-only filesystem to make
      }
      try {
        const store = new LocalStore(join(mountPoint, 'out.zarr'));
        await expect(store.set('/0/c/0/0/0', new Uint8Array(3))).rejects.toMatchObject({
          code: 'EROFS',
        });
      } finally {
        execFileSync('umount', [mountPoint]);
      }
    } finally {
      rmSync(mountPoint, { recursive: true, force: true });
    }
  });
});
