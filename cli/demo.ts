// `tessera demo`: a synthetic cell volume, the shipped membrane model and a manifest,
// written to a directory and run end to end with the local pipeline.

import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Vec3 } from '../core/geometry/index.ts';
import { LocalStore } from '../core/store/index.ts';
import { writeZarrArray } from '../core/volume/write-array.ts';
import { intOption, parse } from './args.ts';
import { loadManifest } from './job-files.ts';
import { runLocal } from './local-run.ts';
import { Progress } from './progress.ts';
import { syntheticCells } from './synthetic.ts';

const USAGE = `Usage: tessera demo [--dir DIR] [--workers N] [--size Z,Y,X]

Writes a synthetic cell volume (Zarr v3), the shipped membrane model and a manifest
into DIR (default ./tessera-demo), then runs the pipeline and prints where the output
and the report are. Each run starts afresh: an earlier demo's output and state in DIR
are replaced (a DIR holding anything else is refused).`;

export const DEMO_MODEL = new URL('../models/membrane-demo.onnx', import.meta.url).pathname;

export async function demoCommand(args: string[]): Promise<number> {
  const { values, help } = parse(
    args,
    { dir: { type: 'string' }, workers: { type: 'string' }, size: { type: 'string' } },
    USAGE,
  );
  if (help) return 0;
  const dir = resolve((values.dir as string | undefined) ?? 'tessera-demo');
  const shape = parseSize(values.size as string | undefined) ?? [96, 192, 192];
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  await clearEarlierDemo(dir);
  const manifestPath = await writeDemo(dir, shape, log);
  const loaded = await loadManifest(manifestPath);
  const result = await runLocal(loaded, {
    workers: intOption(values.workers, 'workers', 1),
    log,
    progress: new Progress(process.stderr, 'demo'),
  });
  if (result.status !== 'SUCCEEDED') {
    log(result.message ?? `demo ${result.status}`);
    return 1;
  }
  const out = join(dir, 'output.zarr');
  process.stdout.write(
    `${[
      `demo SUCCEEDED in ${result.seconds.toFixed(1)}s (${result.chunks} chunks)`,
      `  input     ${join(dir, 'input.zarr')}  (uint8, ${shape.join('×')})`,
      `  output    ${out}  (OME-Zarr, 2 channels: membrane, foreground)`,
      `  report    ${join(out, 'report.html')}  (open in a browser; figures in report.json)`,
      `  preview   ${join(out, 'preview.png')}  (input | membrane | foreground at three depths)`,
      `  manifest  ${manifestPath}  (edit it and run: tessera run ${manifestPath})`,
      'look at it:',
      `  neuroglancer  tessera view ${manifestPath}  (serves output and input on 127.0.0.1, prints the link)`,
      `  napari        napari --plugin napari-ome-zarr ${out}`,
    ].join('\n')}\n`,
  );
  return 0;
}

/**
 * Removes an earlier demo's output and run state from `dir`, so the demo always runs
 * end to end. Refuses to touch a directory whose manifest is not the demo's.
 */
async function clearEarlierDemo(dir: string): Promise<void> {
  const manifest = join(dir, 'manifest.json');
  const output = join(dir, 'output.zarr');
  if (!existsSync(manifest) && !existsSync(output)) return;
  let name: unknown;
  try {
    name = (JSON.parse(await readFile(manifest, 'utf8')) as { name?: unknown }).name;
  } catch (error) {
    // No manifest beside an output, or one that is not JSON: not a demo's.
    if (!(error instanceof SyntaxError) && (error as NodeJS.ErrnoException).code !== 'ENOENT')
      throw error;
    name = undefined;
  }
  if (name !== 'demo')
    throw new Error(
      `${dir} holds an output.zarr or manifest.json that is not a tessera demo's; choose another --dir`,
    );
  await rm(output, { recursive: true, force: true });
  await rm(join(dir, '.tessera'), { recursive: true, force: true });
}

export async function writeDemo(
  dir: string,
  shape: Vec3,
  log: (l: string) => void = () => {},
): Promise<string> {
  await mkdir(dir, { recursive: true });
  log(`writing a synthetic ${shape.join('×')} volume to ${join(dir, 'input.zarr')}`);
  const data = syntheticCells(shape);
  await writeZarrArray(new LocalStore(join(dir, 'input.zarr'), { fsync: false }), {
    data,
    shape: [...shape],
    chunkShape: [64, 64, 64],
  });
  await copyFile(DEMO_MODEL, join(dir, 'membrane-demo.onnx'));
  const manifest = {
    version: 1,
    name: 'demo',
    input: { url: 'input.zarr' },
    output: { url: 'output.zarr', dtype: 'float32', blockShape: [64, 128, 128], pyramid: 2 },
    model: { url: 'membrane-demo.onnx', patchShape: [32, 64, 64], outputChannels: 2 },
    overlap: [8, 16, 16],
    blend: 'bump',
    chunkShape: [64, 128, 128],
    maxAttempts: 3,
  };
  const path = join(dir, 'manifest.json');
  await writeFile(path, formatJson(manifest));
  return path;
}

/**
 * JSON as the repository's formatter (Biome) writes it: two-space indent, arrays of
 * numbers or strings on one line. A demo written inside a clone must not fail its `npm test`.
 */
export function formatJson(value: unknown): string {
  return `${JSON.stringify(value, null, 2).replace(/\[\s+([^[\]{}]*?)\s+\]/g, (_, inner: string) => `[${inner.split(/,\s+/).join(', ')}]`)}\n`;
}

function parseSize(s: string | undefined): Vec3 | undefined {
  if (s === undefined) return undefined;
  const parts = s.split(',').map(Number);
  if (parts.length !== 3 || parts.some((v) => !Number.isInteger(v) || v < 1 || v > 2048)) {
    throw new Error(`--size must be Z,Y,X with integers 1..2048, got "${s}"`);
  }
  return parts as unknown as Vec3;
}
