// `tessera plan` shows what the model will receive: the rule with its scale and offset, the
// sampled model inputs (min, p1, p50, p99, max) and a warning when they would mostly sit
// near 0 or saturate. The input is zarr-python's 12-bit uint16 fixture; the expected
// figures come from numpy (test/fixtures/normalise/expected.json) or are written out.

import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { planCommand } from '../../cli/plan-command.ts';
import expected from '../fixtures/normalise/expected.json' with { type: 'json' };
import { FIXTURE_MODELS, tempDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
const FIXTURES = new URL('../fixtures/normalise/', import.meta.url).pathname;

function manifest(input: Record<string, unknown>): string {
  const t = tempDir('tessera-plan-normalise-');
  cleanups.push(t.cleanup);
  cpSync(join(FIXTURES, 'u16.zarr'), join(t.dir, 'u16.zarr'), { recursive: true });
  const path = join(t.dir, 'manifest.json');
  writeFileSync(
    path,
    JSON.stringify({
      version: 1,
      name: 'u16-plan',
      input: { url: 'u16.zarr', ...input },
      output: { url: 'out.zarr', dtype: 'float32' },
      model: {
        url: join(FIXTURE_MODELS, 'realistic.onnx'),
        patchShape: [4, 8, 8],
        outputChannels: 2,
      },
      overlap: [0, 2, 2],
      chunkShape: [8, 24, 24],
    }),
  );
  return path;
}

async function plan(args: string[]): Promise<string> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    expect(await planCommand(args)).toBe(0);
    return out;
  } finally {
    process.stdout.write = write;
  }
}

describe('tessera plan: what the model receives', () => {
  it('prints the uint16 default with its scale and warns that 12-bit data sits near 0', async () => {
    const out = await plan([manifest({})]);
    expect(out).toContain(
      'input      uint16\'s range [0, 65535] onto [0, 1]: x = v / 65535 (scale 0.00001526, offset 0); NaN fails the chunk (input.nan "fail")',
    );
    expect(out).toMatch(
      /model inputs over 36864 voxels of 18 stored chunk\(s\): min 0\.003311, p1 0\.008606, p50 0\.03203, p99 0\.05565, max 0\.06104/,
    );
    expect(out).toMatch(/warning {4}\d+ % of the sampled model inputs are within 0\.05 of 0/);
  });

  it('--json: the percentile rule, its frozen values and the sampled range, no warning', async () => {
    const out = await plan([manifest({ normalize: { percentiles: [0.5, 99.5] } }), '--json']);
    const summary = JSON.parse(out);
    const low = expected.u16.percentiles['0.5'];
    const high = expected.u16.percentiles['99.5'];
    expect(summary.input.normalization).toMatchObject({
      rule: 'percentiles',
      mapping: { kind: 'range', low, high },
      scale: 1 / (high - low),
      offset: -low / (high - low),
    });
    expect(summary.input.sample).toEqual({ boxes: 18, voxels: 36864, nan: 0 });
    expect(summary.input.range.min).toBeLessThan(0);
    expect(summary.input.range.max).toBeGreaterThan(1);
    expect(summary.input.warnings).toEqual([]);
  });
});
