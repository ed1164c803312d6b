// What a user sees around a run: `tessera status` on a finished run and on one whose
// state directory a run holds (read through the journal, without the lock), the
// pictures and viewer metadata finalize writes, and `tessera plan`'s cost estimate.

import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultStateDir, loadManifest } from '../../cli/job-files.ts';
import type { JobStatus } from '../../cli/job-status.ts';
import { runLocal } from '../../cli/local-run.ts';
import { planCommand } from '../../cli/plan-command.ts';
import { statusCommand } from '../../cli/status-command.ts';
import { LedgerLockedError, LocalLedger } from '../../core/ledger/index.ts';
import { JournalView, lockHolder } from '../../core/ledger/journal-view.ts';
import { openJob, planJob, type RunReport } from '../../core/pipeline/index.ts';
import { MemoryStore } from '../../core/store/index.ts';
import { FIXTURE_MODELS, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
function dir(): string {
  const t = tempDir('tessera-users-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Runs a CLI command, returning its exit code and what it wrote to stdout. */
async function capture(f: () => Promise<number>): Promise<{ code: number; out: string }> {
  const write = process.stdout.write.bind(process.stdout);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    return { code: await f(), out };
  } finally {
    process.stdout.write = write;
  }
}

const MANIFEST = {
  model: {
    url: join(FIXTURE_MODELS, 'realistic.onnx'),
    patchShape: [8, 16, 16],
    outputChannels: 2,
  },
  output: { url: 'output.zarr', dtype: 'float32', blockShape: [10, 20, 22], pyramid: 2 },
  overlap: [2, 4, 4],
  chunkShape: [12, 24, 24],
  blend: 'bump',
};

describe('after a run', () => {
  let path: string;
  let out: string;
  beforeAll(async () => {
    const d = dir();
    out = join(d, 'output.zarr');
    path = await writeJobDir(d, { shape: [20, 40, 44], manifest: MANIFEST });
    const result = await runLocal(await loadManifest(path), { workers: 2 });
    expect(result.status).toBe('SUCCEEDED');
  });

  it('status --json reports a complete job with all its voxels', async () => {
    const { code, out: text } = await capture(() => statusCommand([path, '--json']));
    expect(code).toBe(0);
    const s = JSON.parse(text) as JobStatus;
    const m = await loadManifest(path);
    expect(s).toMatchObject({
      jobId: m.jobId,
      name: 'test-job',
      ledger: 'local',
      state: 'SUCCEEDED',
      output: out,
    });
    expect(s.chunks.DONE).toBe(s.chunks.total);
    expect(s.voxels).toEqual({ done: 20 * 40 * 44, total: 20 * 40 * 44 });
    expect(s.running).toEqual([]);
    expect(s.poison).toEqual([]);
    expect(s.workers.seen).toBeGreaterThanOrEqual(1);
    expect(s.spend.workerHours).toBeGreaterThan(0);
    expect(s.spend.dollars).toBeUndefined(); // a local run is priced only on request
    expect(s.attempts.total).toBe(s.chunks.total);
  });

  it('status by job id and --state, as text', async () => {
    const m = await loadManifest(path);
    const { code, out: text } = await capture(() =>
      statusCommand([m.jobId, '--state', defaultStateDir(m), '--price-per-hour', '2']),
    );
    expect(code).toBe(0);
    expect(text).toMatch(/state\s+SUCCEEDED/);
    expect(text).toContain(`output     ${out} (look at it: tessera view ${out})`);
    expect(text).toMatch(/no run holds it/);
    expect(text).toMatch(/spend .* worker-hours ≈ \$/);
  });

  it('finalize wrote preview.png, report.html and a pyramid listed in the metadata', () => {
    const png = readFileSync(join(out, 'preview.png'));
    // IHDR: 3 rows (depths) × 3 columns (input + 2 channels) of 44×40 panels shown 2× (tiny volume),
    // under a caption band (the 7-pixel font and a 4-pixel gap above and below).
    expect(png.readUInt32BE(16)).toBe(3 * 88 + 2 * 4);
    expect(png.readUInt32BE(20)).toBe(7 + 2 * 4 + 3 * 80 + 2 * 4);
    const report = JSON.parse(readFileSync(join(out, 'report.json'), 'utf8')) as RunReport;
    expect(report.files).toEqual({ preview: 'preview.png', html: 'report.html' });
    expect(report.levels?.map((l) => l.shape)).toEqual([
      [20, 40, 44],
      [10, 20, 22],
      [5, 10, 11],
    ]);
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    expect(sum(report.chunkHistogram!.counts)).toBe(report.chunks.total);
    expect(sum(report.timeline!.chunks)).toBe(report.chunks.total);
    expect(report.viewer).toBeUndefined(); // local output: no neuroglancer link
    const html = readFileSync(join(out, 'report.html'), 'utf8');
    expect(html).toContain('data:image/png;base64,');
    expect(html).toContain(report.jobId);
    expect((html.match(/<svg/g) ?? []).length).toBe(2);
    const root = JSON.parse(readFileSync(join(out, 'zarr.json'), 'utf8'));
    const datasets = root.attributes.ome.multiscales[0].datasets as { path: string }[];
    expect(datasets.map((d) => d.path)).toEqual(['0', '1', '2']);
    for (const p of ['1', '2']) expect(existsSync(join(out, p, 'zarr.json'))).toBe(true);
  });

  it('plan --json --throughput: worker-hours, dollars and requests from the plan counts', async () => {
    const { code, out: text } = await capture(() =>
      planCommand([path, '--json', '--throughput', '250000', '--price-per-hour', '0.3']),
    );
    expect(code).toBe(0);
    const p = JSON.parse(text);
    const c = p.counts;
    expect(p.cost.workerHours).toBeCloseTo(c.patchVoxels / 250_000 / 3600, 12);
    expect(p.cost.dollars).toBeCloseTo((c.patchVoxels / 250_000 / 3600) * 0.3, 12);
    expect(p.cost.requests.putsPerChunk).toBe((c.ownedBlocks + c.seamPartials) / c.chunks);
    expect(p.cost.requests.puts).toBe(c.ownedBlocks + c.seamPartials + c.seamBlocks);
    const plain = await capture(() => planCommand([path]));
    expect(plain.out).toMatch(/requests\s+[\d.]+ objects written per chunk/);
    expect(plain.out).toMatch(/cost\s+add --throughput/);
  });
});

describe('plan: measured throughput and empty chunks', () => {
  it('--calibrate runs the model here; --scan-empty counts the chunks skipBelow will skip', async () => {
    const d = dir();
    const shape: [number, number, number] = [20, 40, 44];
    // The far half in x is background (0): chunks whose input (halo included) lies there are skipped.
    const data = new Uint8Array(shape[0] * shape[1] * shape[2]);
    for (let i = 0; i < data.length; i++) data[i] = i % shape[2] < 16 ? 100 + (i % 7) : 0;
    const path = await writeJobDir(d, {
      shape,
      data,
      manifest: { ...MANIFEST, input: { url: 'input.zarr', skipBelow: 1 } },
    });
    const { code, out: text } = await capture(() =>
      planCommand([path, '--json', '--calibrate', '--batch', '2', '--scan-empty']),
    );
    expect(code).toBe(0);
    const p = JSON.parse(text);
    expect(p.cost.throughput.voxelsPerSecond).toBeGreaterThan(0);
    expect(p.cost.throughput.source).toMatch(
      /^measured on this machine: cpu, \d+ thread\(s\), 3 batches of 2/,
    );
    // By hand: every chunk whose read box (with halo) starts at x ≥ 16.
    const m = await loadManifest(path);
    const ctx = await openJob(m.manifest, {
      jobId: m.jobId,
      work: new MemoryStore(),
      baseDir: m.baseDir,
    });
    let chunks = 0;
    let patches = 0;
    for (const c of ctx.plan.chunks())
      if (c.readBox.start[2] >= 16) {
        chunks++;
        patches += c.patchCount;
      }
    expect(chunks).toBeGreaterThan(0);
    expect(p.empty).toMatchObject({
      threshold: 1,
      chunks,
      patches,
      patchVoxels: patches * 8 * 16 * 16,
    });
    expect(p.cost.patchVoxels).toBe(p.counts.patchVoxels - patches * 8 * 16 * 16);
  });
});

describe('status while a run holds the state directory', () => {
  it('reads the journal without the lock, skips a torn last line, and sees dead workers once the run is gone', async () => {
    const d = dir();
    const path = await writeJobDir(d, {
      shape: [12, 30, 30],
      manifest: { ...MANIFEST, output: { url: 'output.zarr', dtype: 'float32' } },
    });
    const m = await loadManifest(path);
    const ledgerDir = join(defaultStateDir(m), 'ledger');
    // This test process plays the run: it holds the lock.
    const ledger = await LocalLedger.open(ledgerDir);
    const ctx = await openJob(m.manifest, {
      jobId: m.jobId,
      work: new MemoryStore(),
      baseDir: m.baseDir,
    });
    await planJob(ctx, ledger);
    const a = (await ledger.claim(m.jobId, 'worker-a'))!;
    const b = (await ledger.claim(m.jobId, 'worker-b'))!;
    await ledger.complete(a);
    await ledger.fail(b, 'model returned NaN at chunk b');
    // Away from b, which is claimable again (lowest index first).
    const c = (await ledger.claim(m.jobId, 'worker-a', { startIndex: 3 }))!;
    expect(lockHolder(ledgerDir)).toBe(process.pid);

    const { out: text } = await capture(() => statusCommand([path, '--json']));
    const s = JSON.parse(text) as JobStatus;
    expect(s.state).toBe('RUNNING');
    expect(s.chunks).toMatchObject({ DONE: 1, RUNNING: 1, FAILED: 0 });
    expect(s.chunks.PENDING).toBe(s.chunks.total - 2);
    expect(s.retrying).toEqual([
      { chunkId: b.chunkId, attempts: 1, lastError: 'model returned NaN at chunk b' },
    ]);
    expect(s.running).toMatchObject([{ chunkId: c.chunkId, owner: 'worker-a', stale: false }]);
    expect(s.workers.active).toBe(1);

    // Status took no lock and changed nothing: the run goes on, and still excludes others.
    await ledger.complete(c);
    await expect(LocalLedger.open(ledgerDir)).rejects.toBeInstanceOf(LedgerLockedError);
    const d2 = (await ledger.claim(m.jobId, 'worker-b', { startIndex: 4 }))!;

    // A write in progress: the last line is torn. The view skips it and writes nothing.
    const copy = join(dir(), 'ledger');
    cpSync(ledgerDir, copy, { recursive: true });
    const journal = join(copy, 'ledger.jsonl');
    writeFileSync(journal, `${readFileSync(journal, 'utf8')}{"t":"row","j":"${m.jobId}","i":`);
    const size = statSync(journal).size;
    const view = await JournalView.read(copy);
    expect(await view.counts(m.jobId)).toEqual(await ledger.counts(m.jobId));
    expect(statSync(journal).size).toBe(size);

    // The run is killed (its lock goes stale with it; here it is released): the chunk it
    // held is reported as held by a worker that is gone, and nothing is active.
    await ledger.close();
    const after = JSON.parse(
      (await capture(() => statusCommand([path, '--json']))).out,
    ) as JobStatus;
    expect(after.state).toBe('WAITING');
    expect(after.running).toMatchObject([{ chunkId: d2.chunkId, stale: true }]);
    expect(after.workers.active).toBe(0);
  });
});
