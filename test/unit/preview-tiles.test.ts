// Preview tiles stand in for decoding the output under the preview slices: the picture
// must be the same byte for byte with or without them, a missing tile must fall back to
// decoding, and the tiles must really be what the preview reads.

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { previewDepths, tileKey, writePreviewTiles } from '../../core/pipeline/index.ts';
import { type InputPanels, renderInputPanels, renderPreview } from '../../core/pipeline/preview.ts';
import { LocalStore } from '../../core/store/index.ts';
import { createOutputVolume } from '../../core/volume/index.ts';
import { openInputVolume } from '../../core/volume/input.ts';
import { pyramidLevels } from '../../core/volume/pyramid.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { lcgVolume, tempDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

const SHAPE: Vec3 = [20, 40, 36];
const BLOCK: Vec3 = [6, 16, 16];

async function setup(dtype: 'float32' | 'uint8') {
  const t = tempDir();
  cleanups.push(t.cleanup);
  await writeZarrArray(new LocalStore(join(t.dir, 'in.zarr'), { fsync: false }), {
    data: lcgVolume(SHAPE, 3),
    shape: [...SHAPE],
    chunkShape: [5, 7, 9],
  });
  const input = await openInputVolume(new LocalStore(join(t.dir, 'in.zarr')));
  const outStore = new LocalStore(join(t.dir, 'out.zarr'), { fsync: false });
  const out = await createOutputVolume(outStore, {
    shape: SHAPE,
    channels: 2,
    dtype,
    blockShape: BLOCK,
  });
  const work = new LocalStore(join(t.dir, 'work'), { fsync: false });
  const region = new Box([2, 3, 0], [19, 40, 33]);
  let s = 7;
  for (let cz = 0; cz < out.blockGrid[0]; cz++)
    for (let cy = 0; cy < out.blockGrid[1]; cy++)
      for (let cx = 0; cx < out.blockGrid[2]; cx++) {
        const box = out.blockBox([cz, cy, cx]);
        const n = 2 * box.size;
        const data = dtype === 'uint8' ? new Uint8Array(n) : new Float32Array(n);
        for (let i = 0; i < n; i++) {
          s = (s * 1103515245 + 12345) >>> 0;
          data[i] = dtype === 'uint8' ? s >>> 24 : (s >>> 8) / 2 ** 24;
        }
        const block = { box, channels: 2, data };
        await out.writeBlock([cz, cy, cx], block);
        await writePreviewTiles(work, region, [cz, cy, cx], block);
      }
  const preview = (tiles?: LocalStore, inputPanels?: Promise<InputPanels | undefined>) =>
    renderPreview(input, outStore, region, pyramidLevels(SHAPE, 0), {
      ...(tiles ? { tiles } : {}),
      ...(inputPanels ? { inputPanels } : {}),
    });
  return { out, work, region, preview, input };
}

describe('preview tiles', () => {
  for (const dtype of ['float32', 'uint8'] as const)
    it(`give the same preview.png as decoding the output (${dtype})`, async () => {
      const { preview, work } = await setup(dtype);
      const decoded = await preview();
      const tiled = await preview(work);
      expect(Buffer.from(tiled.png).equals(Buffer.from(decoded.png))).toBe(true);
    });

  it('a missing tile falls back to decoding; a different tile shows (so tiles are read)', async () => {
    const { preview, work, region, out } = await setup('float32');
    const decoded = await preview();
    const z = previewDepths(region)[1]!;
    const coord: Vec3 = [Math.floor(z / BLOCK[0]), 1, 1];
    await work.delete(tileKey(z, coord));
    expect(Buffer.from((await preview(work)).png).equals(Buffer.from(decoded.png))).toBe(true);
    const box = out.blockBox(coord);
    await work.set(
      tileKey(z, coord),
      new Uint8Array(new Float32Array(2 * box.shape[1] * box.shape[2]).fill(0.5).buffer),
    );
    expect(Buffer.from((await preview(work)).png).equals(Buffer.from(decoded.png))).toBe(false);
  });

  it('an input column drawn ahead gives the same picture, and is used only for the same area', async () => {
    const { preview, input, region } = await setup('float32');
    const decoded = await preview();
    const levels = pyramidLevels(SHAPE, 0);
    const ahead = await renderInputPanels(input, region, levels);
    const withAhead = await preview(undefined, Promise.resolve(ahead));
    expect(Buffer.from(withAhead.png).equals(Buffer.from(decoded.png))).toBe(true);
    // Used: altered panels show in the picture.
    const altered = { key: ahead.key, panels: ahead.panels.map((p) => p.map((v) => 255 - v)) };
    const shown = await preview(undefined, Promise.resolve(altered));
    expect(Buffer.from(shown.png).equals(Buffer.from(decoded.png))).toBe(false);
    // Drawn for another area (another region): ignored, as is one that failed.
    const other = await renderInputPanels(input, new Box([0, 0, 0], [10, 20, 20]), levels);
    const wrong = { key: other.key, panels: altered.panels };
    expect(Buffer.from((await preview(undefined, Promise.resolve(wrong))).png)).toEqual(
      Buffer.from(decoded.png),
    );
    const failed = Promise.reject(new Error('input unreadable'));
    expect(Buffer.from((await preview(undefined, failed)).png)).toEqual(Buffer.from(decoded.png));
  });
});
