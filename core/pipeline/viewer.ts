// A neuroglancer link for an output on S3: the whole viewer state in the URL fragment,
// so the link works in any browser with no server of ours. Neuroglancer reads the
// output's OME-Zarr metadata for voxel size and levels; the bucket must allow the
// browser to read it (public read or a presigned proxy, and CORS for GET).

import { isS3Url, parseS3Url } from '../manifest/url.ts';

export const NEUROGLANCER = 'https://neuroglancer-demo.appspot.com/#!';

export interface ViewerLinkOptions {
  name: string;
  outputUrl: string;
  /** Shown as a second layer when it is on S3 too. */
  inputUrl?: string;
  inputArray?: string;
  /** The output's data type: sets the display window (0–1 or 0–255). */
  dtype?: 'float32' | 'uint8';
}

/** The link, or undefined when the output is not on S3 (local outputs: open them in napari). */
export function neuroglancerLink(o: ViewerLinkOptions): string | undefined {
  if (!isS3Url(o.outputUrl)) return undefined;
  const layers: Record<string, unknown>[] = [];
  if (o.inputUrl !== undefined && isS3Url(o.inputUrl)) {
    const array = o.inputArray === undefined ? '' : `/${o.inputArray}`;
    // zarr:// lets neuroglancer detect v2 or v3; inputs come in both.
    layers.push({ type: 'image', source: `zarr://${s3Source(o.inputUrl)}${array}`, name: 'input' });
  }
  layers.push({
    type: 'image',
    source: `zarr3://${s3Source(o.outputUrl)}`,
    name: o.name,
    // Probabilities: the default window would be the data type's whole range.
    shaderControls: { normalized: { range: [0, o.dtype === 'uint8' ? 255 : 1] } },
  });
  const state = { layers, selectedLayer: { layer: o.name, visible: true }, layout: '4panel' };
  return `${NEUROGLANCER}${encodeURIComponent(JSON.stringify(state))}`;
}

function s3Source(url: string): string {
  const { bucket, key } = parseS3Url(url);
  return `s3://${bucket}/${key.replace(/\/+$/, '')}`;
}
