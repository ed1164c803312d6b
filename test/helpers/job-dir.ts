// Temporary job directories for pipeline tests: a real Zarr input, a real ONNX model
// and a manifest, plus the whole-volume reference to compare against.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Box, Vec3 } from '../../core/geometry/index.ts';
import { ModelRunner } from '../../core/model/index.ts';
import { slidingWindowReference } from '../../core/reference/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { openOutputVolume } from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';

export const FIXTURE_MODELS = new URL('../fixtures/models/', import.meta.url).pathname;

export function tempDir(prefix = 'tessera-test-'): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export function lcgVolume(shape: Vec3, seed: number): Uint8Array {
  let s = seed >>> 0;
  const out = new Uint8Array(shape[0] * shape[1] * shape[2]);
  for (let i = 0; i < out.length; i++) {
    s = (s * 1664525 + 1013904223) >>> 0;
    // Smooth-ish structure plus noise so the conv net's output varies across patches.
    const z = Math.floor(i / (shape[1] * shape[2]));
    out[i] = (128 + 80 * Math.sin(z / 3 + (i % shape[2]) / 5) + (s >>> 25)) & 0xff;
  }
  return out;
}

export interface JobDirOptions {
  shape: Vec3;
  data?: Uint8Array | Float32Array;
  inputChunks?: Vec3;
  manifest: Record<string, unknown>;
}

export async function writeJobDir(dir: string, o: JobDirOptions): Promise<string> {
  const data = o.data ?? lcgVolume(o.shape, 1);
  await writeZarrArray(new LocalStore(join(dir, 'input.zarr'), { fsync: false }), {
    data,
    shape: [...o.shape],
    chunkShape: [...(o.inputChunks ?? [7, 9, 11])],
  });
  const manifest = {
    version: 1,
    name: 'test-job',
    input: { url: 'input.zarr' },
    output: { url: 'output.zarr', dtype: 'float32' },
    ...o.manifest,
  };
  const path = join(dir, 'manifest.json');
  writeFileSync(path, JSON.stringify(manifest, null, 2));
  return path;
}

/** The reference output over the region, from the real model, in float32 [C][z][y][x]. */
export async function referenceFor(o: {
  data: Uint8Array | Float32Array;
  shape: Vec3;
  model: string;
  patchShape: Vec3;
  outputPatchShape?: Vec3;
  overlap: Vec3;
  blend: 'bump' | 'gaussian' | 'constant';
  outputChannels: number;
  region?: { start: Vec3; stop: Vec3 };
}): Promise<Float32Array> {
  const volume = o.data instanceof Uint8Array ? Float32Array.from(o.data, (v) => v / 255) : o.data;
  const model = await ModelRunner.open({ path: o.model }, { intraOpThreads: 1 });
  try {
    return await slidingWindowReference({
      volume,
      volumeShape: o.shape,
      inputChannels: 1,
      region: o.region,
      patchShape: o.patchShape,
      outputPatchShape: o.outputPatchShape,
      overlap: o.overlap,
      blend: o.blend,
      outputChannels: o.outputChannels,
      model,
    });
  } finally {
    await model.close();
  }
}

/** Reads the job output over `region` as float32 [C][z][y][x]. */
export async function readOutput(dir: string, region: Box): Promise<Float32Array> {
  const out = await openOutputVolume(new LocalStore(join(dir, 'output.zarr')));
  const d = await out.readBox(region);
  return Float32Array.from(d.data);
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) {
    const d = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(d)) return Number.POSITIVE_INFINITY;
    if (d > m) m = d;
  }
  return m;
}
