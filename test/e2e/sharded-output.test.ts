// `tessera run` with a sharded output (output.shardShape): worker processes assemble each
// shard as its last contributor, the result is the whole-volume reference, the objects
// are shards (one per shard, read by zarrita's own sharding reader), a rerun finds the
// job intact, and a deleted shard is made again by re-running the chunks that touch it.

import { existsSync, readdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as zarr from 'zarrita';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import type { Vec3 } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import {
  FIXTURE_MODELS,
  lcgVolume,
  maxAbsDiff,
  referenceFor,
  tempDir,
  writeJobDir,
} from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** Files under the output's level-0 chunk directory, relative to it. */
function level0Objects(out: string): string[] {
  const root = join(out, '0', 'c');
  const found: string[] = [];
  const walk = (dir: string, rel: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name), `${rel}${e.name}/`);
      else found.push(`${rel}${e.name}`);
    }
  };
  if (existsSync(root)) walk(root, '');
  return found.sort();
}

describe('tessera run: sharded output', () => {
  it('equals the reference, one object per shard, intact on a rerun, a deleted shard made again', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const shape: Vec3 = [8, 24, 32];
    const patch: Vec3 = [4, 8, 8];
    const overlap: Vec3 = [0, 2, 2];
    const path = await writeJobDir(t.dir, {
      shape,
      manifest: {
        name: 'sharded-job',
        model: {
          url: join(FIXTURE_MODELS, 'realistic.onnx'),
          patchShape: patch,
          outputChannels: 2,
        },
        // Blocks 4×6×8, shards 2×2×2 blocks: 8×12×16 voxels, a 1×2×2 grid of shards.
        output: {
          url: 'output.zarr',
          dtype: 'float32',
          blockShape: [4, 6, 8],
          shardShape: [8, 12, 16],
        },
        overlap,
        chunkShape: [8, 12, 14],
        blend: 'gaussian',
      },
    });
    const m = await loadManifest(path);
    const first = await runLocal(m, { workers: 2 });
    expect(first.message).toBeUndefined();
    expect(first.status).toBe('SUCCEEDED');
    const out = join(t.dir, 'output.zarr');
    // Shard keys, not block keys: c/0/<z>/<y>/<x> over the shard grid.
    expect(level0Objects(out)).toEqual(['0/0/0/0', '0/0/0/1', '0/0/1/0', '0/0/1/1']);

    const readAll = async (): Promise<Float32Array> => {
      const arr = await zarr.open.v3(zarr.root(new LocalStore(out)).resolve('0'), {
        kind: 'array',
      });
      const got = await zarr.get(arr);
      return Float32Array.from(got.data as Float32Array);
    };
    const expected = await referenceFor({
      data: lcgVolume(shape, 1),
      shape,
      model: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: patch,
      overlap,
      blend: 'gaussian',
      outputChannels: 2,
    });
    expect(maxAbsDiff(await readAll(), expected)).toBeLessThanOrEqual(1e-5);

    // The same command again: the output is checked (shard indexes, frames) and intact.
    const again = await runLocal(m, { workers: 1 });
    expect(again.status).toBe('SUCCEEDED');
    expect(again.inferredThisRun).toBe(0);

    // A shard deleted after success: the rerun finds it missing, re-runs the chunks that
    // touch it and assembles it again, byte for byte.
    const victim = join(out, '0', 'c', '0', '0', '1', '1');
    const bytes = readFileSync(victim);
    unlinkSync(victim);
    const repaired = await runLocal(m, { workers: 1 });
    expect(repaired.status).toBe('SUCCEEDED');
    expect(repaired.inferredThisRun).toBeGreaterThan(0);
    expect(statSync(victim).size).toBe(bytes.length);
    expect(readFileSync(victim).equals(bytes)).toBe(true);
    expect(maxAbsDiff(await readAll(), expected)).toBeLessThanOrEqual(1e-5);
  });
});
