// The local journal under write failures: a full disk (a real tmpfs of 2 MiB filled up,
// where this process may mount one), short writes and I/O errors (injected through the
// writer's write hook), journals torn in the middle by older releases, and journals
// written by the previous writer (an upgrade mid-job).

import { execFileSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type Claim,
  type JobSpec,
  LedgerCorruptError,
  LedgerWriteError,
  LocalLedger,
  type LocalLedgerOptions,
} from '../../core/ledger/index.ts';
import { JournalView } from '../../core/ledger/journal-view.ts';
import { PausingLedger } from '../../core/ledger/pausing.ts';

const FIXTURE = new URL('../fixtures/ledger-v1/', import.meta.url).pathname;
const T0 = 1_700_000_000_000;
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-journal-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const spec = (jobId: string, chunkCount: number): JobSpec => ({
  jobId,
  chunkCount,
  maxAttempts: 3,
  leaseMs: 600_000,
  createdAt: T0,
});
const chunks = (n: number) => Array.from({ length: n }, (_, i) => ({ chunkId: `c${i}`, index: i }));

/** Every line of the journal parses: no torn line anywhere, the last one included. */
function expectWholeLines(dir: string): void {
  const text = readFileSync(join(dir, 'ledger.jsonl'), 'utf8');
  expect(text.endsWith('\n')).toBe(true);
  for (const [i, line] of text.slice(0, -1).split('\n').entries())
    expect(() => JSON.parse(line), `line ${i + 1}: ${line.slice(0, 80)}`).not.toThrow();
}

/** Mounts a tmpfs of `size` at a new directory; undefined (and why) where that is refused. */
function mountTmpfs(size: string): { dir: string; unmount: () => void } | { why: string } {
  const dir = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    return { why: String((error as { stderr?: Buffer }).stderr ?? error).trim() };
  }
  return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
}

describe('a full disk under the journal', () => {
  it('fails the appends it cannot make, whole, and keeps every record written before and after', async () => {
    const fs = mountTmpfs('2m');
    let root: string;
    let fill: (on: boolean) => void;
    let writeHook: LocalLedgerOptions;
    if ('why' in fs) {
      // Not silently skipped: the same fault, injected where it comes from.
      console.warn(
        `tmpfs could not be mounted (${fs.why}); injecting ENOSPC into the journal's writes instead`,
      );
      root = tempDir();
      let full = false;
      fill = (on) => {
        full = on;
      };
      writeHook = {
        writeSync: (fd, buf, off, len) => {
          if (!full) return writeSync(fd, buf, off, len);
          // A full disk takes what fits in the last page, then refuses.
          writeSync(fd, buf, off, Math.min(len, 7));
          throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
            code: 'ENOSPC',
          });
        },
      };
    } else {
      root = fs.dir;
      const filler = join(root, 'filler');
      fill = (on) => {
        if (!on) return unlinkSync(filler);
        // Fill the filesystem to its last byte: the journal's last page keeps its slack,
        // so the next appends fit there until one of them is cut short.
        const block = Buffer.alloc(64 * 1024, 1);
        const fd = openSync(filler, 'w');
        try {
          for (;;) writeSync(fd, block);
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
          for (let b = block.subarray(0, 1); ; ) {
            try {
              writeSync(fd, b);
            } catch (e) {
              if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
              break;
            }
          }
        } finally {
          closeSync(fd);
        }
      };
      writeHook = {};
    }
    try {
      const dir = join(root, 'ledger');
      mkdirSync(dir);
      const a = await LocalLedger.open(dir, writeHook);
      const n = 400;
      await a.createJob(spec('j', n), chunks(n));
      const done: number[] = [];
      const claimAndComplete = async (): Promise<void> => {
        const c = (await a.claim('j', 'w'))!;
        await a.complete(c);
        done.push(c.index);
      };
      for (let i = 0; i < 5; i++) await claimAndComplete();
      fill(true);
      // Appends go on until the disk refuses one; every refusal is a LedgerWriteError
      // naming the directory and ENOSPC, and leaves the chunk as it was.
      const failures: LedgerWriteError[] = [];
      for (let i = 0; i < 300 && failures.length < 5; i++) {
        const held: Claim | undefined = await a.claim('j', 'w').catch((e: unknown) => {
          if (!(e instanceof LedgerWriteError)) throw e;
          failures.push(e);
          return undefined;
        });
        if (!held) continue;
        await a.complete(held).then(
          () => done.push(held.index),
          (e: unknown) => {
            if (!(e instanceof LedgerWriteError)) throw e;
            failures.push(e);
          },
        );
      }
      expect(failures.length).toBeGreaterThan(0);
      expect(failures[0]!.code).toBe('ENOSPC');
      expect(failures[0]!.message).toContain(dir);
      expect(failures[0]!.message).toMatch(/is full: free space there/);
      expectWholeLines(dir);
      // The disk has room again: the same ledger goes on.
      fill(false);
      for (let i = 0; i < 5; i++) await claimAndComplete();
      const counts = await a.counts('j');
      expect(counts.DONE).toBe(done.length);
      await a.close();
      expectWholeLines(dir);

      const b = await LocalLedger.open(dir, { onWarning: (w) => expect.fail(w) });
      const doneAfter: number[] = [];
      for await (const row of b.list('j', 'DONE')) doneAfter.push(row.index);
      expect(doneAfter).toEqual([...done].sort((x, y) => x - y));
      // No chunk was failed for it: only this run's DONE and RUNNING (refused completes).
      expect((await b.counts('j')).FAILED).toBe(0);
      for await (const row of b.list('j')) expect(row.lastError).toBeUndefined();
      await b.close();
      const view = await JournalView.read(dir);
      expect((await view.counts('j')).DONE).toBe(done.length);
    } finally {
      if (!('why' in fs)) fs.unmount();
    }
  });
});

describe('injected write faults', () => {
  it('cuts a short write followed by EIO back, and refuses appends until the cut is made', async () => {
    const dir = tempDir();
    let fault: 'none' | 'short-then-eio' = 'none';
    const a = await LocalLedger.open(dir, {
      writeSync: (fd, buf, off, len) => {
        if (fault === 'none') return writeSync(fd, buf, off, len);
        if (len > 3) return writeSync(fd, buf, off, 3);
        throw Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' });
      },
    });
    await a.createJob(spec('j', 3), chunks(3));
    const c0 = (await a.claim('j', 'w'))!;
    fault = 'short-then-eio';
    const err = await a.complete(c0).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LedgerWriteError);
    expect((err as LedgerWriteError).code).toBe('EIO');
    expect((err as Error).message).toMatch(/I\/O error: check the device/);
    expectWholeLines(dir);
    // Not applied: the chunk is still this worker's.
    expect((await a.counts('j')).RUNNING).toBe(1);
    fault = 'none';
    await a.complete(c0);
    await a.close();
    const b = await LocalLedger.open(dir, { onWarning: (w) => expect.fail(w) });
    expect((await b.counts('j')).DONE).toBe(1);
    await b.close();
  });
});

describe('journals of older releases', () => {
  it('opens the journal the previous writer left, with every row as it was', async () => {
    const dir = tempDir();
    cpSync(FIXTURE, dir, { recursive: true });
    rmSync(join(dir, 'README.md'));
    const job = 'fixture-0a1b2c3d';
    for (const ledger of [await LocalLedger.open(dir), await JournalView.read(dir)]) {
      const rows = new Map<number, { status: string; attempts: number; owner?: string }>();
      for await (const r of ledger.list(job)) rows.set(r.index, r);
      expect(rows.get(0)).toMatchObject({ status: 'DONE', attempts: 1 });
      expect(rows.get(1)).toMatchObject({
        status: 'SKIPPED',
        attempts: 2,
        lastError: 'chunk 0_0_1: the model returned NaN',
      });
      expect(rows.get(2)).toMatchObject({
        status: 'RUNNING',
        owner: 'w2',
        leaseExpiresAt: T0 + 5 + 60_000,
      });
      expect(await ledger.counts(job)).toMatchObject({
        PENDING: 2,
        DONE: 1,
        SKIPPED: 1,
        RUNNING: 1,
      });
      if (ledger instanceof LocalLedger) {
        await expect(ledger.claimOutput('/data/out.zarr', 'another-job')).rejects.toThrow(
          /belongs to job "fixture-0a1b2c3d"/,
        );
        await ledger.close();
      } else expect(ledger.outputHolder('/data/out.zarr')).toBe('fixture-0a1b2c3d');
    }
  });

  it('keeps the records glued to a torn write by the old writer, and cleans the journal', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 4), chunks(4));
    for (let i = 0; i < 3; i++) await a.complete((await a.claim('j', 'w', { now: T0 }))!);
    await a.close();
    // What the old writer left after ENOSPC: a line begun, cut, and the next appended after it.
    const lines = readFileSync(join(dir, 'ledger.jsonl'), 'utf8').split('\n');
    const torn = lines.map((l, i) => (i === 4 ? `{"t":"r${l}` : l)).join('\n');
    writeFileSync(join(dir, 'ledger.jsonl'), torn);
    expect(torn).toMatch(/\{"t":"r\{"t":"row"/);

    const warnings: string[] = [];
    const view = await JournalView.read(dir);
    expect((await view.counts('j')).DONE).toBe(3);
    const b = await LocalLedger.open(dir, { onWarning: (w) => warnings.push(w) });
    expect(warnings).toEqual([
      expect.stringMatching(/line 5 began with 7 bytes of a write that failed/),
    ]);
    expect((await b.counts('j')).DONE).toBe(3);
    await b.close();
    expectWholeLines(dir);
    const c = await LocalLedger.open(dir, { onWarning: (w) => expect.fail(w) });
    expect((await c.counts('j')).DONE).toBe(3);
    await c.close();
  });

  it('still refuses a line damaged in the middle that holds no whole record', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 2), chunks(2));
    await a.complete((await a.claim('j', 'w', { now: T0 }))!);
    await a.close();
    const lines = readFileSync(join(dir, 'ledger.jsonl'), 'utf8').split('\n');
    lines[2] = lines[2]!.slice(0, 20);
    writeFileSync(join(dir, 'ledger.jsonl'), lines.join('\n'));
    await expect(LocalLedger.open(dir)).rejects.toBeInstanceOf(LedgerCorruptError);
  });
});

describe('PausingLedger over a failing journal', () => {
  it('waits out a fault that clears, then gives up and stops every write but release', async () => {
    const dir = tempDir();
    let failing = false;
    const local = await LocalLedger.open(dir, {
      writeSync: (fd, buf, off, len) => {
        if (failing)
          throw Object.assign(new Error('ENOSPC: no space left on device'), { code: 'ENOSPC' });
        return writeSync(fd, buf, off, len);
      },
    });
    const events: string[] = [];
    const ledger = new PausingLedger(local, {
      pauseMs: 400,
      firstWaitMs: 20,
      onPause: (e) => events.push(`pause ${e.code}`),
      onResume: () => events.push('resume'),
    });
    await ledger.createJob(spec('j', 3), chunks(3));
    const c0 = (await ledger.claim('j', 'w'))!;
    failing = true;
    setTimeout(() => {
      failing = false;
    }, 100);
    await ledger.complete(c0);
    expect(events).toEqual(['pause ENOSPC', 'resume']);
    const c1 = (await ledger.claim('j', 'w'))!;
    failing = true;
    const t0 = Date.now();
    await expect(ledger.complete(c1)).rejects.toBeInstanceOf(LedgerWriteError);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(390);
    expect(ledger.failure?.code).toBe('ENOSPC');
    // Given up: a chunk's failure report is refused at once, so it cannot spend an attempt.
    await expect(ledger.fail(c1, 'disk full')).rejects.toBeInstanceOf(LedgerWriteError);
    // A release is still tried (it hands the chunk back unspent).
    failing = false;
    await ledger.release(c1);
    expect(await ledger.counts('j')).toMatchObject({ DONE: 1, PENDING: 2 });
    for await (const r of ledger.list('j')) expect(r.attempts).toBeLessThanOrEqual(1);
    await local.close();
  });
});
