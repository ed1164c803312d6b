// `tessera convert <input> <output.zarr>`: an HDF5 dataset, a multipage TIFF or a TIFF
// stack (a directory of .tif files) into OME-Zarr v3 that `input.url` can name.

import {
  convertToOmeZarr,
  DEFAULT_CONVERT_CHUNK,
  openConvertSource,
} from '../core/convert/index.ts';
import type { Vec3 } from '../core/geometry/index.ts';
import { openStoreForUrl } from '../core/store/index.ts';
import { parse } from './args.ts';
import { formatSeconds, Progress } from './progress.ts';

const USAGE = `Usage: tessera convert <input> <output.zarr> [--dataset /path] [--chunk Z,Y,X] [--quiet]

Converts a volume Tessera cannot read directly into OME-Zarr 0.5 (Zarr v3):
  <input>  an HDF5 file (.h5/.hdf5; --dataset names the dataset, e.g. /volumes/raw,
           needed when the file holds more than one), a multipage TIFF, or a directory
           of .tif/.tiff files (one z slice per page, files in numeric-aware name order)
  <output.zarr>  a new directory (never written over); then set input.url to it

  --chunk Z,Y,X  chunk shape of the output (default ${DEFAULT_CONVERT_CHUNK.join(',')}, clipped to the volume)

Memory holds one band of chunks (a Z x Y chunk row over the full width, or whole
chunks along x when that would pass 256 MiB), not the file.`;

export async function convertCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    { dataset: { type: 'string' }, chunk: { type: 'string' }, quiet: { type: 'boolean' } },
    USAGE,
  );
  if (help) return 0;
  const [input, output, ...extra] = positionals;
  if (input === undefined || output === undefined || extra.length > 0) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const chunk = values.chunk === undefined ? undefined : chunkOption(String(values.chunk));
  const dataset = typeof values.dataset === 'string' ? values.dataset : undefined;
  const source = await openConvertSource(input, dataset);
  const started = Date.now();
  const progress = new Progress(process.stderr, 'convert', { quiet: values.quiet === true });
  try {
    const store = openStoreForUrl(output);
    const result = await convertToOmeZarr(source, store, {
      ...(chunk === undefined ? {} : { chunk }),
      onProgress: (p) =>
        progress.update(
          { done: p.done, total: p.total, failed: 0, voxels: p.voxels },
          p.done === p.total,
        ),
    });
    progress.end();
    const secs = (Date.now() - started) / 1000;
    process.stdout.write(
      `Wrote ${output}: ${source.description} as [${[result.channels, ...result.shape].join(', ')}] (c, z, y, x) ${result.dtype}, ` +
        `chunks [${result.chunk.join(', ')}], ${result.chunks} chunks in ${formatSeconds(secs)} ` +
        `(at most ${formatBytes(result.bandBytes)} of input held at once).\n` +
        `Use it as the manifest's input: "input": { "url": "${output}" }\n`,
    );
    return 0;
  } finally {
    await source.close();
  }
}

function chunkOption(text: string): Vec3 {
  const parts = text.split(',').map((p) => Number(p.trim()));
  if (parts.length !== 3 || !parts.every((n) => Number.isInteger(n) && n >= 1))
    throw new Error(
      `--chunk must be three positive integers Z,Y,X (e.g. 64,256,256), got "${text}"`,
    );
  return [parts[0]!, parts[1]!, parts[2]!];
}

function formatBytes(n: number): string {
  if (n >= 2 ** 30) return `${(n / 2 ** 30).toFixed(1)} GiB`;
  if (n >= 2 ** 20) return `${(n / 2 ** 20).toFixed(1)} MiB`;
  return `${(n / 2 ** 10).toFixed(1)} KiB`;
}
