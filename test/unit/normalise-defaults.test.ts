// What the model receives by default: every integer dtype's range onto [0, 1] (uint16 no
// longer raw 0..65535), floats as they are; the rule is frozen in the job description, and
// a job described by an earlier release (version 1) keeps the rule it was planned with.
// Inputs are written by zarrita or by hand; expected values are written out, not computed
// by the code under test.

import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Dense, NumericArray } from '../../core/array/dense.ts';
import { Box } from '../../core/geometry/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { ManifestError, parseManifest } from '../../core/manifest/index.ts';
import {
  JOB_DESCRIPTION_KEY,
  JobDescriptionError,
  openJob,
  planJob,
} from '../../core/pipeline/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { normalize } from '../../core/volume/normalize.ts';
import { tempDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
const FIXTURES = new URL('../fixtures/normalise/', import.meta.url).pathname;

const dense = (data: NumericArray): Dense<NumericArray> => ({
  box: Box.ofShape([1, 1, data.length]),
  channels: 1,
  data,
});
const mapped = (data: NumericArray, dtype: string): number[] =>
  Array.from(normalize(dense(data), { dtype }).data);

describe('the per-dtype default', () => {
  it('maps uint16 0..65535 onto [0, 1] (was fed raw)', () => {
    const out = mapped(Uint16Array.of(0, 65535, 4000), 'uint16');
    expect(out[0]).toBe(0);
    expect(out[1]).toBe(1);
    expect(out[2]).toBeCloseTo(0.061036, 6);
    for (const v of out) expect(v >= 0 && v <= 1).toBe(true);
  });

  it('maps each integer dtype’s min to 0 and max to 1; uint8 stays v / 255', () => {
    const ends: [string, NumericArray][] = [
      ['uint8', Uint8Array.of(0, 255, 51)],
      ['int8', Int8Array.of(-128, 127, 0)],
      ['int16', Int16Array.of(-32768, 32767, 0)],
      ['uint32', Uint32Array.of(0, 4294967295, 0)],
      ['int32', Int32Array.of(-2147483648, 2147483647, 0)],
    ];
    for (const [dtype, data] of ends) {
      const out = mapped(data, dtype);
      expect(out[0], dtype).toBe(0);
      expect(out[1], dtype).toBe(1);
    }
    expect(mapped(Uint8Array.of(51), 'uint8')[0]).toBe(Math.fround(0.2));
    // A signed type's 0 sits at the middle of its range.
    expect(mapped(Int8Array.of(0), 'int8')[0]).toBe(Math.fround(128 / 255));
  });

  it('passes floats as they are', () => {
    expect(mapped(Float32Array.of(-3.5, 0, 1234.5), 'float32')).toEqual([-3.5, 0, 1234.5]);
  });
});

/** A uint16 job over the zarr-python fixture in a temp dir, with `input` fields. */
function u16Job(input: Record<string, unknown> = {}) {
  const t = tempDir('tessera-normalise-');
  cleanups.push(t.cleanup);
  cpSync(join(FIXTURES, 'u16.zarr'), join(t.dir, 'u16.zarr'), { recursive: true });
  const manifest = parseManifest({
    version: 1,
    name: 'u16-job',
    input: { url: join(t.dir, 'u16.zarr'), ...input },
    output: { url: join(t.dir, 'out.zarr'), dtype: 'float32' },
    model: { url: 'unused.onnx', patchShape: [8, 16, 16], outputChannels: 1 },
    overlap: [0, 4, 4],
    chunkShape: [16, 24, 24],
  });
  const work = new LocalStore(join(t.dir, 'work'), { fsync: false });
  return {
    dir: t.dir,
    manifest,
    work,
    open: () => openJob(manifest, { jobId: 'u16-job-1', work }),
  };
}

describe('the frozen normalisation', () => {
  it('a new uint16 job is described with the dtype rule, [0, 65535] → [0, 1]', async () => {
    const j = u16Job();
    const ctx = await j.open();
    await planJob(ctx, new MemoryLedger());
    const d = JSON.parse(readFileSync(join(j.dir, 'work', 'job.json'), 'utf8'));
    expect(d.version).toBe(2);
    expect(d.normalization).toEqual({
      rule: 'dtype',
      mapping: { kind: 'range', low: 0, high: 65535 },
      nan: 'fail',
    });
  });

  it('input.scale/offset as written; input.nan recorded', async () => {
    const ctx = await u16Job({ scale: 0.001, offset: -0.5, nan: 'zero' }).open();
    expect(ctx.description.normalization).toEqual({
      rule: 'scale-offset',
      mapping: { kind: 'affine', scale: 0.001, offset: -0.5 },
      nan: 'zero',
    });
  });

  it('a job described by an earlier release (version 1) keeps feeding uint16 raw', async () => {
    const j = u16Job();
    const planned = await j.open();
    // The description as version 1 wrote it: no normalization field.
    const { normalization: _, ...v1 } = { ...planned.description, version: 1 };
    await j.work.set(JOB_DESCRIPTION_KEY, new TextEncoder().encode(JSON.stringify(v1)));
    const resumed = await j.open();
    expect(resumed.description.normalization).toEqual({
      rule: 'legacy',
      mapping: { kind: 'affine', scale: 1, offset: 0 },
      nan: 'fail',
    });
  });

  it('a version-2 description is applied as frozen, whatever the manifest now derives', async () => {
    const j = u16Job();
    const planned = await j.open();
    const frozen = {
      ...planned.description,
      normalization: {
        rule: 'percentiles',
        mapping: { kind: 'range', low: 100, high: 300 },
        nan: 'fail',
      },
    };
    await j.work.set(JOB_DESCRIPTION_KEY, new TextEncoder().encode(JSON.stringify(frozen)));
    expect((await j.open()).description.normalization).toEqual(frozen.normalization);
  });

  it('refuses a version-2 description without a usable normalisation', async () => {
    const j = u16Job();
    const planned = await j.open();
    const broken = {
      ...planned.description,
      normalization: { rule: 'dtype', mapping: { kind: 'range', low: 5, high: 5 }, nan: 'zero' },
    };
    await j.work.set(JOB_DESCRIPTION_KEY, new TextEncoder().encode(JSON.stringify(broken)));
    await expect(j.open()).rejects.toBeInstanceOf(JobDescriptionError);
  });
});

describe('manifest fields', () => {
  const base = {
    version: 1,
    name: 'cells',
    input: { url: 'in.zarr' },
    output: { url: 'out.zarr', dtype: 'float32' },
    model: { url: 'm.onnx', patchShape: [8, 8, 8], outputChannels: 2 },
    overlap: [0, 0, 0],
    chunkShape: [16, 16, 16],
  };
  const issues = (doc: unknown): string => {
    try {
      parseManifest(doc);
      return '';
    } catch (e) {
      if (!(e instanceof ManifestError)) throw e;
      return e.message;
    }
  };

  it('accepts input.normalize, input.nan and model.channelNames', () => {
    const m = parseManifest({
      ...base,
      input: { url: 'in.zarr', normalize: { percentiles: [0.5, 99.5], clip: true }, nan: 'fail' },
      model: { ...base.model, channelNames: ['membrane', 'mito'] },
    });
    expect(m.input.normalize).toEqual({ percentiles: [0.5, 99.5], clip: true });
    expect(m.model.channelNames).toEqual(['membrane', 'mito']);
  });

  it('refuses normalize with scale, reversed percentiles, a nan mode it lacks, a name count off', () => {
    expect(
      issues({ ...base, input: { url: 'in.zarr', scale: 2, normalize: { percentiles: [1, 99] } } }),
    ).toContain('input.normalize computes its own scale and offset');
    expect(
      issues({ ...base, input: { url: 'in.zarr', normalize: { percentiles: [99, 1] } } }),
    ).toContain('the first percentile must be below the second');
    expect(issues({ ...base, input: { url: 'in.zarr', nan: 'skip' } })).toContain('input.nan');
    expect(issues({ ...base, model: { ...base.model, channelNames: ['membrane'] } })).toContain(
      'model.channelNames has 1 name(s), model.outputChannels is 2',
    );
  });
});
