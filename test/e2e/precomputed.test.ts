// `tessera run` from a Neuroglancer precomputed input to a precomputed output. The input
// is a sharded fixture written by test/fixtures/precomputed/generate.py (an independent
// writer, from the spec; one chunk absent, read as zeros); the output must equal the
// whole-volume sliding-window reference computed from that writer's own copy of the
// volume (expected/sharded-raw@0.bin), and be laid out as the spec says.

import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { openOutputVolume } from '../../core/volume/output.ts';
import { FIXTURE_MODELS, maxAbsDiff, referenceFor, tempDir } from '../helpers/job-dir.ts';

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
const FIXTURES = join(import.meta.dirname, '../fixtures/precomputed');
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

function run(args: string[], cwd: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [BIN, ...args], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (b) => (out += b));
    p.stderr.on('data', (b) => (out += b));
    p.on('exit', (code) => resolve({ code, out }));
  });
}

describe('tessera run with precomputed input and output', () => {
  it('equals the whole-volume reference, written as a precomputed volume', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const shape: Vec3 = [20, 24, 28];
    const patch: Vec3 = [8, 12, 12];
    const overlap: Vec3 = [2, 4, 4];
    const model = join(FIXTURE_MODELS, 'realistic.onnx');
    const manifest = {
      version: 1,
      name: 'precomputed-e2e',
      input: { url: `precomputed://${join(FIXTURES, 'volumes', 'sharded-raw')}` },
      output: { url: 'precomputed://out', dtype: 'float32', blockShape: [8, 10, 12] },
      model: { url: model, patchShape: patch, outputChannels: 2 },
      overlap,
      chunkShape: [12, 16, 16],
    };
    const path = join(t.dir, 'manifest.json');
    writeFileSync(path, JSON.stringify(manifest, null, 2));
    const r = await run(['run', path, '--workers', '2'], t.dir);
    expect(r.out).toContain('done in');
    expect(r.code).toBe(0);

    const data = new Uint8Array(readFileSync(join(FIXTURES, 'expected', 'sharded-raw@0.bin')));
    const expected = await referenceFor({
      data,
      shape,
      model,
      patchShape: patch,
      overlap,
      blend: 'bump',
      outputChannels: 2,
    });
    const out = join(t.dir, 'out');
    const got = await (await openOutputVolume(new LocalStore(out))).readBox(Box.ofShape(shape));
    expect(maxAbsDiff(Float32Array.from(got.data), expected)).toBeLessThanOrEqual(1e-5);

    // The layout the spec describes: info, one file per block named by its xyz ranges.
    const info = JSON.parse(readFileSync(join(out, 'info'), 'utf8'));
    expect(info['@type']).toBe('neuroglancer_multiscale_volume');
    expect(info.num_channels).toBe(2);
    expect(info.scales[0].size).toEqual([28, 24, 20]);
    expect(info.scales[0].chunk_sizes).toEqual([[12, 10, 8]]);
    expect(info.scales[0].resolution).toEqual([8, 8, 8]); // the input's, in nm
    expect(typeof info.tessera.job).toBe('string');
    const files = readdirSync(join(out, '0'));
    expect(files).toHaveLength(3 * 3 * 3);
    expect(files).toContain('24-28_20-24_16-20');
    // The far corner block: 4 × 4 × 4 voxels × 2 channels × 4 bytes, cut at the edge.
    expect(readFileSync(join(out, '0', '24-28_20-24_16-20')).length).toBe(4 * 4 * 4 * 2 * 4);
    expect(existsSync(join(out, 'zarr.json'))).toBe(false);
    expect(JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')).status).toBe('SUCCEEDED');

    // A second run of the finished job checks the output (its own check) and finds it whole.
    const again = await run(['run', path, '--workers', '1'], t.dir);
    expect(again.out).toContain('(28 objects checked intact)'); // info + 27 blocks
    expect(again.code).toBe(0);

    // A block lost after the run is found by that check and made again.
    rmSync(join(out, '0', '12-24_10-20_8-16'));
    const repaired = await run(['run', path, '--workers', '1'], t.dir);
    expect(repaired.code).toBe(0);
    expect(existsSync(join(out, '0', '12-24_10-20_8-16'))).toBe(true);
    const after = await (await openOutputVolume(new LocalStore(out))).readBox(Box.ofShape(shape));
    expect(maxAbsDiff(Float32Array.from(after.data), expected)).toBeLessThanOrEqual(1e-5);
  }, 120_000);
});
