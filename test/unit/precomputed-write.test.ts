// The precomputed writer. Its files were judged by an independent reader: generate.py's
// verify-written (numpy, written from the spec) read test/fixtures/precomputed/written/,
// compared every voxel with its own copy of the value formula, and recorded its verdict
// (written-verdict.json, with a digest of the files it read). Here the writer writes the
// same volumes again and must produce those very files, so the verdict holds for it.

import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { Box } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { OutputMismatchError, OutputOwnedError } from '../../core/volume/errors.ts';
import {
  checkOutputOwner,
  createOutputVolume,
  openOutputVolume,
  outputPresence,
} from '../../core/volume/output.ts';
import { setPrecomputedResolution } from '../../core/volume/precomputed/output.ts';
import {
  valueAt,
  WRITTEN_CASES,
  WRITTEN_OWNER,
  writeCase,
} from '../helpers/precomputed-written.ts';

const FIXTURES = join(import.meta.dirname, '../fixtures/precomputed');
const verdict = JSON.parse(readFileSync(join(FIXTURES, 'written-verdict.json'), 'utf8')) as Record<
  string,
  { ok: boolean; files: number; files_sha256: string }
>;
const dirs: string[] = [];
const temp = () => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-pcw-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** generate.py's digest: sha256 over sorted "name\0bytes" of the scale's files. */
function digest(dir: string): string {
  const h = createHash('sha256');
  for (const f of readdirSync(dir).sort()) {
    h.update(Buffer.from(`${f}\0`));
    h.update(readFileSync(join(dir, f)));
  }
  return h.digest('hex');
}

describe('precomputed writer, judged by the Python reader', () => {
  it.each(WRITTEN_CASES.map((k) => [k.name, k] as const))(
    '%s writes the files the reader accepted',
    async (name, k) => {
      expect(verdict[name]?.ok).toBe(true);
      const dir = temp();
      await writeCase(dir, k);
      const mine = readdirSync(join(dir, '0')).sort();
      const judged = readdirSync(join(FIXTURES, 'written', name, '0')).sort();
      expect(mine).toEqual(judged);
      expect(mine.length).toBe(verdict[name]!.files);
      expect(JSON.parse(readFileSync(join(dir, 'info'), 'utf8'))).toEqual(
        JSON.parse(readFileSync(join(FIXTURES, 'written', name, 'info'), 'utf8')),
      );
      if (k.compression === 'raw') expect(digest(join(dir, '0'))).toBe(verdict[name]!.files_sha256);
      // gzip bytes may differ between zlib builds; what they hold may not.
      else
        for (const f of mine)
          expect(gunzipSync(readFileSync(join(dir, '0', f)))).toEqual(
            gunzipSync(readFileSync(join(FIXTURES, 'written', name, '0', f))),
          );
    },
  );
});

describe('precomputed output through the OutputVolume functions', () => {
  const k = WRITTEN_CASES[0]!;
  const opts = { shape: k.shape, channels: k.channels, dtype: k.dtype, blockShape: k.blockShape };

  it('is opened by openOutputVolume from its info and reads back what was written', async () => {
    const dir = temp();
    await writeCase(dir, k);
    const out = await openOutputVolume(new LocalStore(dir), { owner: WRITTEN_OWNER });
    expect(out.shape).toEqual(k.shape);
    expect(out.blockShape).toEqual(k.blockShape);
    const box = new Box([18, 20, 25], [22, 26, 30]); // over the far edges
    const got = await out.readBox(box);
    let i = 0;
    for (let c = 0; c < 2; c++)
      for (let z = 18; z < 22; z++)
        for (let y = 20; y < 26; y++)
          for (let x = 25; x < 30; x++, i++) {
            const inside = z < 20 && y < 24 && x < 28;
            expect(got.data[i]).toBe(inside ? valueAt('float32', c, z, y, x) : 0);
          }
    expect(await out.blockExists([2, 2, 2])).toBe(true);
  });

  it('reopens the same layout, refuses another layout and another job', async () => {
    const dir = temp();
    const store = new LocalStore(dir);
    await createOutputVolume(store, { ...opts, owner: 'job-a', format: 'precomputed' });
    await createOutputVolume(store, { ...opts, owner: 'job-a', format: 'precomputed' });
    await expect(
      createOutputVolume(store, {
        ...opts,
        blockShape: [8, 8, 8],
        owner: 'job-a',
        format: 'precomputed',
      }),
    ).rejects.toBeInstanceOf(OutputMismatchError);
    await expect(
      createOutputVolume(store, { ...opts, owner: 'job-b', format: 'precomputed' }),
    ).rejects.toBeInstanceOf(OutputOwnedError);
    await expect(openOutputVolume(store, { owner: 'job-b' })).rejects.toBeInstanceOf(
      OutputOwnedError,
    );
    await expect(checkOutputOwner(store, 'job-b')).rejects.toBeInstanceOf(OutputOwnedError);
    expect(await outputPresence(store)).toEqual({ exists: true, owner: 'job-a' });
  });

  it('keeps its layout when finalize sets the resolution', async () => {
    const dir = temp();
    const store = new LocalStore(dir);
    await createOutputVolume(store, { ...opts, owner: 'job-a', format: 'precomputed' });
    await setPrecomputedResolution(store, [30, 8, 4]);
    const info = JSON.parse(readFileSync(join(dir, 'info'), 'utf8'));
    expect(info.scales[0].resolution).toEqual([4, 8, 30]);
    await createOutputVolume(store, { ...opts, owner: 'job-a', format: 'precomputed' });
  });

  it('refuses a block that is not the block it claims to be', async () => {
    const out = await createOutputVolume(new LocalStore(temp()), {
      ...opts,
      format: 'precomputed',
    });
    const box = out.blockBox([0, 0, 0]);
    await expect(
      out.writeBlock([0, 0, 0], { box, channels: 2, data: new Uint8Array(2 * box.size) }),
    ).rejects.toThrow('convert before writing');
    await expect(
      out.writeBlock([0, 0, 1], { box, channels: 2, data: new Float32Array(2 * box.size) }),
    ).rejects.toThrow('its box is');
  });
});

describe('ensureOutput with a precomputed output', () => {
  it("reads another worker's half-written info again instead of failing", async () => {
    const { ensureOutput, planFor } = await import('../../core/pipeline/context.ts');
    const { parseManifest } = await import('../../core/manifest/index.ts');
    const { MemoryStore } = await import('../../core/store/index.ts');
    const manifest = parseManifest({
      version: 1,
      name: 'race',
      input: { url: 'in' },
      output: { url: 'precomputed://out', dtype: 'uint8', blockShape: [8, 8, 8] },
      model: { url: 'm.onnx', patchShape: [8, 8, 8], outputChannels: 1 },
      overlap: [0, 0, 0],
      chunkShape: [8, 8, 8],
    });
    const plan = planFor(manifest, [16, 16, 16]);
    const store = new MemoryStore();
    await createOutputVolume(store, {
      shape: [16, 16, 16],
      channels: 1,
      dtype: 'uint8',
      blockShape: [8, 8, 8],
      owner: 'race-job',
      format: 'precomputed',
    });
    const whole = (await store.get('/info'))!;
    let reads = 0;
    const get = store.get.bind(store);
    // The first read sees the document cut short, as an emulator's non-atomic PUT can show it.
    store.get = async (key) =>
      key === '/info' && reads++ === 0 ? whole.subarray(0, 10) : get(key);
    const ctx = { outputStore: store, plan, manifest, jobId: 'race-job' } as unknown as Parameters<
      typeof ensureOutput
    >[0];
    const out = await ensureOutput(ctx);
    expect(out.shape).toEqual([16, 16, 16]);
    expect(reads).toBeGreaterThan(1);
  });
});
