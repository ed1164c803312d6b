// The output check of a precomputed output: which block files and which info it names,
// with sizes from the plan (C × voxels × dtype, edge blocks cut), per scope and depth.

import { mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseManifest } from '../../core/manifest/index.ts';
import { planFor } from '../../core/pipeline/context.ts';
import { checkOutput, type OutputCheckContext } from '../../core/pipeline/output-check.ts';
import { LocalStore } from '../../core/store/index.ts';
import type { InputVolume } from '../../core/volume/input.ts';
import { createPrecomputedOutput } from '../../core/volume/precomputed/output.ts';
import { writeAll } from '../helpers/precomputed-written.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function finished(): Promise<{ dir: string; ctx: OutputCheckContext }> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-pcc-'));
  dirs.push(dir);
  const manifest = parseManifest({
    version: 1,
    name: 'check',
    input: { url: 'precomputed://in' },
    output: { url: 'precomputed://out', dtype: 'float32', blockShape: [8, 10, 12] },
    model: { url: 'm.onnx', patchShape: [8, 12, 12], outputChannels: 2 },
    overlap: [2, 4, 4],
    chunkShape: [12, 16, 16],
  });
  const plan = planFor(manifest, [20, 24, 28]);
  const store = new LocalStore(dir);
  const out = await createPrecomputedOutput(store, {
    shape: [20, 24, 28],
    channels: 2,
    dtype: 'float32',
    blockShape: [8, 10, 12],
    owner: 'check-job',
  });
  await writeAll(out, 'float32');
  return { dir, ctx: { plan, manifest, outputStore: store, input: {} as InputVolume } };
}

describe('checkOutput of a precomputed output', () => {
  it('finds a whole output whole: the info and 27 blocks', async () => {
    const { ctx } = await finished();
    const r = await checkOutput(ctx);
    expect(r.damaged).toEqual([]);
    expect(r.checked).toBe(28);
  });

  it('names a missing block, a block cut short and a damaged info', async () => {
    const { dir, ctx } = await finished();
    unlinkSync(join(dir, '0', '0-12_0-10_0-8'));
    truncateSync(join(dir, '0', '24-28_20-24_16-20'), 100); // a whole one: 4·4·4·2·4 = 512
    writeFileSync(join(dir, 'info'), '{"data_type": "uint8"');
    const r = await checkOutput(ctx);
    expect(r.damaged.map((d) => [d.key, d.problem])).toEqual([
      ['/0/0-12_0-10_0-8', 'missing'],
      ['/0/24-28_20-24_16-20', 'truncated'],
      ['/info', 'undecodable'],
    ]);
    const listing = await checkOutput(ctx, { depth: 'listing' });
    expect(listing.damaged.map((d) => d.key)).toContain('/0/24-28_20-24_16-20');
  });

  it("scope 'owned' looks only at the blocks workers write final", async () => {
    const { dir, ctx } = await finished();
    const seam = [...Array(ctx.plan.counts.blocks).keys()]
      .map((i) => ctx.plan.describeBlock(ctx.plan.regionBlockAt(i)))
      .find((b) => b.seam)!;
    const [z, y, x] = [0, 1, 2].map((a) => `${seam.box.start[a]}-${seam.box.stop[a]}`);
    unlinkSync(join(dir, '0', `${x}_${y}_${z}`));
    expect((await checkOutput(ctx, { scope: 'owned' })).damaged).toEqual([]);
    expect((await checkOutput(ctx)).damaged.map((d) => d.problem)).toEqual(['missing']);
  });
});
