// An HDF5 dataset as a ConvertSource, through h5wasm (HDF5 compiled to WebAssembly; its
// Node build reads the file from disk, not into memory). Each band is one hyperslab
// read, so only the band's chunks are decompressed.
//
// Datasets of rank 3 are [z, y, x]; rank 4 is [c, z, y, x] (CREMI and most EM HDF5s
// are [z, y, x]). HDF5 hands values over in native byte order, big-endian files too.

import type { Vec3 } from '../geometry/index.ts';
import { arrayConstructor, VOLUME_DTYPES, type VolumeDtype } from '../volume/index.ts';
import { ConvertInputError } from './errors.ts';
import type { ConvertSource } from './source.ts';

type H5 = typeof import('h5wasm/node');
type H5File = InstanceType<H5['File']>;
type H5Dataset = InstanceType<H5['Dataset']>;

export async function openHdf5Source(file: string, dataset?: string): Promise<ConvertSource> {
  // Loaded here: the WebAssembly module is 4 MB and only convert needs it.
  const h5 = await import('h5wasm/node');
  await h5.ready;
  const f = new h5.File(file, 'r');
  try {
    const path = dataset ?? onlyDataset(file, f, h5);
    const node = f.get(path.replace(/^\/+/, ''));
    if (!(node instanceof h5.Dataset)) {
      const names = datasetPaths(f, h5);
      throw new ConvertInputError(
        file,
        'dataset',
        `${node === null ? 'there is no' : 'it has no'} dataset "${path}"${node === null ? '' : ` (that is a ${node.constructor.name.toLowerCase()})`}. Its datasets: ${names.join(', ') || 'none'}. Give one with --dataset /path`,
      );
    }
    return describe(file, f, h5, path, node);
  } catch (error) {
    f.close();
    throw error;
  }
}

function describe(file: string, f: H5File, h5: H5, path: string, ds: H5Dataset): ConvertSource {
  const m = ds.metadata;
  const shape = ds.shape ?? [];
  const description = `${file}:/${path.replace(/^\/+/, '')}`;
  if (shape.length !== 3 && shape.length !== 4)
    throw new ConvertInputError(
      file,
      'shape',
      `dataset ${path} has shape [${shape.join(', ')}]; tessera convert takes [z, y, x] or [c, z, y, x] datasets`,
    );
  const dtype = dtypeOf(m.type, m.size, m.signed);
  if (dtype === undefined)
    throw new ConvertInputError(
      file,
      'data_type',
      `dataset ${path} holds ${ds.dtype} values (HDF5 class ${m.type}, ${m.size} bytes); Tessera reads ${VOLUME_DTYPES.join(', ')}. Cast it first (64-bit labels do not fit a model input exactly)`,
    );
  const channels = shape.length === 4 ? shape[0]! : 1;
  const spatial = shape.slice(-3) as unknown as Vec3;
  const voxelSize = voxelSizeOf(ds);
  const mod = h5.Module;
  const Ctor = arrayConstructor(dtype);
  // One band buffer in the WebAssembly heap and one in JavaScript, reused band after
  // band: Dataset.slice would allocate both anew each time, and garbage the size of the
  // file would pile up before the collector ran.
  let ptr = 0;
  let capacity = 0;
  let band = new Ctor(0);
  return {
    description,
    shape: spatial,
    channels,
    dtype,
    ...(voxelSize === undefined ? {} : { voxelSize }),
    readBand: async (z0, z1, y0, y1, x0, x1) => {
      const n = channels * (z1 - z0) * (y1 - y0) * (x1 - x0);
      const bytes = n * band.BYTES_PER_ELEMENT;
      if (bytes > capacity) {
        if (ptr !== 0) mod._free(ptr);
        ptr = mod._malloc(bytes);
        if (ptr === 0)
          throw new ConvertInputError(
            file,
            'shape',
            `no memory for a band of ${bytes} bytes; give a smaller --chunk`,
          );
        capacity = bytes;
        band = new Ctor(n);
      }
      const lead = shape.length === 4 ? [[0, channels]] : [];
      const ranges = [...lead, [z0, z1], [y0, y1], [x0, x1]];
      // h5wasm's own hyperslab read (what Dataset.slice calls), into the reused buffer;
      // values arrive in native byte order whatever the file's.
      mod.get_dataset_data(
        ds.file_id,
        ds.path,
        ranges.map(([a, b]) => BigInt(b! - a!)),
        ranges.map(([a]) => BigInt(a!)),
        ranges.map(() => 1n),
        BigInt(ptr),
      );
      const out = band.subarray(0, n);
      // The heap may have grown (and moved) during the read: take its buffer afterwards.
      new Uint8Array(out.buffer, out.byteOffset, bytes).set(mod.HEAPU8.subarray(ptr, ptr + bytes));
      return out;
    },
    close: async () => {
      if (ptr !== 0) mod._free(ptr);
      ptr = 0;
      f.close();
    },
  };
}

function dtypeOf(type: number, size: number, signed: boolean): VolumeDtype | undefined {
  // HDF5 classes: 0 integer, 1 float.
  const name =
    type === 1 ? `float${size * 8}` : type === 0 ? `${signed ? 'int' : 'uint'}${size * 8}` : '';
  return (VOLUME_DTYPES as readonly string[]).includes(name) ? (name as VolumeDtype) : undefined;
}

/** The voxel size a dataset records: CREMI's "resolution" (z, y, x) or Fiji's "element_size_um". */
function voxelSizeOf(ds: H5Dataset): Vec3 | undefined {
  for (const name of ['resolution', 'element_size_um']) {
    const attr = ds.attrs[name];
    const v = attr?.value;
    if (ArrayBuffer.isView(v) && !(v instanceof DataView) && v.length === 3) {
      const n = Array.from(v as ArrayLike<number | bigint>, Number);
      if (n.every((x) => Number.isFinite(x) && x > 0)) return [n[0]!, n[1]!, n[2]!];
    }
  }
  return undefined;
}

function onlyDataset(file: string, f: H5File, h5: H5): string {
  const names = datasetPaths(f, h5);
  if (names.length === 1) return names[0]!;
  throw new ConvertInputError(
    file,
    'dataset',
    names.length === 0
      ? 'the file holds no dataset'
      : `the file holds ${names.length} datasets (${names.join(', ')}); choose one with --dataset /path`,
  );
}

/** Every dataset path in the file, depth first ('/volumes/raw'). */
function datasetPaths(f: H5File, h5: H5): string[] {
  const out: string[] = [];
  const walk = (group: InstanceType<H5['Group']>, prefix: string): void => {
    for (const key of group.keys()) {
      const child = group.get(key);
      if (child instanceof h5.Dataset) out.push(`${prefix}/${key}`);
      else if (child instanceof h5.Group) walk(child, `${prefix}/${key}`);
    }
  };
  walk(f, '');
  return out;
}
