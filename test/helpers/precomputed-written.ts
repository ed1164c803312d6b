// What the precomputed writer test hands Tessera's writer, and the script that writes it
// into test/fixtures/precomputed/written/ for the Python reader to judge:
//   node --import tsx test/helpers/precomputed-written.ts
//   /usr/bin/python3 test/fixtures/precomputed/generate.py verify-written
// v(c, z, y, x) = ((c*7 + z*5 + y*3 + x) % 97) / 4, floored for uint8 (generate.py's
// written_values is the same formula, written separately).

import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Vec3 } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import type { OutputVolume } from '../../core/volume/output.ts';
import { createPrecomputedOutput } from '../../core/volume/precomputed/output.ts';

export interface WrittenCase {
  readonly name: string;
  readonly dtype: 'float32' | 'uint8';
  readonly channels: number;
  readonly shape: Vec3;
  readonly blockShape: Vec3;
  readonly compression: 'raw' | 'gzip';
  readonly resolution: Vec3;
}

export const WRITTEN_CASES: readonly WrittenCase[] = [
  {
    name: 'float32-2ch',
    dtype: 'float32',
    channels: 2,
    shape: [20, 24, 28],
    blockShape: [8, 10, 12],
    compression: 'raw',
    resolution: [40, 4, 4],
  },
  {
    name: 'uint8-gzip',
    dtype: 'uint8',
    channels: 1,
    shape: [9, 17, 13],
    blockShape: [4, 8, 8],
    compression: 'gzip',
    resolution: [8, 8, 8],
  },
];

export const WRITTEN_OWNER = 'written-fixture-0123456789';

export function valueAt(dtype: 'float32' | 'uint8', c: number, z: number, y: number, x: number) {
  const v = ((c * 7 + z * 5 + y * 3 + x) % 97) / 4;
  return dtype === 'uint8' ? Math.floor(v) : v;
}

/** Writes every block of `out` with valueAt. */
export async function writeAll(out: OutputVolume, dtype: 'float32' | 'uint8'): Promise<void> {
  for (let bz = 0; bz < out.blockGrid[0]; bz++)
    for (let by = 0; by < out.blockGrid[1]; by++)
      for (let bx = 0; bx < out.blockGrid[2]; bx++) {
        const box = out.blockBox([bz, by, bx]);
        const data =
          dtype === 'float32'
            ? new Float32Array(out.channels * box.size)
            : new Uint8Array(out.channels * box.size);
        let i = 0;
        for (let c = 0; c < out.channels; c++)
          for (let z = box.start[0]; z < box.stop[0]; z++)
            for (let y = box.start[1]; y < box.stop[1]; y++)
              for (let x = box.start[2]; x < box.stop[2]; x++)
                data[i++] = valueAt(dtype, c, z, y, x);
        await out.writeBlock([bz, by, bx], { box, channels: out.channels, data });
      }
}

export async function writeCase(dir: string, k: WrittenCase): Promise<OutputVolume> {
  const out = await createPrecomputedOutput(new LocalStore(dir), {
    shape: k.shape,
    channels: k.channels,
    dtype: k.dtype,
    blockShape: k.blockShape,
    owner: WRITTEN_OWNER,
    compression: k.compression,
    resolution: k.resolution,
  });
  await writeAll(out, k.dtype);
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = join(import.meta.dirname, '../fixtures/precomputed/written');
  for (const k of WRITTEN_CASES) {
    rmSync(join(root, k.name), { recursive: true, force: true });
    await writeCase(join(root, k.name), k);
  }
  process.stdout.write(`wrote ${root}\n`);
}
