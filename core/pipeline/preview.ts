// preview.png: the input slice beside each output channel, at a few depths, so a user
// sees at a glance whether the model did something sensible.
//
//            INPUT     CHANNEL 0   MITO        ← a caption band (the channel names)
//   z = ¼   [panel]    [panel]     [panel]
//   z = ½   [panel]    [panel]     [panel]
//   z = ¾   [panel]    [panel]     [panel]
//
// Each panel pixel is the mean of p×p voxels (p a power of two, so a pyramid level
// with a factor dividing p can stand in for level 0 and be read instead). Slices are
// read in strips a storage block high: memory is a strip plus the panels, whatever
// the volume size, and only the blocks under the three slices are read. Regions wider
// than `maxSourceSide` show their central `maxSourceSide`² voxels.

import type { NumericArray } from '../array/dense.ts';
import { Box, type Vec3 } from '../geometry/index.ts';
import { drawText, GLYPH_HEIGHT, textWidth } from '../image/font.ts';
import { encodeGrayPng } from '../image/png.ts';
import type { Store } from '../store/index.ts';
import type { InputVolume } from '../volume/index.ts';
import { type OutputVolume, openOutputVolume } from '../volume/output.ts';
import { LevelStore, type PyramidLevel } from '../volume/pyramid.ts';
import { previewDepths, readPreviewTile } from './preview-tiles.ts';

export const PREVIEW_KEY = '/preview.png';

export interface PreviewOptions {
  /** Largest panel side in pixels. */
  maxPanel?: number;
  /** Depths shown (rows of the grid). */
  depths?: number;
  /** Largest side, in level-0 voxels, of the slice area shown; larger regions are cropped. */
  maxSourceSide?: number;
  /** The job's work store, where local runs leave preview tiles (see preview-tiles.ts). */
  tiles?: Store;
  /**
   * The input column, rendered ahead (renderInputPanels): it depends on the input alone,
   * so a local run draws it while the workers infer instead of after them. Used when it
   * was drawn for the same area; otherwise (or if it failed) drawn here.
   */
  inputPanels?: Promise<InputPanels | undefined>;
  /** Captions of the output columns (model.channelNames); default "channel 0", ... */
  channelNames?: readonly string[];
}

/** The input column of a preview: one panel per depth, and the area it was drawn for. */
export interface InputPanels {
  readonly key: string;
  readonly panels: Float64Array[];
}

export interface Preview {
  png: Uint8Array;
  width: number;
  height: number;
  /** Column captions: "input", then one per output channel. */
  columns: string[];
  /** Level-0 z of each row. */
  depths: number[];
  /** Level-0 voxels per panel pixel side. */
  voxelsPerPixel: number;
  /** The (y, x) area shown, level 0, as a z-less box (z = 0..1). */
  area: Box;
  /** Output pyramid level read. */
  level: string;
}

const GAP = 4;
const GAP_VALUE = 96;

interface Source {
  /** Reads the z-slice `z` (source coordinates) over rows [y0, y1), columns [x0, x1). */
  read(z: number, y0: number, y1: number, x0: number, x1: number): Promise<Slab>;
  /** Level-0 voxels per source voxel on y and x (1, or a pyramid level's factor). */
  factor: number;
  /** The same on z. */
  zFactor: number;
  /** Rows per read: a storage block's height. */
  stripRows: number;
  channels: number;
}

interface Slab {
  data: NumericArray;
  channels: number;
  rows: number;
  cols: number;
}

interface Geometry {
  level: PyramidLevel | undefined;
  area: { ay0: number; ax0: number; y1: number; x1: number; p: number; ph: number; pw: number };
  depths: number[];
}

function previewGeometry(
  region: Box,
  levels: readonly PyramidLevel[],
  o: PreviewOptions,
): Geometry {
  const maxPanel = o.maxPanel ?? 512;
  const maxSide = o.maxSourceSide ?? 8192;
  const depthCount = Math.max(1, Math.min(o.depths ?? 3, region.shape[0]));
  // The shown area: the region's (y, x) extent, cropped to its centre when too large.
  const side = (a: 1 | 2): [number, number] => {
    const len = region.shape[a];
    const keep = Math.min(len, maxSide);
    const start = region.start[a] + Math.floor((len - keep) / 2);
    return [start, start + keep];
  };
  const [y0, y1] = side(1);
  const [x0, x1] = side(2);
  const p = 2 ** Math.max(0, Math.ceil(Math.log2(Math.max(y1 - y0, x1 - x0) / maxPanel)));
  // The coarsest pyramid level still at least as fine as one panel pixel.
  const level =
    [...levels].reverse().find((l) => l.factor[1] === l.factor[2] && p % l.factor[2] === 0) ??
    levels[0];
  const f = level?.factor ?? ([1, 1, 1] as Vec3);
  // Align the area to the level's voxels so input and output panels cover the same voxels.
  const ay0 = Math.floor(y0 / f[1]) * f[1];
  const ax0 = Math.floor(x0 / f[2]) * f[2];
  const ph = Math.ceil((y1 - ay0) / p);
  const pw = Math.ceil((x1 - ax0) / p);
  return {
    level,
    area: { ay0, ax0, y1, x1, p, ph, pw },
    depths: previewDepths(region, depthCount),
  };
}

function inputKey(input: InputVolume, g: Geometry): string {
  return JSON.stringify([input.location, input.arrayPath, g.area, g.depths]);
}

async function drawInputPanels(input: InputVolume, g: Geometry): Promise<InputPanels> {
  const source: Source = {
    factor: 1,
    zFactor: 1,
    stripRows: input.chunkShape[1],
    channels: 1,
    read: async (z, ya, yb, xa, xb) => {
      const d = await input.readBox(new Box([z, ya, xa], [z + 1, yb, xb]));
      // Channel 0 only: the first channel is what a grayscale panel can show.
      return { data: d.data, channels: 1, rows: yb - ya, cols: xb - xa };
    },
  };
  const panels: Float64Array[] = [];
  for (const z of g.depths) panels.push((await slicePanels(source, z, g.area))[0]!);
  return { key: inputKey(input, g), panels };
}

/** The input column of renderPreview with the same arguments, drawn on its own. */
export function renderInputPanels(
  input: InputVolume,
  region: Box,
  levels: readonly PyramidLevel[],
  o: PreviewOptions = {},
): Promise<InputPanels> {
  return drawInputPanels(input, previewGeometry(region, levels, o));
}

export async function renderPreview(
  input: InputVolume,
  outputStore: Store,
  region: Box,
  levels: readonly PyramidLevel[],
  o: PreviewOptions = {},
): Promise<Preview> {
  // Handled from the start: one that failed is only drawn again.
  const drawnAhead = o.inputPanels?.catch(() => undefined);
  const g = previewGeometry(region, levels, o);
  const { level, depths } = g;
  const { ay0, ax0, y1, x1, p, ph, pw } = g.area;
  const outVol = await openOutputVolume(
    level === undefined || level.path === '0'
      ? outputStore
      : new LevelStore(outputStore, Number(level.path)),
  );
  const f = level?.factor ?? ([1, 1, 1] as Vec3);
  const outSource: Source = {
    factor: f[1],
    zFactor: f[0],
    stripRows: outVol.blockShape[1],
    channels: outVol.channels,
    read: async (z, ya, yb, xa, xb) => {
      const tiled =
        o.tiles && (level === undefined || level.path === '0')
          ? await stripFromTiles(o.tiles, outVol, z, ya, yb, xa, xb)
          : undefined;
      if (tiled) return tiled;
      const d = await outVol.readBox(new Box([z, ya, xa], [z + 1, yb, xb]));
      return { data: d.data, channels: d.channels, rows: yb - ya, cols: xb - xa };
    },
  };
  const ahead = await drawnAhead;
  const panelsIn =
    ahead?.key === inputKey(input, g) ? ahead.panels : (await drawInputPanels(input, g)).panels;
  const panelsOut: Float64Array[][] = [];
  for (const z of depths) panelsOut.push(await slicePanels(outSource, z, g.area));
  const toByteIn = displayMap(panelsIn, input.dtype === 'uint8' ? [0, 255] : undefined);
  const flatOut = panelsOut.flat();
  const outWindow: [number, number] | undefined =
    outVol.dtype === 'uint8' ? [0, 255] : withinUnit(flatOut) ? [0, 1] : undefined;
  const toByteOut = displayMap(flatOut, outWindow);

  // Tiny test volumes are blown up to stay visible; real ones are never enlarged.
  const up = Math.max(1, Math.floor(128 / Math.max(pw, ph)));
  const cols = 1 + outVol.channels;
  const cw = pw * up;
  const ch = ph * up;
  const columns = [
    'input',
    ...Array.from({ length: outVol.channels }, (_, c) => o.channelNames?.[c] ?? `channel ${c}`),
  ];
  // The caption band: font pixels 2×2 on panels wide enough, else 1×1.
  const fontScale = cw >= 192 ? 2 : 1;
  const band = GLYPH_HEIGHT * fontScale + 2 * GAP;
  const width = cols * cw + (cols - 1) * GAP;
  const height = band + depths.length * ch + (depths.length - 1) * GAP;
  const pixels = new Uint8Array(width * height).fill(GAP_VALUE);
  const image = { width, height, pixels };
  columns.forEach((caption, col) => {
    const x0 = col * (cw + GAP);
    // Centred over its column, cut at the column's edge when too long.
    const x = x0 + Math.max(0, Math.floor((cw - textWidth(caption, fontScale)) / 2));
    drawText(image, caption, x, GAP, { value: 255, scale: fontScale, maxX: x0 + cw });
  });
  const blit = (panel: Float64Array, map: (v: number) => number, row: number, col: number) => {
    const oy = band + row * (ch + GAP);
    const ox = col * (cw + GAP);
    for (let y = 0; y < ch; y++)
      for (let x = 0; x < cw; x++)
        pixels[(oy + y) * width + ox + x] = map(
          panel[Math.floor(y / up) * pw + Math.floor(x / up)]!,
        );
  };
  for (let r = 0; r < depths.length; r++) {
    blit(panelsIn[r]!, toByteIn, r, 0);
    for (let c = 0; c < outVol.channels; c++) blit(panelsOut[r]![c]!, toByteOut, r, c + 1);
  }
  return {
    png: encodeGrayPng(image),
    width,
    height,
    columns,
    depths,
    voxelsPerPixel: p,
    area: new Box([0, ay0, ax0], [1, y1, x1]),
    level: level?.path ?? '0',
  };
}

/**
 * Rows [ya, yb), columns [xa, xb) of the output plane z, from the preview tiles of the
 * blocks under them; undefined when any tile is missing (the caller decodes instead).
 */
async function stripFromTiles(
  tiles: Store,
  out: OutputVolume,
  z: number,
  ya: number,
  yb: number,
  xa: number,
  xb: number,
): Promise<Slab | undefined> {
  const rows = yb - ya;
  const cols = xb - xa;
  const C = out.channels;
  const data =
    out.dtype === 'uint8' ? new Uint8Array(C * rows * cols) : new Float32Array(C * rows * cols);
  const [bz, by, bx] = out.blockShape;
  const cz = Math.floor(z / bz);
  for (let cy = Math.floor(ya / by); cy * by < yb; cy++)
    for (let cx = Math.floor(xa / bx); cx * bx < xb; cx++) {
      const box = out.blockBox([cz, cy, cx]);
      const tile = await readPreviewTile(tiles, z, [cz, cy, cx], box, C, out.dtype);
      if (!tile) return undefined;
      const [ty, tx] = [box.shape[1], box.shape[2]];
      const y0 = Math.max(ya, box.start[1]);
      const y1 = Math.min(yb, box.stop[1]);
      const x0 = Math.max(xa, box.start[2]);
      const x1 = Math.min(xb, box.stop[2]);
      for (let c = 0; c < C; c++)
        for (let y = y0; y < y1; y++) {
          const from = (c * ty + (y - box.start[1])) * tx + (x0 - box.start[2]);
          data.set(tile.subarray(from, from + (x1 - x0)), (c * rows + (y - ya)) * cols + (x0 - xa));
        }
    }
  return { data, channels: C, rows, cols };
}

/** One panel per channel of source `s` at level-0 depth `z`: p×p means over the area. */
async function slicePanels(
  s: Source,
  z: number,
  a: { ay0: number; ax0: number; y1: number; x1: number; p: number; ph: number; pw: number },
): Promise<Float64Array[]> {
  const q = a.p / s.factor;
  const sum = Array.from({ length: s.channels }, () => new Float64Array(a.ph * a.pw));
  const count = new Float64Array(a.ph * a.pw);
  const sy0 = a.ay0 / s.factor;
  const sx0 = a.ax0 / s.factor;
  const sy1 = Math.ceil(a.y1 / s.factor);
  const sx1 = Math.ceil(a.x1 / s.factor);
  const sz = Math.floor(z / s.zFactor);
  // Strips aligned to storage blocks: each block under the slice is decoded once.
  const strip = Math.max(1, s.stripRows);
  for (let ya = Math.floor(sy0 / strip) * strip; ya < sy1; ya += strip) {
    const lo = Math.max(ya, sy0);
    const hi = Math.min(ya + strip, sy1);
    const slab = await s.read(sz, lo, hi, sx0, sx1);
    for (let c = 0; c < s.channels; c++) {
      const acc = sum[c]!;
      for (let y = 0; y < slab.rows; y++) {
        const py = Math.floor((lo + y - sy0) / q);
        const row = (c * slab.rows + y) * slab.cols;
        for (let x = 0; x < slab.cols; x++) {
          const i = py * a.pw + Math.floor(x / q);
          acc[i]! += slab.data[row + x]!;
          if (c === 0) count[i]!++;
        }
      }
    }
  }
  for (const acc of sum)
    for (let i = 0; i < acc.length; i++) acc[i] = acc[i]! / Math.max(1, count[i]!);
  return sum;
}

function withinUnit(panels: Float64Array[]): boolean {
  return panels.every((p) => p.every((v) => v >= -1e-6 && v <= 1 + 1e-6));
}

/**
 * Value → gray byte over `window`, or over the 0.5–99.5 percentiles of the panels when
 * there is no natural window (uint16 or float input, unbounded model outputs).
 */
function displayMap(panels: Float64Array[], window?: [number, number]): (v: number) => number {
  let [lo, hi] = window ?? [0, 0];
  if (window === undefined) {
    const all = Float64Array.from(panels.flatMap((p) => Array.from(p))).sort();
    lo = all[Math.floor(0.005 * (all.length - 1))] ?? 0;
    hi = all[Math.ceil(0.995 * (all.length - 1))] ?? 1;
  }
  const span = hi > lo ? hi - lo : 1;
  return (v) => Math.max(0, Math.min(255, Math.round(((v - lo) / span) * 255)));
}
