// Bench fixtures: a structured uint8 volume written as zstd Zarr, and a manifest over it.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Vec3 } from '../core/geometry/index.ts';
import { LocalStore } from '../core/store/index.ts';
import { writeZarrArray } from '../core/volume/write-array.ts';

export const REALISTIC_MODEL = new URL('../test/fixtures/models/realistic.onnx', import.meta.url)
  .pathname;
/** 1 → 2 channels, no arithmetic to speak of: a run with it is Tessera's own cost alone. */
export const NOOP_MODEL = new URL('../test/fixtures/models/identity2.onnx', import.meta.url)
  .pathname;

/** Smooth structure plus noise, cheap to generate at 10^8 voxels. */
export function benchVolume(shape: Vec3, seed = 1): Uint8Array {
  const [nz, ny, nx] = shape;
  const out = new Uint8Array(nz * ny * nx);
  let s = seed >>> 0;
  let i = 0;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++) {
      const base = 128 + 60 * Math.sin(z / 7) * Math.cos(y / 11);
      for (let x = 0; x < nx; x++, i++) {
        s = (s * 1664525 + 1013904223) >>> 0;
        out[i] = (base + 50 * Math.sin(x / 5 + y / 9) + (s >>> 27)) & 0xff;
      }
    }
  return out;
}

export interface BenchManifestOptions {
  patchShape: Vec3;
  overlap: Vec3;
  chunkShape: Vec3;
  blockShape: Vec3;
  dtype: 'float32' | 'uint8';
  device: 'cpu' | 'gpu';
  /** Default REALISTIC_MODEL. */
  model?: string;
}

export async function writeBenchJob(
  dir: string,
  shape: Vec3,
  o: BenchManifestOptions,
): Promise<{ manifestPath: string; data: Uint8Array }> {
  const data = benchVolume(shape);
  await writeZarrArray(new LocalStore(join(dir, 'input.zarr'), { fsync: false }), {
    data,
    shape: [...shape],
    chunkShape: [64, 64, 64],
  });
  const manifest = {
    version: 1,
    name: 'bench',
    input: { url: 'input.zarr' },
    output: { url: 'output.zarr', dtype: o.dtype, blockShape: o.blockShape },
    model: { url: o.model ?? REALISTIC_MODEL, patchShape: o.patchShape, outputChannels: 2 },
    overlap: o.overlap,
    blend: 'bump',
    chunkShape: o.chunkShape,
    compute: { device: o.device, maxWorkers: 1, spot: false },
  };
  const manifestPath = join(dir, 'manifest.json');
  writeFileSync(manifestPath, JSON.stringify(manifest, null, 2));
  return { manifestPath, data };
}
