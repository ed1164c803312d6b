// Output channel names in the preview: each column is captioned (the input, then
// model.channelNames or "channel N"), drawn with the built-in 5×7 font. The glyphs are
// checked against shapes drawn out by hand here.

import { afterAll, describe, expect, it } from 'vitest';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { drawText, glyph, textWidth } from '../../core/image/font.ts';
import { renderPreview } from '../../core/pipeline/preview.ts';
import { LocalStore } from '../../core/store/index.ts';
import { createOutputVolume, openInputVolume } from '../../core/volume/index.ts';
import { pyramidLevels } from '../../core/volume/pyramid.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { tempDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** Pixels of `img` as rows of '#' (value 255) and '.' (anything else). */
function art(img: { width: number; height: number; pixels: Uint8Array }): string[] {
  const rows: string[] = [];
  for (let y = 0; y < img.height; y++) {
    let r = '';
    for (let x = 0; x < img.width; x++) r += img.pixels[y * img.width + x] === 255 ? '#' : '.';
    rows.push(r);
  }
  return rows;
}

describe('the built-in font', () => {
  it('draws the classic 5×7 shapes, one blank column between characters', () => {
    const img = { width: 11, height: 7, pixels: new Uint8Array(77) };
    drawText(img, 'm1', 0, 0);
    expect(art(img)).toEqual([
      '#...#...#..',
      '##.##..##..',
      '#.#.#...#..',
      '#.#.#...#..',
      '#...#...#..',
      '#...#...#..',
      '#...#..###.',
    ]);
    expect(textWidth('m1')).toBe(11);
    expect(glyph('~')).toEqual(glyph('?'));
  });

  it('scales and cuts at maxX', () => {
    const img = { width: 16, height: 14, pixels: new Uint8Array(16 * 14) };
    // The second I starts at x = 12 (6 columns × 2); its top bar (x 14..19) is cut at 15.
    drawText(img, 'II', 0, 0, { scale: 2, maxX: 15 });
    const rows = art(img);
    expect(rows[0]).toBe('..######......#.');
    expect(rows[1]).toBe('..######......#.');
    expect(rows[2]).toBe('....##..........');
    expect(rows.every((r) => r[15] === '.')).toBe(true);
  });
});

describe('preview captions', () => {
  const SHAPE: Vec3 = [4, 16, 16];
  async function setup() {
    const t = tempDir('tessera-captions-');
    cleanups.push(t.cleanup);
    const inStore = new LocalStore(`${t.dir}/in.zarr`, { fsync: false });
    await writeZarrArray(inStore, {
      data: new Uint8Array(4 * 16 * 16).map((_, i) => i % 251),
      shape: [...SHAPE],
      chunkShape: [4, 16, 16],
    });
    const outStore = new LocalStore(`${t.dir}/out.zarr`, { fsync: false });
    const out = await createOutputVolume(outStore, {
      shape: SHAPE,
      channels: 2,
      dtype: 'float32',
      blockShape: SHAPE,
      owner: 'captions-1',
    });
    const box = Box.ofShape(SHAPE);
    await out.writeBlock([0, 0, 0], {
      box,
      channels: 2,
      data: new Float32Array(2 * box.size).map((_, i) => (i % 17) / 17),
    });
    const input = await openInputVolume(inStore);
    return (channelNames?: string[]) =>
      renderPreview(input, outStore, box, pyramidLevels(SHAPE, 0), {
        ...(channelNames ? { channelNames } : {}),
      });
  }

  it('names the columns after model.channelNames, else "channel N"', async () => {
    const preview = await setup();
    const named = await preview(['membrane', 'mito']);
    const plain = await preview();
    expect(named.columns).toEqual(['input', 'membrane', 'mito']);
    expect(plain.columns).toEqual(['input', 'channel 0', 'channel 1']);
    // The captions are drawn: same size, different pictures.
    expect(named.height).toBe(plain.height);
    expect(Buffer.from(named.png).equals(Buffer.from(plain.png))).toBe(false);
  });
});
