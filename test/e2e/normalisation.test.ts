// What the model receives, end to end (tessera run: worker processes, the real ONNX model):
//   - input.normalize percentiles on a 12-bit uint16 volume (zarr-python's fixture): two
//     chunkings give the same output (≤ 1e-5), and both equal the whole-volume reference
//     run on the input normalised here with the scale and offset read from the job's
//     frozen description (not recomputed by pipeline code); model.channelNames land in
//     the OME-Zarr omero labels, report.json and report.html;
//   - a float32 input with a NaN fill_value and an unwritten chunk: input.nan "fail" FAILS
//     the job naming the chunks and the field, with no chunk blamed on the model; "zero"
//     SUCCEEDS with the reference's output on the zeroed input.

import { cpSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import expected from '../fixtures/normalise/expected.json' with { type: 'json' };
import {
  FIXTURE_MODELS,
  maxAbsDiff,
  readOutput,
  referenceFor,
  tempDir,
  writeJobDir,
} from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
const FIXTURES = new URL('../fixtures/normalise/', import.meta.url).pathname;
const MODEL = {
  url: join(FIXTURE_MODELS, 'realistic.onnx'),
  patchShape: [4, 8, 8] as Vec3,
  outputChannels: 2,
};
const OVERLAP: Vec3 = [0, 2, 2];

/** A job directory over a copy of fixture `name` (as input.zarr), with `fields`. */
async function job(name: string, fields: Record<string, unknown>) {
  const t = tempDir('tessera-e2e-normalise-');
  cleanups.push(t.cleanup);
  // writeJobDir writes its own input; the fixture replaces it.
  const path = await writeJobDir(t.dir, { shape: [1, 1, 1], manifest: fields });
  rmSync(join(t.dir, 'input.zarr'), { recursive: true, force: true });
  cpSync(join(FIXTURES, name), join(t.dir, 'input.zarr'), { recursive: true });
  const loaded = await loadManifest(path);
  const stateDir = join(t.dir, 'state');
  return { dir: t.dir, run: () => runLocal(loaded, { stateDir, workers: 2 }), stateDir };
}

/** The 12-bit uint16 fixture's voxels, read back from its raw (uncompressed) chunks. */
function u16Values(): Uint16Array {
  const [Z, Y, X] = [16, 48, 48];
  const v = new Uint16Array(Z * Y * X);
  for (let cz = 0; cz < 2; cz++)
    for (let cy = 0; cy < 3; cy++)
      for (let cx = 0; cx < 3; cx++) {
        const bytes = readFileSync(join(FIXTURES, 'u16.zarr', `${cz}.${cy}.${cx}`));
        const chunk = new Uint16Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 2);
        for (let z = 0; z < 8; z++)
          for (let y = 0; y < 16; y++)
            for (let x = 0; x < 16; x++)
              v[((cz * 8 + z) * Y + cy * 16 + y) * X + cx * 16 + x] = chunk[(z * 16 + y) * 16 + x]!;
      }
  return v;
}

describe('input.normalize percentiles, end to end', () => {
  it('two chunkings, one frozen scale and offset, the reference’s output; channel names everywhere', async () => {
    const fields = (chunkShape: Vec3) => ({
      input: { url: 'input.zarr', normalize: { percentiles: [1, 99] } },
      model: { ...MODEL, channelNames: ['membrane', 'mito'] },
      output: { url: 'output.zarr', dtype: 'float32', blockShape: [8, 16, 16] },
      overlap: OVERLAP,
      chunkShape,
      blend: 'bump',
    });
    const a = await job('u16.zarr', fields([8, 24, 24]));
    const b = await job('u16.zarr', fields([16, 12, 48]));
    const ra = await a.run();
    const rb = await b.run();
    expect(ra.status).toBe('SUCCEEDED');
    expect(rb.status).toBe('SUCCEEDED');
    const described = (j: typeof a, jobId: string) =>
      JSON.parse(readFileSync(join(j.stateDir, 'work', jobId, 'job.json'), 'utf8')).normalization;
    const na = described(a, ra.jobId);
    expect(described(b, rb.jobId)).toEqual(na);
    // numpy's percentiles of the volume (every stored chunk is in the sample).
    expect(na.mapping).toEqual({
      kind: 'range',
      low: expected.u16.percentiles['1'],
      high: expected.u16.percentiles['99'],
    });

    const region = Box.ofShape([16, 48, 48]);
    const outA = await readOutput(a.dir, region);
    const outB = await readOutput(b.dir, region);
    expect(maxAbsDiff(outA, outB)).toBeLessThanOrEqual(1e-5);
    // The reference on the input normalised here, with the description's low and high.
    const { low, high } = na.mapping as { low: number; high: number };
    const normalised = Float32Array.from(u16Values(), (v) => (v - low) / (high - low));
    const reference = await referenceFor({
      data: normalised,
      shape: [16, 48, 48],
      model: MODEL.url,
      patchShape: MODEL.patchShape,
      overlap: OVERLAP,
      blend: 'bump',
      outputChannels: 2,
    });
    expect(maxAbsDiff(outA, reference)).toBeLessThanOrEqual(1e-5);

    const group = JSON.parse(readFileSync(join(a.dir, 'output.zarr', 'zarr.json'), 'utf8'));
    expect(group.attributes.ome.omero.channels.map((c: { label: string }) => c.label)).toEqual([
      'membrane',
      'mito',
    ]);
    const report = JSON.parse(readFileSync(join(a.dir, 'output.zarr', 'report.json'), 'utf8'));
    expect(report.channels).toEqual(['membrane', 'mito']);
    expect(report.normalization).toEqual(na);
    const html = readFileSync(join(a.dir, 'output.zarr', 'report.html'), 'utf8');
    expect(html).toContain('Columns: input, membrane, mito.');
  });
});

describe('input.nan, end to end', () => {
  const fields = (nan: 'zero' | 'fail') => ({
    input: { url: 'input.zarr', nan },
    model: MODEL,
    output: { url: 'output.zarr', dtype: 'float32', blockShape: [8, 12, 12] },
    overlap: OVERLAP,
    chunkShape: [8, 12, 12],
    blend: 'bump',
    maxAttempts: 2,
  });

  it('"fail": FAILED, each NaN chunk named with its count and the field, none blamed on the model', async () => {
    const j = await job('nan.zarr', fields('fail'));
    const r = await j.run();
    expect(r.status).toBe('FAILED');
    const failures = r.report?.failures ?? [];
    expect(failures.length).toBeGreaterThanOrEqual(2);
    for (const f of failures) {
      expect(f.lastError).toMatch(
        new RegExp(`^chunk ${f.chunkId}: its input holds \\d+ NaN voxel\\(s\\)`),
      );
      expect(f.lastError).toContain('set input.nan: "zero"');
      expect(f.lastError).not.toContain('model returned NaN');
    }
  });

  it('"zero": SUCCEEDED, the output equals the reference on the zeroed input', async () => {
    const j = await job('nan.zarr', fields('zero'));
    const r = await j.run();
    expect(r.status).toBe('SUCCEEDED');
    // generate.py's values, with its NaN (the unwritten chunk, one voxel) as 0.
    const v = Float32Array.from({ length: 8 * 24 * 24 }, (_, i) => 0.5 + 0.4 * Math.sin(i / 37));
    const unwritten = new Box(
      expected.nan.unwritten.start as unknown as Vec3,
      expected.nan.unwritten.stop as unknown as Vec3,
    );
    for (let i = 0; i < v.length; i++) {
      const p: Vec3 = [Math.floor(i / 576), Math.floor(i / 24) % 24, i % 24];
      if (unwritten.containsPoint(p)) v[i] = 0;
    }
    for (const [z, y, x] of expected.nan.written_nan) v[(z! * 24 + y!) * 24 + x!] = 0;
    const reference = await referenceFor({
      data: v,
      shape: [8, 24, 24],
      model: MODEL.url,
      patchShape: MODEL.patchShape,
      overlap: OVERLAP,
      blend: 'bump',
      outputChannels: 2,
    });
    const out = await readOutput(j.dir, Box.ofShape([8, 24, 24]));
    expect(maxAbsDiff(out, reference)).toBeLessThanOrEqual(1e-5);
  });
});
