// Writes a whole in-memory array as a Zarr v3 array: for demos, fixtures and tests.
// (Jobs write their output block by block through OutputVolume instead.)

import * as zarr from 'zarrita';
import './zstd.ts'; // zarrita's zstd codec → the copy-free one (see zstd.ts)
import type { Store } from '../store/index.ts';
import { OUTPUT_CODECS } from './block-codec.ts';

export async function writeZarrArray(
  store: Store,
  o: {
    path?: string;
    data: Uint8Array | Uint16Array | Float32Array;
    shape: number[];
    chunkShape: number[];
    attributes?: Record<string, unknown>;
  },
): Promise<void> {
  const dataType =
    o.data instanceof Uint8Array ? 'uint8' : o.data instanceof Uint16Array ? 'uint16' : 'float32';
  const root = zarr.root(store);
  const location = o.path ? root.resolve(o.path) : root;
  const arr = await zarr.create(location, {
    shape: o.shape,
    chunkShape: o.chunkShape,
    dtype: dataType,
    codecs: OUTPUT_CODECS.map((c) => ({ name: c.name, configuration: c.configuration ?? {} })),
    fillValue: 0,
    attributes: o.attributes ?? {},
  });
  const stride = o.shape.map((_, i) => o.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  await zarr.set(arr, null, { data: o.data, shape: o.shape, stride } as never);
}
