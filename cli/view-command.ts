// `tessera view <output.zarr | manifest.json>`: look at a local output in neuroglancer.
//
// Serves the output (and the input, when it is a local Zarr) on 127.0.0.1 and prints a
// neuroglancer link whose layers read from that server: neuroglancer runs in the
// browser and fetches the chunks it shows, nothing is uploaded anywhere. An output on S3
// needs no server: the command prints its link (as `tessera run` does) and exits.

import { existsSync, readFileSync, statSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import type { Vec3 } from '../core/geometry/index.ts';
import { localPathOf } from '../core/manifest/url.ts';
import {
  localViewerState,
  neuroglancerLink,
  neuroglancerUrl,
  type ViewedInput,
  type ViewedOutput,
} from '../core/pipeline/viewer.ts';
import { isObject, type JsonObject } from '../core/volume/json.ts';
import { datasetPaths, multiscalesOf, placementOf, voxelSizeOf } from '../core/volume/ome.ts';
import { intOption, parse } from './args.ts';
import { loadManifest } from './job-files.ts';
import { HOST, type Mount, type ServedDirectories, serveDirectories } from './view-server.ts';

const USAGE = `Usage: tessera view <output.zarr | manifest.json> [--input PATH] [--port N]

Serves a local output over HTTP on ${HOST} (read-only, CORS and range requests, so
neuroglancer in the browser can read it) and prints a neuroglancer link: the output's
voxel size from its OME metadata, one layer per output channel (probabilities shown
0–1, uint8 0–255), centred on the volume. Given the manifest, or --input, a local Zarr
input is served too (under /_input/) and shown beneath. Ctrl-C stops the server.

  --port N      port to listen on (default 0: any free port; fix it to keep links valid
                across restarts)
  --input PATH  a local Zarr input to show under the output (default: the manifest's)

An output on S3 needs no server: its link is printed and the command exits.
For napari: napari --plugin napari-ome-zarr <output.zarr>`;

/** What `tessera view` was given cannot be shown. */
export class ViewTargetError extends Error {
  override readonly name = 'ViewTargetError';
  constructor(
    readonly path: string,
    detail: string,
  ) {
    super(`${path} ${detail}`);
  }
}

/** The prefix the input is served under; the output is at the root. */
export const INPUT_PREFIX = '/_input/';

export interface View {
  server: ServedDirectories;
  link: string;
  output: string;
  input?: string;
  /** Why an input that was asked for is not shown. */
  inputNote?: string;
  close(): Promise<void>;
}

export async function viewCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    { port: { type: 'string', short: 'p' }, input: { type: 'string' } },
    USAGE,
  );
  if (help) return 0;
  const [target] = positionals;
  if (target === undefined || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const port = values.port === '0' ? 0 : intOption(values.port, 'port', 0);
  if (port > 65535) throw new Error(`--port must be 0..65535, got "${String(values.port)}"`);
  const located = await locateTarget(target, values.input as string | undefined);
  if (located.s3Link !== undefined) {
    process.stdout.write(`${located.s3Link}\n`);
    return 0;
  }
  const view = await startView({ ...located, port });
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  log(`serving ${view.output} at ${view.server.url}`);
  if (view.input)
    log(`serving the input ${view.input} at ${view.server.url}${INPUT_PREFIX.slice(1)}`);
  const note = view.inputNote ?? located.inputNote;
  if (note) log(note);
  log('open this link in a browser (neuroglancer reads the chunks from this server):');
  process.stdout.write(`${view.link}\n`);
  log(`or in napari: napari --plugin napari-ome-zarr ${view.output}`);
  log('Ctrl-C stops the server.');
  await new Promise<void>((done) => {
    process.once('SIGINT', () => done());
    process.once('SIGTERM', () => done());
  });
  await view.close();
  log('stopped');
  return 0;
}

export interface Located {
  output: string;
  input?: { root: string; array: string } | undefined;
  inputNote?: string;
  s3Link?: string;
}

/** The output (and input) a manifest names, or an output directory given directly. */
export async function locateTarget(
  target: string,
  inputPath: string | undefined,
): Promise<Located> {
  const given = inputPath === undefined ? undefined : { root: resolve(inputPath), array: '' };
  if (!(target.endsWith('.json') && existsSync(target) && statSync(target).isFile()))
    return { output: resolve(target), input: given };
  const { manifest, baseDir } = await loadManifest(target);
  const output = localPathOf(manifest.output.url, baseDir);
  if (output === undefined) {
    const link = neuroglancerLink({
      name: manifest.name,
      outputUrl: manifest.output.url,
      inputUrl: manifest.input.url,
      dtype: manifest.output.dtype,
      ...(manifest.input.array ? { inputArray: manifest.input.array } : {}),
    });
    if (link === undefined)
      throw new ViewTargetError(manifest.output.url, 'is neither a local path nor on S3');
    return { output: manifest.output.url, s3Link: link };
  }
  if (given) return { output, input: given };
  const inputRoot = localPathOf(manifest.input.url, baseDir);
  return inputRoot === undefined
    ? { output, inputNote: `the input ${manifest.input.url} is not local: not shown` }
    : { output, input: { root: inputRoot, array: manifest.input.array ?? '' } };
}

/** Serves the output (and input) and builds the link; the caller closes it. */
export async function startView(o: {
  output: string;
  input?: { root: string; array: string } | undefined;
  port?: number;
}): Promise<View> {
  const outputMeta = readOutput(o.output);
  const input = o.input && readInput(o.input.root, o.input.array);
  const mounts: Mount[] = [{ prefix: '/', root: o.output }];
  if (input) mounts.push({ prefix: INPUT_PREFIX, root: o.input!.root });
  const server = await serveDirectories(mounts, o.port === undefined ? {} : { port: o.port });
  const arrayPath = input?.arrayPath ? `${input.arrayPath}/` : '';
  const state = localViewerState(
    { ...outputMeta, source: `zarr3://${server.url}` },
    input && {
      source: `zarr://${server.url}${INPUT_PREFIX.slice(1)}${arrayPath}`,
      dtype: input.dtype,
      rank: input.rank,
    },
  );
  return {
    server,
    link: neuroglancerUrl(state),
    output: o.output,
    ...(input ? { input: join(o.input!.root, o.input!.array) } : {}),
    ...(o.input && !input
      ? {
          inputNote: `the input ${join(o.input.root, o.input.array)} is not a Zarr array or OME-Zarr group here: not shown`,
        }
      : {}),
    close: () => server.close(),
  };
}

/** What the link needs from the output's metadata (OME-Zarr 0.5 on Zarr v3). */
function readOutput(dir: string): Omit<ViewedOutput, 'source'> {
  const root = readJsonFile(join(dir, 'zarr.json'));
  if (root === undefined)
    throw new ViewTargetError(
      dir,
      'holds no zarr.json: give the output directory a run wrote (its output.url) or the manifest',
    );
  const attributes = isObject(root.attributes) ? root.attributes : {};
  const level0 = datasetPaths(attributes)[0] ?? '0';
  const array = readJsonFile(join(dir, level0, 'zarr.json'));
  const shape = array?.shape;
  if (!isObject(array) || !Array.isArray(shape) || shape.length !== 4)
    throw new ViewTargetError(
      dir,
      `has no (c, z, y, x) array at ${level0}/zarr.json: is it a Tessera output, written to the end?`,
    );
  const [c, z, y, x] = shape as number[];
  const name = multiscalesOf(attributes)[0]?.name;
  return {
    name: typeof name === 'string' ? name : basename(dir),
    dtype: String(array.data_type),
    shape: [z!, y!, x!] as Vec3,
    channels: channelLabels(attributes, c!),
    voxelSize: voxelSizeOf(attributes, level0),
    unit: placementOf(attributes, level0).unit,
  };
}

function channelLabels(attributes: JsonObject, count: number): string[] {
  const ome = isObject(attributes.ome) ? attributes.ome : attributes;
  const channels =
    isObject(ome.omero) && Array.isArray(ome.omero.channels) ? ome.omero.channels : [];
  return Array.from({ length: count }, (_, i) => {
    const ch = channels[i];
    return isObject(ch) && typeof ch.label === 'string' ? ch.label : `channel ${i}`;
  });
}

/**
 * The input array's rank and dtype (Zarr v3 zarr.json or v2 .zarray), and the path
 * neuroglancer opens: the array, or an OME group's level 0 when given the group.
 */
function readInput(
  root: string,
  array: string,
): (Pick<ViewedInput, 'dtype' | 'rank'> & { arrayPath: string }) | undefined {
  const dir = join(root, array);
  const v3 = readJsonFile(join(dir, 'zarr.json'));
  const v2 = v3 === undefined ? readJsonFile(join(dir, '.zarray')) : undefined;
  const meta = v3 ?? v2;
  if (meta === undefined) return undefined;
  if (v3?.node_type === 'group') {
    const attributes = isObject(v3.attributes) ? v3.attributes : {};
    const level0 = datasetPaths(attributes)[0];
    return level0 === undefined ? undefined : readInput(root, join(array, level0));
  }
  if (!Array.isArray(meta.shape)) return undefined;
  const dtype = v3 ? String(meta.data_type) : numpyDtype(String(meta.dtype));
  return { rank: meta.shape.length, dtype, arrayPath: array.replace(/^\/+|\/+$/g, '') };
}

/** Zarr v2's numpy dtype string as a v3 data type name: '|u1' → 'uint8', '<f4' → 'float32'. */
function numpyDtype(s: string): string {
  const m = /^[<>|=]?([uif])(\d+)$/.exec(s);
  if (m === null) return s;
  const kind = m[1] === 'u' ? 'uint' : m[1] === 'i' ? 'int' : 'float';
  return `${kind}${Number(m[2]) * 8}`;
}

function readJsonFile(path: string): JsonObject | undefined {
  if (!existsSync(path)) return undefined;
  const doc: unknown = JSON.parse(readFileSync(path, 'utf8'));
  return isObject(doc) ? doc : undefined;
}
