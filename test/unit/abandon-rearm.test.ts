// Whose fault a death is, and the way back after a fix, on the local ledger (the one a
// `tessera run` keeps): abandonOwners with and without spending the chunks' attempts,
// and rearm's journal (one write for the lot; a v1 journal of an older release still
// opens and can be re-armed). The protocol of rearm itself is the contract suite's.

import { cpSync, mkdtempSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ChunkRow,
  type JobSpec,
  LedgerWriteError,
  LocalLedger,
} from '../../core/ledger/index.ts';
import { JournalView } from '../../core/ledger/journal-view.ts';

const FIXTURE = new URL('../fixtures/ledger-v1/', import.meta.url).pathname;
const FIXTURE_JOB = 'fixture-0a1b2c3d';
const T0 = 1_700_000_000_000;
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-abandon-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const spec = (chunkCount: number, maxAttempts: number): JobSpec => ({
  jobId: 'j',
  chunkCount,
  maxAttempts,
  leaseMs: 600_000,
  createdAt: T0,
});
const chunks = (n: number) => Array.from({ length: n }, (_, i) => ({ chunkId: `c${i}`, index: i }));

async function rows(l: { list(j: string): AsyncIterable<ChunkRow> }, jobId = 'j') {
  const out: ChunkRow[] = [];
  for await (const r of l.list(jobId)) out.push(r);
  return out;
}

const journalLines = (dir: string): string[] =>
  readFileSync(join(dir, 'ledger.jsonl'), 'utf8').split('\n').slice(0, -1);

describe('abandonOwners: a run stopped as a whole spends no attempt', () => {
  it('spend:false hands chunks back as a release does, even at maxAttempts; journaled', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec(3, 1), chunks(3));
    const c0 = (await a.claim('j', 'run1-w0', { startIndex: 0, now: T0 }))!;
    const c1 = (await a.claim('j', 'run1-w1', { startIndex: 1, now: T0 }))!;
    const live = (await a.claim('j', 'other', { startIndex: 2, now: T0 }))!;
    expect([c0.attempt, c1.attempt]).toEqual([1, 1]);

    expect(
      await a.abandonOwners('j', (o) => o.startsWith('run1-'), { spend: false, now: T0 + 5 }),
    ).toEqual({ released: 2, failed: 0 });
    await a.close();

    const b = await LocalLedger.open(dir);
    const [r0, r1, r2] = await rows(b);
    // maxAttempts is 1 and each was on its first attempt: spending it would make them FAILED.
    for (const [r, token] of [
      [r0, c0.token],
      [r1, c1.token],
    ] as const) {
      expect(r).toMatchObject({ status: 'PENDING', attempts: 0, token, updatedAt: T0 + 5 });
      expect(r?.owner).toBeUndefined();
      expect(r?.leaseExpiresAt).toBeUndefined();
      expect(r?.lastError).toMatch(
        /handed back unspent: the run it belonged to was stopped as a whole/,
      );
    }
    expect(r2).toMatchObject({ status: 'RUNNING', owner: 'other', token: live.token });
    // Claimable at once, as a first attempt again.
    expect(await b.claim('j', 'run2-w0', { startIndex: 0, now: T0 + 6 })).toMatchObject({
      index: 0,
      attempt: 1,
      token: 2,
    });
    await b.close();
  });

  it('three whole-run kills in a row leave a chunk with maxAttempts 2 claimable at its first attempt', async () => {
    const dir = tempDir();
    for (let run = 0; run < 4; run++) {
      const l = await LocalLedger.open(dir);
      if (run === 0) await l.createJob(spec(1, 2), chunks(1));
      // What `tessera run` does first: the previous run is gone as a whole.
      await l.abandonOwners('j', () => true, { spend: false, now: T0 + run });
      const c = await l.claim('j', `run${run}`, { now: T0 + run });
      expect(c, `run ${run}`).toMatchObject({ index: 0, attempt: 1, token: run + 1 });
      if (run === 3) await l.complete(c!);
      // Runs 0..2 are "killed": closed without releasing, their claim still RUNNING.
      await l.close();
    }
    const view = await JournalView.read(dir);
    expect(await rows(view)).toMatchObject([{ status: 'DONE', attempts: 1, token: 4 }]);
  });

  it('spend:true (a worker that died alone) keeps the attempt and makes a chunk at maxAttempts FAILED', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec(2, 2), chunks(2));
    const first = (await a.claim('j', 'w', { startIndex: 0, now: T0 }))!;
    await a.abandonOwners('j', (o) => o === 'w', { spend: true, now: T0 + 1 });
    // Default: spend, as before this option existed.
    const second = (await a.claim('j', 'w2', { startIndex: 0, now: T0 + 2 }))!;
    const other = (await a.claim('j', 'w2', { startIndex: 1, now: T0 + 2 }))!;
    expect([first.index, second.index, second.attempt, other.index]).toEqual([0, 0, 2, 1]);
    expect(await a.abandonOwners('j', (o) => o === 'w2', { now: T0 + 3 })).toEqual({
      released: 1,
      failed: 1,
    });
    await a.close();
    const b = await LocalLedger.open(dir);
    const [r0, r1] = await rows(b);
    expect(r0).toMatchObject({ status: 'FAILED', attempts: 2, owner: 'w2' });
    expect(r1).toMatchObject({ status: 'PENDING', attempts: 1 });
    expect(r1?.lastError).toMatch(/abandoned: its process is gone/);
    await b.close();
  });
});

describe('rearm on the local journal', () => {
  it('a v1 journal of an older release opens, re-arms its final rows in one write, and reopens the same', async () => {
    const dir = tempDir();
    cpSync(FIXTURE, dir, { recursive: true });
    rmSync(join(dir, 'README.md'));
    const linesBefore = journalLines(dir).length;
    const a = await LocalLedger.open(dir);
    const before = await rows(a, FIXTURE_JOB);
    expect(before.map((r) => r.status)).toEqual([
      'DONE',
      'SKIPPED',
      'RUNNING',
      'PENDING',
      'PENDING',
    ]);
    // 0_0_2 is RUNNING (left alone), 0_0_3 PENDING (nothing to do).
    expect(await a.rearm(FIXTURE_JOB, { chunkIds: ['0_0_0', '0_0_1', '0_0_2', '0_0_3'] })).toEqual({
      rearmed: 2,
    });
    await a.close();
    const added = journalLines(dir).slice(linesBefore);
    // Plain row lines, the format every release reads: no new record type.
    expect(
      added.map((l) => JSON.parse(l) as { t: string; i: number; s: string; a: number }),
    ).toMatchObject([
      { t: 'row', i: 0, s: 'PENDING', a: 0, k: 1 },
      { t: 'row', i: 1, s: 'PENDING', a: 0, k: 2 },
    ]);
    for (const reader of [await LocalLedger.open(dir), await JournalView.read(dir)]) {
      const after = await rows(reader, FIXTURE_JOB);
      expect(after.map((r) => [r.status, r.attempts, r.token])).toEqual([
        ['PENDING', 0, 1],
        ['PENDING', 0, 2],
        ['RUNNING', 1, 1],
        ['PENDING', 0, 0],
        ['PENDING', 0, 0],
      ]);
      expect(after[1]?.lastError).toBe(
        're-armed from SKIPPED after 2 attempt(s); its last error then: chunk 0_0_1: the model returned NaN',
      );
      expect(await reader.counts(FIXTURE_JOB)).toMatchObject({ PENDING: 4, RUNNING: 1 });
      if (reader instanceof LocalLedger) await reader.close();
    }
  });

  it('a re-arm the journal cannot take (disk full mid-write) moves no row, in memory or on disk', async () => {
    const dir = tempDir();
    let full = false;
    const a = await LocalLedger.open(dir, {
      // A short write, then ENOSPC: what a filesystem filling up mid-append gives.
      writeSync: (fd, buf, off, len) => {
        if (!full) return writeSync(fd, buf, off, len);
        if (len > 40) return writeSync(fd, buf, off, 40);
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
          code: 'ENOSPC',
        });
      },
    });
    await a.createJob(spec(4, 1), chunks(4));
    for (let i = 0; i < 4; i++) {
      const c = (await a.claim('j', 'w', { startIndex: i, now: T0 }))!;
      if (i < 2) await a.fail(c, 'NaN');
      else await a.complete(c);
    }
    const before = await rows(a);
    full = true;
    const err = await a.rearm('j', { chunkIds: ['c0', 'c1', 'c2', 'c3'] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LedgerWriteError);
    expect((err as LedgerWriteError).code).toBe('ENOSPC');
    expect(await rows(a)).toEqual(before);
    expect(await a.counts('j')).toMatchObject({ FAILED: 2, DONE: 2 });
    full = false;
    // The same call, once there is room: it lands whole.
    expect(await a.rearm('j', { status: 'FAILED' })).toEqual({ rearmed: 2 });
    await a.close();
    const b = await LocalLedger.open(dir);
    expect((await rows(b)).map((r) => r.status)).toEqual(['PENDING', 'PENDING', 'DONE', 'DONE']);
    await b.close();
  });
});
