// The precomputed reader against volumes written by an independent writer: the Python
// script test/fixtures/precomputed/generate.py (numpy, gzip, PIL), written from the
// Neuroglancer spec, which also wrote each whole volume as it meant it (expected/*.bin)
// and its sha256 (expected.json). Nothing expected here is computed by the reader.

import { createHash } from 'node:crypto';
import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import {
  PrecomputedChunkError,
  PrecomputedInfoError,
  PrecomputedScaleError,
} from '../../core/volume/precomputed/errors.ts';
import { isPrecomputed, openPrecomputedInput } from '../../core/volume/precomputed/input.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/precomputed');
const expected = JSON.parse(readFileSync(join(FIXTURES, 'expected.json'), 'utf8')) as Record<
  string,
  {
    volume: string;
    mip: number;
    dtype: string;
    channels: number;
    shape: [number, number, number];
    sha256: string;
  }
>;
const volume = (name: string) => new LocalStore(join(FIXTURES, 'volumes', name));

/** The values as the writer stored them: little-endian bytes of its dtype (uint64 exact). */
function bytesOf(data: ArrayLike<number>, dtype: string): Uint8Array {
  if (dtype === 'uint64') {
    const out = new BigUint64Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = BigInt(data[i]!);
    return new Uint8Array(out.buffer);
  }
  const ctor = {
    uint8: Uint8Array,
    uint16: Uint16Array,
    uint32: Uint32Array,
    float32: Float32Array,
  }[dtype];
  if (ctor === undefined) throw new Error(`no test conversion for ${dtype}`);
  return new Uint8Array(ctor.from(data).buffer);
}

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

const exact = Object.entries(expected).filter(([k]) => !k.startsWith('_') && !k.startsWith('jpeg'));

describe('precomputed input, against the independent writer', () => {
  it.each(exact)('%s reads bit-identically', async (_name, e) => {
    const v = await openPrecomputedInput(volume(e.volume), { mip: e.mip });
    expect(v.shape).toEqual(e.shape);
    expect(v.channels).toBe(e.channels);
    const whole = await v.readBox(Box.ofShape(e.shape));
    expect(sha256(bytesOf(whole.data, e.dtype))).toBe(e.sha256);
  });

  it('names the dtype, chunk shape (z, y, x) and nm voxel size from info', async () => {
    const v = await openPrecomputedInput(volume('raw-uint16'));
    expect(v.dtype).toBe('uint16');
    expect(v.chunkShape).toEqual([8, 10, 12]);
    expect(v.voxelSize).toEqual([40, 4, 4]);
    expect((await openPrecomputedInput(volume('cseg-uint64'))).dtype).toBe('float64');
  });

  it('chooses the scale by key as by index', async () => {
    const byKey = await openPrecomputedInput(volume('raw-uint16'), { mip: '8_8_40' });
    const e = expected['raw-uint16@1']!;
    expect(byKey.shape).toEqual(e.shape);
    const whole = await byKey.readBox(Box.ofShape(e.shape));
    expect(sha256(bytesOf(whole.data, 'uint16'))).toBe(e.sha256);
  });

  it('pads with zeros outside the volume, at the same place as inside', async () => {
    const e = expected['gzip-float32@0']!;
    const v = await openPrecomputedInput(volume('gzip-float32'));
    const ref = new Float32Array(
      readFileSync(join(FIXTURES, 'expected/gzip-float32@0.bin')).buffer.slice(0),
    );
    const box = new Box([-3, 5, 20], [6, 30, 33]); // over z=0, y=24 and x=28 edges
    const got = await v.readBox(box);
    const [Z, Y, X] = e.shape;
    let i = 0;
    for (let c = 0; c < 2; c++)
      for (let z = box.start[0]; z < box.stop[0]; z++)
        for (let y = box.start[1]; y < box.stop[1]; y++)
          for (let x = box.start[2]; x < box.stop[2]; x++, i++) {
            const inside = z >= 0 && z < Z && y < Y && x < X;
            const want = inside ? ref[((c * Z + z) * Y + y) * X + x]! : 0;
            if (got.data[i] !== want)
              throw new Error(`c${c} z${z} y${y} x${x}: ${got.data[i]} ≠ ${want}`);
          }
  });

  it.each([
    ['jpeg-uint8', 1],
    ['jpeg-rgb', 3],
  ] as const)(
    '%s decodes to within 3 of libjpeg (PIL), near the source',
    async (name, channels) => {
      const e = expected[`${name}@0`]!;
      const v = await openPrecomputedInput(volume(name));
      expect(v.channels).toBe(channels);
      const got = (await v.readBox(Box.ofShape(e.shape))).data;
      const pil = readFileSync(join(FIXTURES, `expected/${name}@0.bin`));
      const source = readFileSync(join(FIXTURES, `expected/${name}-source@0.bin`));
      expect(got.length).toBe(pil.length);
      let worst = 0;
      let meanErr = 0;
      for (let i = 0; i < got.length; i++) {
        worst = Math.max(worst, Math.abs(got[i]! - pil[i]!));
        meanErr += Math.abs(got[i]! - source[i]!) / got.length;
      }
      expect(worst).toBeLessThanOrEqual(3); // IDCT and YCbCr rounding differ between decoders
      expect(meanErr).toBeLessThan(6); // the lossy step itself: still the image, not noise
    },
  );

  it('detects a precomputed volume by its info file', async () => {
    expect(await isPrecomputed(volume('jpeg-uint8'))).toBe(true);
    expect(await isPrecomputed(new LocalStore(FIXTURES))).toBe(false);
  });
});

describe('precomputed input refusals', () => {
  const dirs: string[] = [];
  const copy = (name: string) => {
    const dir = mkdtempSync(join(tmpdir(), 'tessera-pc-'));
    dirs.push(dir);
    cpSync(join(FIXTURES, 'volumes', name), dir, { recursive: true });
    return dir;
  };
  afterAll(() => {
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  it('a missing scale is refused naming the scales there are', async () => {
    const err = await openPrecomputedInput(volume('raw-uint16'), { mip: 5 }).catch((e) => e);
    expect(err).toBeInstanceOf(PrecomputedScaleError);
    expect(err.message).toContain('0 ("4_4_40"), 1 ("8_8_40")');
  });

  it('an info without scales is refused naming the key', async () => {
    const dir = copy('raw-uint16');
    writeFileSync(
      join(dir, 'info'),
      JSON.stringify({ type: 'image', data_type: 'uint16', num_channels: 1, scales: [] }),
    );
    const err = await openPrecomputedInput(new LocalStore(dir)).catch((e) => e);
    expect(err).toBeInstanceOf(PrecomputedInfoError);
    expect(err.field).toBe('scales');
  });

  it('a chunk cut short names its file and scale', async () => {
    const dir = copy('raw-uint16');
    truncateSync(join(dir, '4_4_40', '3-15_5-15_7-15'), 100);
    const v = await openPrecomputedInput(new LocalStore(dir));
    const err = await v.readBox(new Box([0, 0, 0], [4, 4, 4])).catch((e) => e);
    expect(err).toBeInstanceOf(PrecomputedChunkError);
    expect(err.file).toBe('4_4_40/3-15_5-15_7-15');
    expect(err.scale).toBe('4_4_40');
    await expect(v.checkStoredChunk()).rejects.toBeInstanceOf(PrecomputedChunkError);
  });

  it('a damaged shard names the shard file', async () => {
    const dir = copy('sharded-gzip');
    for (const s of ['0', '1', '2', '3']) truncateSync(join(dir, '8_8_8', `${s}.shard`), 70);
    const v = await openPrecomputedInput(new LocalStore(dir));
    const err = await v.readBox(new Box([0, 0, 0], [20, 24, 28])).catch((e) => e);
    expect(err).toBeInstanceOf(PrecomputedChunkError);
    expect(err.message).toMatch(/8_8_8\/[0-3]\.shard/);
  });
});

describe('openInputVolume dispatch', () => {
  it('finds a precomputed volume by its info, or by precomputed:// and input.mip', async () => {
    const { openInputVolume } = await import('../../core/volume/input.ts');
    const found = await openInputVolume(volume('raw-uint16'));
    expect(found.shape).toEqual(expected['raw-uint16@0']!.shape);
    const asked = await openInputVolume(volume('raw-uint16'), '', {
      url: 'precomputed://x',
      mip: 1,
    });
    expect(asked.shape).toEqual(expected['raw-uint16@1']!.shape);
    // input.mip on a store without an info file: told it is for precomputed inputs.
    const err = await openInputVolume(new LocalStore(FIXTURES), '', { mip: 0 }).catch((e) => e);
    expect(err).toBeInstanceOf(PrecomputedInfoError);
    expect(err.message).toContain('input.mip is for precomputed inputs');
    const path = await openInputVolume(volume('raw-uint16'), 'sub', { mip: 0 }).catch((e) => e);
    expect(path).toBeInstanceOf(PrecomputedInfoError);
  });

  it('reads the channels input.channels names, in that order', async () => {
    const e = expected['jpeg-rgb@0']!;
    const all = await openPrecomputedInput(volume('jpeg-rgb'));
    const picked = await openPrecomputedInput(volume('jpeg-rgb'), { channels: [2, 0] });
    expect(picked.channels).toBe(2);
    const box = Box.ofShape(e.shape);
    const a = (await all.readBox(box)).data;
    const p = (await picked.readBox(box)).data;
    const n = box.size;
    expect(p.subarray(0, n)).toEqual(a.subarray(2 * n, 3 * n));
    expect(p.subarray(n, 2 * n)).toEqual(a.subarray(0, n));
    await expect(openPrecomputedInput(volume('jpeg-rgb'), { t: 1 })).rejects.toThrow('input.t');
  });
});
