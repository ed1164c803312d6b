// Neuroglancer links: the whole viewer state in the URL fragment, so a link works in any
// browser with no server of ours behind the viewer itself.
//
// - An output on S3 (neuroglancerLink): neuroglancer reads the output's OME-Zarr metadata
//   for voxel size and levels; the bucket must allow the browser to read it (public read
//   or a presigned proxy, and CORS for GET).
// - A local output (localViewerState), served over HTTP on 127.0.0.1 by `tessera view`:
//   the state also sets the display dimensions from the OME voxel size, centres the view,
//   gives each output channel a layer of its own with a window for its data type, and
//   shows the input beneath when it is served too.

import type { Vec3 } from '../geometry/index.ts';
import { isS3Url, parseS3Url, splitFormatPrefix } from '../manifest/url.ts';
import type { SpaceUnit } from '../volume/ome.ts';

export const NEUROGLANCER = 'https://neuroglancer-demo.appspot.com/#!';

export interface ViewerLinkOptions {
  name: string;
  outputUrl: string;
  /** Shown as a second layer when it is on S3 too. */
  inputUrl?: string;
  inputArray?: string;
  /** The output's data type: sets the display window (0–1 or 0–255). */
  dtype?: 'float32' | 'uint8';
  /** output.format; default what outputUrl's `precomputed://` prefix says (else zarr). */
  outputFormat?: 'zarr' | 'precomputed';
}

/** The link, or undefined when the output is not on S3 (local outputs: `tessera view`). */
export function neuroglancerLink(o: ViewerLinkOptions): string | undefined {
  // Neuroglancer's own prefix: precomputed://s3://… is the data source as it is written.
  const output = splitFormatPrefix(o.outputUrl);
  const input = o.inputUrl === undefined ? undefined : splitFormatPrefix(o.inputUrl);
  if (!isS3Url(output.url)) return undefined;
  const layers: Record<string, unknown>[] = [];
  if (input?.format === 'precomputed' && isS3Url(input.url)) {
    layers.push({ type: 'image', source: `precomputed://${s3Source(input.url)}`, name: 'input' });
  } else if (input !== undefined && isS3Url(input.url)) {
    const array = o.inputArray === undefined ? '' : `/${o.inputArray}`;
    // zarr:// lets neuroglancer detect v2 or v3; inputs come in both.
    layers.push({ type: 'image', source: `zarr://${s3Source(input.url)}${array}`, name: 'input' });
  }
  const precomputedOut = (o.outputFormat ?? output.format) === 'precomputed';
  layers.push({
    type: 'image',
    source: `${precomputedOut ? 'precomputed' : 'zarr3'}://${s3Source(output.url)}`,
    name: o.name,
    // Probabilities: the default window would be the data type's whole range.
    shaderControls: { normalized: { range: displayWindow(o.dtype ?? 'float32') } },
  });
  const state = { layers, selectedLayer: { layer: o.name, visible: true }, layout: '4panel' };
  return neuroglancerUrl(state);
}

/** A viewer state as the link's fragment. */
export function neuroglancerUrl(state: unknown): string {
  return `${NEUROGLANCER}${encodeURIComponent(JSON.stringify(state))}`;
}

/** A Tessera output as `tessera view` serves it. */
export interface ViewedOutput {
  name: string;
  /** The neuroglancer data source, e.g. `zarr3://http://127.0.0.1:8000/`. */
  source: string;
  dtype: string;
  /** Level 0's spatial shape (z, y, x). */
  shape: Vec3;
  /** One label per output channel (the c axis), from the OME omero metadata. */
  channels: readonly string[];
  /** Level 0's voxel size (z, y, x) in `unit`; undefined when the metadata has none. */
  voxelSize?: Vec3 | undefined;
  unit?: SpaceUnit | undefined;
}

export interface ViewedInput {
  /** The neuroglancer data source, e.g. `zarr://http://127.0.0.1:8000/_input/raw/`. */
  source: string;
  dtype: string;
  /** The input array's rank: a 3-D (z, y, x) array is aligned with the output's axes. */
  rank: number;
}

const METRES: Record<SpaceUnit, number> = {
  angstrom: 1e-10,
  nanometer: 1e-9,
  micrometer: 1e-6,
  millimeter: 1e-3,
};

/**
 * The viewer state for a served local output (and input). Dimensions are listed x, y, z
 * (neuroglancer's xy panel shows its first two), each with the OME voxel size in metres;
 * an output without a unit is shown in its own numbers, unitless. The view starts at the
 * volume's centre.
 */
export function localViewerState(output: ViewedOutput, input?: ViewedInput): JsonState {
  const size = output.voxelSize ?? [1, 1, 1];
  const scale = output.unit === undefined ? 1 : METRES[output.unit];
  const unit = output.unit === undefined ? '' : 'm';
  const dim = (axis: 0 | 1 | 2): [number, string] => [size[axis] * scale, unit];
  const dimensions = { x: dim(2), y: dim(1), z: dim(0) };
  const [nz, ny, nx] = output.shape;
  const layers: JsonState[] = [];
  if (input !== undefined) {
    // A plain array has no axis names of its own (neuroglancer calls them d0, d1, d2): name
    // them z, y, x at the output's voxel size, which Tessera copied from the input.
    const aligned =
      input.rank === 3
        ? {
            url: input.source,
            transform: { outputDimensions: { z: dim(0), y: dim(1), x: dim(2) } },
          }
        : input.source;
    const window = inputWindow(input.dtype);
    layers.push({
      type: 'image',
      source: aligned,
      name: 'input',
      ...(window ? { shaderControls: { normalized: { range: window } } } : {}),
    });
  }
  // The channel axis of an OME-Zarr image is a layer-local dimension in neuroglancer (c'):
  // one layer per channel, each at its own position on it, only the first shown at first.
  output.channels.forEach((label, c) => {
    layers.push({
      type: 'image',
      source: output.source,
      name: output.channels.length === 1 ? output.name : `${output.name} ${label}`,
      localDimensions: { "c'": [1, ''] },
      localPosition: [c],
      shaderControls: { normalized: { range: displayWindow(output.dtype) } },
      ...(c === 0 ? {} : { visible: false }),
    });
  });
  const first = layers.find((l) => l.name !== 'input')?.name ?? output.name;
  return {
    dimensions,
    position: [nx / 2, ny / 2, nz / 2],
    layers,
    selectedLayer: { layer: first, visible: true },
    layout: '4panel',
  };
}

type JsonState = Record<string, unknown>;

/** The window an output is shown in: probabilities 0–1, uint8 0–255. */
function displayWindow(dtype: string): [number, number] {
  return dtype === 'uint8' ? [0, 255] : [0, 1];
}

/** An integer input in its type's range; a float input in neuroglancer's own default. */
function inputWindow(dtype: string): [number, number] | undefined {
  if (dtype === 'uint8') return [0, 255];
  if (dtype === 'uint16') return [0, 65535];
  return undefined;
}

function s3Source(url: string): string {
  const { bucket, key } = parseS3Url(url);
  return `s3://${bucket}/${key.replace(/\/+$/, '')}`;
}
