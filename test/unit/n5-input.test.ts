// N5 input: datasets written by zarr-python's N5FSStore (raw, gzip, blosc, a 4-D one) and
// by a script following the N5 spec byte by byte (edge blocks cut to the dataset, one
// block missing), read through openInputVolume and compared with what the writing
// script computed (test/fixtures/formats/expected.json).

import { cpSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import {
  InputSelectionError,
  openInputVolume,
  VolumeFormatError,
  VolumeReadError,
} from '../../core/volume/index.ts';
import { expected, FORMATS_DIR, flatIndex, sha256 } from '../helpers/format-fixtures.ts';

const container = new LocalStore(join(FORMATS_DIR, 'data.n5'));
const temp = mkdtempSync(join(tmpdir(), 'tessera-n5-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

/** A copy of spec.n5 to damage. */
function specCopy(name: string): string {
  const dir = join(temp, name);
  cpSync(join(FORMATS_DIR, 'spec.n5'), dir, { recursive: true });
  return dir;
}

describe('N5 input', () => {
  it.each([
    ['raw', 'n5/raw'],
    ['gzip', 'n5/gzip'],
    ['blosc', 'n5/blosc'],
  ])('reads zarr-python N5 %s blocks as the writer stored them', async (name, key) => {
    const want = expected(key);
    const v = await openInputVolume(container, `volumes/${name}`);
    expect(v.shape).toEqual(want.shape);
    expect(v.channels).toBe(1);
    expect(v.dtype).toBe(want.dtype);
    expect(v.chunkShape).toEqual([2, 3, 4]);
    const d = await v.readBox(Box.ofShape(v.shape));
    expect(sha256(d.data)).toBe(want.sha256);
    for (const [at, value] of want.samples) expect(d.data[flatIndex(want.shape, at)]).toBe(value);
  });

  it('reads a 4-D [x, y, z, c] dataset as [c, z, y, x], all channels or the ones input.channels names', async () => {
    const want = expected('n5/channels');
    const v = await openInputVolume(container, 'volumes/channels');
    expect(v.channels).toBe(2);
    expect(v.shape).toEqual(want.shape.slice(1));
    expect(v.dtype).toBe('float32');
    const all = await v.readBox(Box.ofShape(v.shape));
    expect(sha256(all.data)).toBe(want.sha256);

    const second = await openInputVolume(container, 'volumes/channels', { channels: [1] });
    expect(second.channels).toBe(1);
    const d = await second.readBox(Box.ofShape(v.shape));
    const [, value] = want.samples.find(([at]) => at[0] === 1 && at[1] === 4)!;
    expect(d.data[flatIndex(v.shape, [4, 6, 8])]).toBe(value);
    expect([...d.data]).toEqual([...all.data.subarray(v.shape[0] * v.shape[1] * v.shape[2])]);

    const bad = await openInputVolume(container, 'volumes/channels', { channels: [2] }).catch(
      (e: unknown) => e,
    );
    expect(bad).toBeInstanceOf(InputSelectionError);
    expect((bad as InputSelectionError).field).toBe('input.channels');
  });

  it('reads spec-written blocks: big-endian int16, gzip, edge blocks cut short, a missing block as zeros', async () => {
    const want = expected('n5spec/ds');
    const v = await openInputVolume(new LocalStore(join(FORMATS_DIR, 'spec.n5')), 'ds');
    expect(v.dtype).toBe('int16');
    const d = await v.readBox(Box.ofShape(v.shape));
    expect(sha256(d.data)).toBe(want.sha256);
    for (const [at, value] of want.samples) expect(d.data[flatIndex(want.shape, at)]).toBe(value);
    // Voxel (2, 3, 4) lies in the block the writer left out.
    expect(d.data[flatIndex(want.shape, [2, 3, 4])]).toBe(0);
  });

  it('pads a box reaching outside the dataset with zeros and reads a box across blocks', async () => {
    const want = expected('n5/gzip');
    const v = await openInputVolume(container, 'volumes/gzip');
    const whole = await v.readBox(Box.ofShape(v.shape));
    expect(sha256(whole.data)).toBe(want.sha256);
    const box = new Box([-1, 2, 3], [3, 9, 11]);
    const part = await v.readBox(box);
    for (let z = box.start[0]; z < box.stop[0]; z++)
      for (let y = box.start[1]; y < box.stop[1]; y++)
        for (let x = box.start[2]; x < box.stop[2]; x++) {
          const inside = z >= 0 && y < 7 && x < 9;
          const got =
            part.data[flatIndex(box.shape, [z - box.start[0], y - box.start[1], x - box.start[2]])];
          expect(got).toBe(inside ? whole.data[flatIndex(want.shape, [z, y, x])] : 0);
        }
  });

  it('reports a cut-short block as a corrupt chunk naming its key', async () => {
    const dir = specCopy('truncated.n5');
    truncateSync(join(dir, 'ds', '0', '0', '0'), 20);
    const v = await openInputVolume(new LocalStore(dir), 'ds');
    const error = await v.readBox(new Box([0, 0, 0], [2, 2, 2])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeReadError);
    expect((error as VolumeReadError).reason).toBe('corrupt-chunk');
    expect(String(error)).toContain('ds/0/0/0');
  });

  it('refuses a block whose header dims do not fit its place in the dataset', async () => {
    const dir = specCopy('header.n5');
    const file = join(dir, 'ds', '0', '0', '0');
    const bytes = readFileSync(file);
    bytes.writeUInt32BE(1, 4); // x dim 4 -> 1: the block no longer covers x 1..3
    writeFileSync(file, bytes);
    const v = await openInputVolume(new LocalStore(dir), 'ds');
    const error = await v.readBox(new Box([0, 0, 0], [1, 1, 4])).catch((e: unknown) => e);
    expect((error as VolumeReadError).reason).toBe('corrupt-chunk');
    expect(String(error)).toMatch(/header dims \[1, 3, 2\]/);
  });

  it.each([
    ['compression', { compression: { type: 'xz' } }, 'codecs', /compression "xz"/],
    ['64-bit data', { dataType: 'uint64' }, 'data_type', /"uint64"/],
    [
      'a 5-D dataset',
      { dimensions: [9, 7, 5, 2, 2], blockSize: [4, 3, 2, 1, 1] },
      'shape',
      /5 axes/,
    ],
    ['a short blockSize', { blockSize: [4, 3] }, 'chunk_grid', /blockSize/],
  ] as const)(
    'refuses %s at open with a VolumeFormatError naming the field',
    async (what, edit, field, text) => {
      const dir = specCopy(`attrs-${what.replace(/\W/g, '')}.n5`);
      const file = join(dir, 'ds', 'attributes.json');
      writeFileSync(file, JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), ...edit }));
      const error = await openInputVolume(new LocalStore(dir), 'ds').catch((e: unknown) => e);
      expect(error, what).toBeInstanceOf(VolumeFormatError);
      expect((error as VolumeFormatError).field).toBe(field);
      expect(String(error)).toMatch(text);
    },
  );

  it('finds attributes that misdescribe every block at open (checkStoredChunk), not chunk by chunk', async () => {
    const dir = specCopy('dtype.n5');
    const file = join(dir, 'ds', 'attributes.json');
    writeFileSync(
      file,
      JSON.stringify({ ...JSON.parse(readFileSync(file, 'utf8')), dataType: 'int32' }),
    );
    const v = await openInputVolume(new LocalStore(dir), 'ds');
    const error = await v.checkStoredChunk().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect((error as VolumeFormatError).field).toBe('data_type');
    // The unedited dataset passes the same check.
    await (
      await openInputVolume(new LocalStore(join(FORMATS_DIR, 'spec.n5')), 'ds')
    ).checkStoredChunk();
  });

  it('refuses input.t on N5, which has no time axis', async () => {
    const error = await openInputVolume(container, 'volumes/raw', { t: 1 }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InputSelectionError);
    expect((error as InputSelectionError).field).toBe('input.t');
  });
});
