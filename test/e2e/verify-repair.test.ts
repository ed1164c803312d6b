// `tessera verify` on a real finished local job (runLocal, worker processes, the real
// model): an owned block deleted, a seam block and a pyramid block truncated after
// success. The check names exactly those three; the repair re-runs exactly the chunks
// that own or contribute to them and restores every output object byte for byte.
//
// Geometry (the same as test/helpers/output-check-fixture.ts, worked out there by hand):
// volume [4, 12, 24], patches 4³ with overlap [0, 2, 2], chunks [4, 6, 10], blocks 4³.
//   block (0,0,1) is owned by chunk 0_0_0
//   block (0,1,2) is a seam of chunks 0_0_0, 0_0_1, 0_1_0, 0_1_1

import { readdirSync, readFileSync, statSync, truncateSync, unlinkSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { verifyLocal } from '../../cli/local-repair.ts';
import { runLocal } from '../../cli/local-run.ts';
import { verifyCommand } from '../../cli/verify-command.ts';
import { openJob } from '../../core/pipeline/index.ts';
import { checkOutput } from '../../core/pipeline/output-check.ts';
import { MemoryStore } from '../../core/store/index.ts';
import { FIXTURE_MODELS, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** Every Zarr object of the output (report and preview files aside), path → bytes. */
function zarrObjects(root: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (!/^(report\.|preview\.png)/.test(e.name))
        out.set(relative(root, p), readFileSync(p));
    }
  };
  walk(root);
  return out;
}

describe('tessera verify (local)', () => {
  it('names the three damaged objects and repairs them by re-running exactly their chunks', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const path = await writeJobDir(t.dir, {
      shape: [4, 12, 24],
      manifest: {
        name: 'verify-job',
        model: {
          url: join(FIXTURE_MODELS, 'realistic.onnx'),
          patchShape: [4, 4, 4],
          outputChannels: 2,
        },
        output: { url: 'output.zarr', dtype: 'float32', blockShape: [4, 4, 4], pyramid: 1 },
        overlap: [0, 2, 2],
        chunkShape: [4, 6, 10],
        blend: 'bump',
      },
    });
    const m = await loadManifest(path);
    const first = await runLocal(m, { workers: 1 });
    expect(first.message).toBeUndefined();
    expect(first.status).toBe('SUCCEEDED');

    const out = join(t.dir, 'output.zarr');
    const original = zarrObjects(out);
    expect(original.has('1/c/0/0/0/0')).toBe(true);
    unlinkSync(join(out, '0/c/0/0/0/1'));
    truncateSync(join(out, '0/c/0/0/1/2'), Math.floor(statSync(join(out, '0/c/0/0/1/2')).size / 2));
    truncateSync(join(out, '1/c/0/0/0/0'), statSync(join(out, '1/c/0/0/0/0')).size - 1);

    const ctx = await openJob(m.manifest, {
      jobId: m.jobId,
      work: new MemoryStore(),
      baseDir: m.baseDir,
    });
    const check = await checkOutput(ctx);
    expect(check.damaged.map((d) => [d.key, d.problem])).toEqual([
      ['/0/c/0/0/0/1', 'missing'],
      ['/0/c/0/0/1/2', 'truncated'],
      ['/1/c/0/0/0/0', 'truncated'],
    ]);

    // --check-only: exit 1, nothing written.
    expect(await verifyCommand([path, '--check-only'])).toBe(1);
    expect(zarrObjects(out).has('0/c/0/0/0/1')).toBe(false);

    const claims: string[] = [];
    const result = await verifyLocal(m, {
      threads: 1,
      onWorkerEvent: (e) => {
        if (e.type === 'claimed') claims.push(e.chunkId);
      },
    });
    expect(result.repair?.status).toBe('REPAIRED');
    expect(result.repair?.plan).toEqual({
      chunkIds: ['0_0_0', '0_0_1', '0_1_0', '0_1_1'],
      seamBlocks: ['0_1_2'],
      pyramid: true,
      metadata: [],
    });
    expect(claims.sort()).toEqual(['0_0_0', '0_0_1', '0_1_0', '0_1_1']);

    const repaired = zarrObjects(out);
    expect([...repaired.keys()].sort()).toEqual([...original.keys()].sort());
    for (const [key, bytes] of original) expect(repaired.get(key)?.equals(bytes), key).toBe(true);

    expect(await verifyCommand([path, '--check-only'])).toBe(0);

    // Metadata: level 0's zarr.json cut into invalid JSON, the root group's deleted.
    // Rewritten, byte-equal, with no chunk re-run.
    truncateSync(join(out, '0/zarr.json'), 40);
    unlinkSync(join(out, 'zarr.json'));
    claims.length = 0;
    const meta = await verifyLocal(m, {
      threads: 1,
      onWorkerEvent: (e) => {
        if (e.type === 'claimed') claims.push(e.chunkId);
      },
    });
    expect(meta.check.damaged.map((d) => [d.key, d.problem])).toEqual([
      ['/zarr.json', 'missing'],
      ['/0/zarr.json', 'undecodable'],
    ]);
    expect(meta.repair?.status).toBe('REPAIRED');
    expect(meta.repair?.plan.chunkIds).toEqual([]);
    expect(claims).toEqual([]);
    const rewritten = zarrObjects(out);
    for (const key of ['zarr.json', '0/zarr.json'])
      expect(rewritten.get(key)?.toString(), key).toBe(original.get(key)?.toString());
    const again = await runLocal(m, { workers: 1 });
    expect(again.status).toBe('SUCCEEDED');
    expect(again.inferredThisRun).toBe(0);

    // Running the SUCCEEDED job again checks its output the same way, and repairs it:
    // an owned block deleted and a seam block cut short come back byte for byte, and
    // only their chunks run again.
    unlinkSync(join(out, '0/c/0/0/0/1'));
    truncateSync(join(out, '0/c/0/0/1/2'), Math.floor(statSync(join(out, '0/c/0/0/1/2')).size / 2));
    const lines: string[] = [];
    const rerun = await runLocal(m, { workers: 1, log: (l) => lines.push(l) });
    expect(rerun.status).toBe('SUCCEEDED');
    expect(rerun.message).toMatch(
      /repaired 2 damaged output object\(s\) by re-running 4 chunk\(s\)/,
    );
    expect(rerun.inferredThisRun).toBe(4);
    expect(lines.join('\n')).toMatch(/already SUCCEEDED, but 2 output object\(s\) are damaged/);
    const afterRerun = zarrObjects(out);
    for (const [key, bytes] of original) expect(afterRerun.get(key)?.equals(bytes), key).toBe(true);
    const quiet = await runLocal(m, { workers: 1 });
    expect(quiet.message).toBe(`job ${m.jobId} had already succeeded; nothing to do`);
  });
});
