// 5-D OME-Zarr (bioformats2raw's [t, c, z, y, x], written by zarr-python 2.13 as Zarr v2
// with "/" keys) and a 4-D image whose first axis is time: one time point and a list of
// channels selected (manifest input.t, input.channels), compared with what the writing
// script computed of the same selection (test/fixtures/formats/expected.json).

import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box } from '../../core/geometry/index.ts';
import { parseManifest } from '../../core/manifest/index.ts';
import { openJob } from '../../core/pipeline/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import {
  InputSelectionError,
  type InputVolume,
  openInputVolume,
  VolumeFormatError,
} from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { expected, FORMATS_DIR, flatIndex, sha256 } from '../helpers/format-fixtures.ts';

const bioformats = new LocalStore(join(FORMATS_DIR, 'ome5d.zarr'));
const temp = mkdtempSync(join(tmpdir(), 'tessera-ome5d-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

async function readAll(v: InputVolume) {
  return (await v.readBox(Box.ofShape(v.shape))).data;
}

describe('5-D OME-Zarr input', () => {
  it.each([
    ['t 1, every channel', { t: 1 }, 'ome5d/t1'],
    ['t 2, channel 1', { t: 2, channels: [1] }, 'ome5d/t2c1'],
    ['t 0, channels 1 then 0', { t: 0, channels: [1, 0] }, 'ome5d/t0c10'],
  ])('reads %s as the writer computed it', async (_what, select, key) => {
    const want = expected(key);
    const v = await openInputVolume(bioformats, '0', select);
    expect(v.channels).toBe(want.shape[0]);
    expect(v.shape).toEqual(want.shape.slice(1));
    expect(v.chunkShape).toEqual([2, 3, 4]);
    expect(v.voxelSize).toEqual([2, 0.5, 0.5]);
    const data = await readAll(v);
    expect(sha256(data)).toBe(want.sha256);
    for (const [at, value] of want.samples) expect(data[flatIndex(want.shape, at)]).toBe(value);
  });

  it("opens bioformats2raw's root as its series 0", async () => {
    const v = await openInputVolume(bioformats, '', { t: 1 });
    expect(v.arrayPath).toBe('0/0');
    expect(sha256(await readAll(v))).toBe(expected('ome5d/t1').sha256);
  });

  it('pads outside the image with zeros for a selection too', async () => {
    const v = await openInputVolume(bioformats, '0', { t: 2, channels: [1] });
    const whole = await readAll(v);
    const box = new Box([2, -2, 4], [6, 3, 8]);
    const part = await v.readBox(box);
    const shape = v.shape;
    for (let z = box.start[0]; z < box.stop[0]; z++)
      for (let y = box.start[1]; y < box.stop[1]; y++)
        for (let x = box.start[2]; x < box.stop[2]; x++) {
          const inside = z < shape[0] && y >= 0 && x < shape[2];
          const got = part.data[flatIndex(box.shape, [z - 2, y + 2, x - 4])];
          expect(got).toBe(inside ? whole[flatIndex(shape, [z, y, x])] : 0);
        }
  });

  it('refuses a missing or out-of-range time point and channel by field', async () => {
    const cases = [
      [{}, 'input.t', /3 time points; choose one with input.t/],
      [{ t: 3 }, 'input.t', /time point 3 does not exist/],
      [{ t: 0, channels: [2] }, 'input.channels', /channel 2 does not exist: the image has 2/],
      [{ t: 0, channels: [] }, 'input.channels', /empty/],
    ] as const;
    for (const [select, field, text] of cases) {
      const error = await openInputVolume(bioformats, '0', select).catch((e: unknown) => e);
      expect(error, JSON.stringify(select)).toBeInstanceOf(InputSelectionError);
      expect((error as InputSelectionError).field).toBe(field);
      expect(String(error)).toMatch(text);
    }
  });

  it('reads a 5-D image of OME-Zarr before 0.4 (multiscales without axes) as [t, c, z, y, x]; a bare 5-D array is refused', async () => {
    const dir = join(temp, 'ome03.zarr');
    cpSync(join(FORMATS_DIR, 'ome5d.zarr'), dir, { recursive: true });
    const attrsFile = join(dir, '0', '.zattrs');
    const attrs = JSON.parse(readFileSync(attrsFile, 'utf8'));
    delete attrs.multiscales[0].axes;
    attrs.multiscales[0].version = '0.3';
    writeFileSync(attrsFile, JSON.stringify(attrs));
    const v = await openInputVolume(new LocalStore(dir), '0', { t: 2, channels: [1] });
    expect(sha256(await readAll(v))).toBe(expected('ome5d/t2c1').sha256);
    // The same array without its group's multiscales says nothing of its axes.
    rmSync(attrsFile);
    const bare = await openInputVolume(new LocalStore(dir), '0/0', { t: 2 }).catch(
      (e: unknown) => e,
    );
    expect(bare).toBeInstanceOf(VolumeFormatError);
    expect(String(bare)).toMatch(/5 dimensions and no OME-Zarr multiscales say which axis is what/);
  });

  it('takes a 4-D image whose axes say [t, z, y, x] by its time axis, not as channels', async () => {
    const store = new LocalStore(join(FORMATS_DIR, 'ome-tzyx.zarr'));
    const unselected = await openInputVolume(store).catch((e: unknown) => e);
    expect(unselected).toBeInstanceOf(InputSelectionError);
    const v = await openInputVolume(store, '', { t: 1 });
    expect(v.channels).toBe(1);
    expect(sha256(await readAll(v))).toBe(expected('ome-tzyx/t1').sha256);
  });

  it('still reads a 4-D [c, z, y, x] array without OME metadata as channels, and selects among them', async () => {
    const store = new LocalStore(join(temp, 'czyx.zarr'));
    const data = Uint16Array.from({ length: 3 * 2 * 3 * 4 }, (_, i) => i * 7);
    await writeZarrArray(store, { data, shape: [3, 2, 3, 4], chunkShape: [1, 2, 2, 2] });
    const all = await openInputVolume(store);
    expect([all.channels, ...all.shape]).toEqual([3, 2, 3, 4]);
    expect([...(await readAll(all))]).toEqual([...data]);
    const picked = await openInputVolume(store, '', { channels: [2, 0] });
    expect([...(await readAll(picked))]).toEqual([
      ...data.subarray(48, 72),
      ...data.subarray(0, 24),
    ]);
    // A [c, z, y, x] array has no time axis: only t 0 fits.
    await expect(openInputVolume(store, '', { t: 1 })).rejects.toBeInstanceOf(InputSelectionError);
  });

  it('refuses axes with other than three space axes after time and channel', async () => {
    const store = new LocalStore(join(temp, 'bad-axes.zarr'));
    const data = new Uint8Array(2 * 3 * 4 * 5);
    await writeZarrArray(store, {
      path: '0',
      data,
      shape: [2, 3, 4, 5],
      chunkShape: [1, 3, 4, 5],
    });
    const axes = [
      { name: 'z', type: 'space' },
      { name: 'c', type: 'channel' },
      { name: 'y', type: 'space' },
      { name: 'x', type: 'space' },
    ];
    await store.set(
      '/zarr.json',
      new TextEncoder().encode(
        JSON.stringify({
          zarr_format: 3,
          node_type: 'group',
          attributes: {
            ome: { version: '0.5', multiscales: [{ axes, datasets: [{ path: '0' }] }] },
          },
        }),
      ),
    );
    const error = await openInputVolume(store).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect(String(error)).toMatch(/axes are \[space, channel, space, space\]/);
  });
});

describe('a job over a 5-D image', () => {
  it('opens the time point and channels its manifest names (openJob passes input.t and input.channels)', async () => {
    const manifest = parseManifest({
      version: 1,
      name: 'ome5d-job',
      input: { url: join(FORMATS_DIR, 'ome5d.zarr'), array: '0', t: 2, channels: [1] },
      output: { url: join(temp, 'job-out.zarr'), dtype: 'float32' },
      model: { url: 'unused.onnx', patchShape: [2, 4, 4], outputChannels: 1 },
      overlap: [0, 0, 0],
      chunkShape: [4, 4, 4],
    });
    const ctx = await openJob(manifest, {
      jobId: 'ome5d-job-0123456789',
      work: new LocalStore(join(temp, 'work'), { fsync: false }),
    });
    expect(ctx.input.channels).toBe(1);
    expect(ctx.description.input).toMatchObject({ shape: [4, 5, 6], dtype: 'uint16' });
    expect(sha256(await readAll(ctx.input))).toBe(expected('ome5d/t2c1').sha256);
  });
});

describe('manifest input.t and input.channels', () => {
  const base = {
    version: 1,
    name: 'tc-select',
    input: { url: 'data/image.zarr', array: '0' },
    output: { url: 'data/pred.zarr', dtype: 'float32' },
    model: { url: 'models/unet.onnx', patchShape: [8, 16, 16], outputChannels: 1 },
    overlap: [2, 4, 4],
    chunkShape: [16, 32, 32],
  };
  const withInput = (extra: object) => ({ ...base, input: { ...base.input, ...extra } });

  it('accepts a time index and a channel list', () => {
    const m = parseManifest(withInput({ t: 2, channels: [1, 0] }));
    expect(m.input.t).toBe(2);
    expect(m.input.channels).toEqual([1, 0]);
  });

  it.each([
    ['a negative t', { t: -1 }, /input\.t/],
    ['a fractional t', { t: 0.5 }, /input\.t/],
    ['an empty channel list', { channels: [] }, /input\.channels.*at least one channel/],
    ['a negative channel', { channels: [0, -1] }, /input\.channels/],
  ])('refuses %s, naming the field', (_what, extra, text) => {
    expect(() => parseManifest(withInput(extra))).toThrow(text);
  });
});
