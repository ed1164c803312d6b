// A multipage TIFF or a directory of TIFFs (a stack: every page of every .tif/.tiff
// file, files in numeric-aware name order, slice_2 before slice_10) as a ConvertSource,
// through geotiff.js, which reads a file's strips or tiles on demand: a band decodes
// only the strips its rows lie in. Each page is one z slice; its samples (1 for
// grey, 3 for RGB) are channels.
//
// Pages are listed once at open (IFD headers only); the files of the slab being read
// stay open until the next slab, so a stack of thousands of files holds a chunk
// depth's worth of handles, not thousands.

import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fromFile, type GeoTIFF, type GeoTIFFImage } from 'geotiff';
import type { NumericArray } from '../array/dense.ts';
import type { Vec3 } from '../geometry/index.ts';
import { arrayConstructor, VOLUME_DTYPES, type VolumeDtype } from '../volume/index.ts';
import { naturalCompare } from '../volume/natural-order.ts';
import { ConvertInputError } from './errors.ts';
import type { ConvertSource } from './source.ts';

interface Page {
  readonly file: string;
  readonly index: number;
}

export async function openTiffSource(input: string, isDirectory: boolean): Promise<ConvertSource> {
  const files = isDirectory ? await stackFiles(input) : [input];
  const pages: Page[] = [];
  let first: GeoTIFFImage | undefined;
  for (const file of files) {
    const tiff = await openTiff(input, file);
    try {
      const count = await tiff.getImageCount();
      for (let index = 0; index < count; index++) pages.push({ file, index });
      first ??= await tiff.getImage(0);
    } finally {
      await tiff.close();
    }
  }
  if (first === undefined) throw new ConvertInputError(input, 'pages', 'it holds no TIFF pages');
  const width = first.getWidth();
  const height = first.getHeight();
  const channels = first.getSamplesPerPixel();
  const dtype = dtypeOf(input, first);
  const shape: Vec3 = [pages.length, height, width];
  const open = new Map<string, GeoTIFF>();
  const Ctor = arrayConstructor(dtype);
  // Reused band after band (see ConvertSource.readBand).
  let band = new Ctor(0);

  const closeAll = async (keep: ReadonlySet<string>): Promise<void> => {
    for (const [file, tiff] of open)
      if (!keep.has(file)) {
        await tiff.close();
        open.delete(file);
      }
  };

  return {
    description: isDirectory ? `${input} (${files.length} TIFF files)` : input,
    shape,
    channels,
    dtype,
    readBand: async (z0, z1, y0, y1, x0, x1) => {
      const slab = pages.slice(z0, z1);
      await closeAll(new Set(slab.map((p) => p.file)));
      const dz = z1 - z0;
      const plane = (y1 - y0) * (x1 - x0);
      const n = channels * dz * plane;
      if (n > band.length) band = new Ctor(n);
      const out = band.subarray(0, n);
      for (let k = 0; k < dz; k++) {
        const page = slab[k]!;
        let tiff = open.get(page.file);
        if (tiff === undefined) {
          tiff = await openTiff(input, page.file);
          open.set(page.file, tiff);
        }
        const image = await tiff.getImage(page.index);
        checkPage(input, page, image, width, height, channels, dtype);
        const rasters = await image.readRasters({ window: [x0, y0, x1, y1], interleave: false });
        for (let c = 0; c < channels; c++) {
          const band = rasters[c] as unknown as NumericArray;
          out.set(band, (c * dz + k) * plane);
        }
      }
      return out;
    },
    close: () => closeAll(new Set()),
  };
}

async function stackFiles(dir: string): Promise<string[]> {
  const names = (await readdir(dir, { withFileTypes: true }))
    .filter((e) => e.isFile() && /\.tiff?$/i.test(e.name))
    .map((e) => e.name)
    .sort(naturalCompare);
  if (names.length === 0)
    throw new ConvertInputError(dir, 'pages', 'the directory holds no .tif or .tiff files');
  return names.map((n) => join(dir, n));
}

async function openTiff(input: string, file: string): Promise<GeoTIFF> {
  try {
    return await fromFile(file);
  } catch (error) {
    throw new ConvertInputError(
      input,
      'format',
      `${file} is not a TIFF file geotiff.js can read (${error instanceof Error ? error.message : String(error)})`,
      { cause: error },
    );
  }
}

function dtypeOf(input: string, image: GeoTIFFImage): VolumeDtype {
  const bits = image.getBitsPerSample();
  // TIFF SampleFormat: 1 unsigned (the default), 2 signed, 3 IEEE float.
  const format = image.getSampleFormat();
  const name = format === 3 ? `float${bits}` : `${format === 2 ? 'int' : 'uint'}${bits}`;
  if (!(VOLUME_DTYPES as readonly string[]).includes(name))
    throw new ConvertInputError(
      input,
      'data_type',
      `its pages hold ${bits}-bit ${format === 3 ? 'float' : format === 2 ? 'signed' : 'unsigned'} samples; Tessera reads ${VOLUME_DTYPES.join(', ')}`,
    );
  return name as VolumeDtype;
}

function checkPage(
  input: string,
  page: Page,
  image: GeoTIFFImage,
  width: number,
  height: number,
  channels: number,
  dtype: VolumeDtype,
): void {
  const got = [image.getWidth(), image.getHeight(), image.getSamplesPerPixel()];
  if (
    got[0] !== width ||
    got[1] !== height ||
    got[2] !== channels ||
    dtypeOf(input, image) !== dtype
  )
    throw new ConvertInputError(
      input,
      'pages',
      `page ${page.index} of ${page.file} is ${got[0]}x${got[1]} with ${got[2]} sample(s) of ${dtypeOf(input, image)}, the first page ${width}x${height} with ${channels} of ${dtype}; every z slice must have the first page's size and type`,
    );
}
