// The output check (core/pipeline/output-check.ts) on a finished output in a MemoryStore:
// which objects it must find, what each depth sees, the zstd frame walk on real frames,
// and repairPlan's chunk sets on a plan whose geometry is worked out by hand.

import { describe, expect, it } from 'vitest';
import {
  checkOutput,
  type DamagedObject,
  MIN_FRAME_BYTES,
  zstdFrameProblem,
} from '../../core/pipeline/output-check.ts';
import { repairPlan } from '../../core/pipeline/repair.ts';
import {
  type AbsolutePath,
  LocalStore,
  MemoryStore,
  PrefixedStore,
} from '../../core/store/index.ts';
import { FastZstd } from '../../core/volume/zstd.ts';
import { tempDir } from '../helpers/job-dir.ts';
import { fixturePlan, writeFinishedOutput } from '../helpers/output-check-fixture.ts';

// Root + level-0 zarr.json + 3×6 level-0 blocks + level-1 zarr.json + level 1's 1×2×3
// blocks (shape [2,6,12] in blocks of [2,4,4]).
const OBJECTS = 1 + 1 + 18 + 1 + 6;

const summary = (d: readonly DamagedObject[]) => d.map((x) => [x.key, x.problem]);

async function cut(store: MemoryStore, key: AbsolutePath, keep: (n: number) => number) {
  const bytes = (await store.get(key))!;
  await store.set(key, bytes.subarray(0, keep(bytes.length)));
}

describe('checkOutput', () => {
  it('finds nothing wrong in a whole output, and counts every object it must hold', async () => {
    const ctx = await writeFinishedOutput(new MemoryStore());
    for (const depth of ['listing', 'frames', 'decode'] as const) {
      const r = await checkOutput(ctx, { depth });
      expect(r.damaged).toEqual([]);
      expect(r.checked).toBe(OBJECTS);
    }
  });

  it('names exactly a deleted owned block, a truncated seam block and a truncated pyramid block', async () => {
    const store = new MemoryStore();
    const ctx = await writeFinishedOutput(store);
    await store.delete('/0/c/0/0/0/1'); // owned by chunk 0_0_0
    await cut(store, '/0/c/0/0/1/2', (n) => Math.floor(n / 2)); // seam
    await cut(store, '/1/c/0/0/0/0', (n) => n - 1); // level 1
    const r = await checkOutput(ctx);
    expect(summary(r.damaged)).toEqual([
      ['/0/c/0/0/0/1', 'missing'],
      ['/0/c/0/0/1/2', 'truncated'],
      ['/1/c/0/0/0/0', 'truncated'],
    ]);
    expect(r.damaged.map((d) => (d.kind === 'block' ? [d.level, d.coord] : d.level))).toEqual([
      [0, [0, 0, 1]],
      [0, [0, 1, 2]],
      [1, [0, 0, 0]],
    ]);
    expect(r.checked).toBe(OBJECTS);
  });

  it('depth listing sees missing and empty objects only, without reading blocks', async () => {
    const store = new MemoryStore();
    const ctx = await writeFinishedOutput(store);
    await store.delete('/0/c/0/0/2/5');
    await store.set('/0/c/0/0/0/0', new Uint8Array(0));
    await cut(store, '/0/c/0/0/1/1', (n) => n - 1); // cut short: only a read sees it
    let reads = 0;
    const counting = Object.assign(Object.create(store) as MemoryStore, {
      get: (k: AbsolutePath) => {
        if (k.includes('/c/')) reads++;
        return store.get(k);
      },
    });
    const r = await checkOutput({ ...ctx, outputStore: counting }, { depth: 'listing' });
    expect(summary(r.damaged)).toEqual([
      ['/0/c/0/0/0/0', 'truncated'],
      ['/0/c/0/0/2/5', 'missing'],
    ]);
    expect(reads).toBe(0);
  });

  it('scope owned checks level 0 metadata and owned blocks only (the cloud Verify step)', async () => {
    const store = new MemoryStore();
    const ctx = await writeFinishedOutput(store, { pyramid: 1 });
    await store.delete('/0/c/0/0/1/2'); // seam: not written yet at Verify time
    await store.delete('/1/c/0/0/0/0'); // pyramid: not yet either
    await store.delete('/zarr.json');
    await store.delete('/0/c/0/0/0/3'); // owned by chunk 0_0_1
    const r = await checkOutput(ctx, { scope: 'owned' });
    expect(summary(r.damaged)).toEqual([['/0/c/0/0/0/3', 'missing']]);
    // Owned blocks by hand: y block 0 × x blocks 0,1,3,5 = 4 (y blocks 1, 2 are seams).
    expect(r.checked).toBe(1 + 4);
  });

  it('reports damaged metadata: missing, not JSON, another layout', async () => {
    const store = new MemoryStore();
    const ctx = await writeFinishedOutput(store);
    await store.delete('/zarr.json');
    await store.set('/0/zarr.json', new TextEncoder().encode('{"zarr_format": 3, '));
    const level1 = JSON.parse(new TextDecoder().decode((await store.get('/1/zarr.json'))!));
    level1.shape = [2, 2, 6, 11];
    await store.set('/1/zarr.json', new TextEncoder().encode(JSON.stringify(level1)));
    const r = await checkOutput(ctx);
    expect(summary(r.damaged)).toEqual([
      ['/zarr.json', 'missing'],
      ['/0/zarr.json', 'undecodable'],
      ['/1/zarr.json', 'wrong-size'],
    ]);
    // The blocks are found from the plan, not from the damaged metadata.
    expect(r.checked).toBe(OBJECTS);
  });

  it('--full decodes: a well-formed frame of the wrong size that states no size is caught only then', async () => {
    const store = new MemoryStore();
    const ctx = await writeFinishedOutput(store);
    // A zstd frame by hand: magic, descriptor 0 (no content size, one window byte), window
    // descriptor, then one last raw block of 5 bytes.
    const frame = Uint8Array.from([
      0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x00, 0x29, 0x00, 0x00, 1, 2, 3, 4, 5,
    ]);
    await store.set('/0/c/0/0/2/0', frame);
    expect((await checkOutput(ctx, { depth: 'frames' })).damaged).toEqual([]);
    const full = await checkOutput(ctx, { full: true });
    expect(summary(full.damaged)).toEqual([['/0/c/0/0/2/0', 'wrong-size']]);
    // 2 channels × 4³ voxels × 4 bytes.
    expect(full.damaged[0]!.detail).toContain('decodes to 5 bytes, a block of this level is 512');
  });
});

describe('zstdFrameProblem on real frames', () => {
  const size = 2 * 4 * 4 * 4 * 4;
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31) % 7;

  it('accepts a whole frame and finds every cut', async () => {
    const frame = await new FastZstd(1).encode(data);
    expect(zstdFrameProblem(frame, size)).toBeUndefined();
    for (let n = 0; n < frame.length; n++)
      expect(zstdFrameProblem(frame.subarray(0, n), size)?.problem, `cut at ${n}`).toBe(
        'truncated',
      );
  });

  it('names a frame of another size, stray bytes and non-zstd bytes', async () => {
    const frame = await new FastZstd(1).encode(data);
    expect(zstdFrameProblem(frame, size + 4)?.problem).toBe('wrong-size');
    const longer = new Uint8Array(frame.length + 2);
    longer.set(frame);
    expect(zstdFrameProblem(longer, size)).toEqual({
      problem: 'undecodable',
      detail: '2 stray bytes follow the zstd frame',
    });
    expect(zstdFrameProblem(new TextEncoder().encode('{"not": "zstd"}'), size)?.problem).toBe(
      'undecodable',
    );
    expect(MIN_FRAME_BYTES).toBe(8);
  });
});

describe('repairPlan (chunk sets from the fixture geometry, by hand)', () => {
  const block = (coord: [number, number, number], level = 0): DamagedObject => ({
    kind: 'block',
    level,
    coord,
    key: `/${level}/c/0/${coord.join('/')}` as AbsolutePath,
    problem: 'missing',
    detail: '',
  });

  it('an owned block → its owner; a seam block → every contributor; pyramid → rebuild', () => {
    const plan = fixturePlan();
    expect(repairPlan(plan, [block([0, 0, 1])])).toEqual({
      chunkIds: ['0_0_0'],
      seamBlocks: [],
      pyramid: false,
      metadata: [],
    });
    expect(repairPlan(plan, [block([0, 1, 2])]).chunkIds).toEqual([
      '0_0_0',
      '0_0_1',
      '0_1_0',
      '0_1_1',
    ]);
    const r = repairPlan(plan, [
      block([0, 2, 3]),
      block([0, 0, 3]),
      block([0, 1, 2]),
      block([0, 0, 0], 1),
      { kind: 'metadata', level: 1, key: '/1/zarr.json', problem: 'missing', detail: '' },
    ]);
    expect(r).toEqual({
      chunkIds: ['0_0_0', '0_0_1', '0_1_0', '0_1_1', '0_2_1'],
      seamBlocks: ['0_1_2', '0_2_3'],
      pyramid: true,
      metadata: ['/1/zarr.json'],
    });
  });

  it('a pyramid block alone re-runs no chunk', () => {
    expect(repairPlan(fixturePlan(), [block([0, 1, 2], 1)])).toEqual({
      chunkIds: [],
      seamBlocks: [],
      pyramid: true,
      metadata: [],
    });
  });
});

describe('Store.listWithSizes', () => {
  it('gives each object with its size: local, memory, prefixed', async () => {
    const t = tempDir();
    try {
      const stores = [new LocalStore(t.dir, { fsync: false }), new MemoryStore()];
      for (const s of stores) {
        await s.set('/a/b/c', new Uint8Array(5));
        await s.set('/a/d', new Uint8Array(0));
        await s.set('/e', new Uint8Array(3));
        const got = [];
        for await (const o of s.listWithSizes!('/a/')) got.push(o);
        got.sort((x, y) => (x.key < y.key ? -1 : 1));
        expect(got).toEqual([
          { key: '/a/b/c', size: 5 },
          { key: '/a/d', size: 0 },
        ]);
        const prefixed = new PrefixedStore(s, 'a');
        const inner = [];
        for await (const o of prefixed.listWithSizes('/b/')) inner.push(o);
        expect(inner).toEqual([{ key: '/b/c', size: 5 }]);
      }
    } finally {
      t.cleanup();
    }
  });
});
