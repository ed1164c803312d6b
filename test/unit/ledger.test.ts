import { type ChildProcess, fork } from 'node:child_process';
import { EventEmitter, once } from 'node:events';
import {
  appendFileSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import {
  type ChunkRow,
  type Claim,
  IpcLedgerClient,
  type JobSpec,
  LeaseLostError,
  type Ledger,
  LedgerCorruptError,
  LedgerIpcError,
  LedgerLockedError,
  LocalLedger,
  MemoryLedger,
  serveLedger,
} from '../../core/ledger/index.ts';
import { IndexSet } from '../../core/ledger/index-set.ts';
import { JournalView } from '../../core/ledger/journal-view.ts';
import { ledgerContract } from '../contract/ledger-contract.ts';

const CHILD = fileURLToPath(new URL('../helpers/ledger-child.ts', import.meta.url));
const T0 = 1_700_000_000_000;

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-ledger-'));
  dirs.push(d);
  return d;
};
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function forkChild(args: string[]): Promise<ChildProcess> {
  const child = fork(CHILD, args, {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  return new Promise((resolve, reject) => {
    const onMessage = (m: unknown): void => {
      if (typeof m === 'object' && m !== null && 'ready' in m) {
        child.off('message', onMessage);
        resolve(child);
      }
    };
    child.on('message', onMessage);
    child.once('exit', (code, signal) =>
      reject(new Error(`ledger child exited early (${signal ?? code})`)),
    );
  });
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

const spec = (jobId: string, chunkCount: number, over: Partial<JobSpec> = {}): JobSpec => ({
  jobId,
  chunkCount,
  maxAttempts: 3,
  leaseMs: 10_000,
  createdAt: T0,
  ...over,
});

function* chunksOf(n: number): Generator<{ chunkId: string; index: number }> {
  for (let i = 0; i < n; i++) yield { chunkId: `c${i}`, index: i };
}

async function rows(ledger: Ledger, jobId: string): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const r of ledger.list(jobId)) out.push(r);
  return out;
}

const journalLines = (dir: string): string[] =>
  readFileSync(join(dir, 'ledger.jsonl'), 'utf8')
    .split('\n')
    .filter((x) => x.length > 0);

ledgerContract('MemoryLedger', async () => ({ ledger: new MemoryLedger() }));

ledgerContract('LocalLedger', async () => {
  const ledger = await LocalLedger.open(tempDir(), { onWarning: (m) => expect.fail(m) });
  return { ledger, close: () => ledger.close() };
});

// The client runs here and the LocalLedger in a forked child, so every call of the
// contract crosses a real IPC channel and errors are rebuilt from the wire.
ledgerContract('IpcLedgerClient → child serving LocalLedger', async () => {
  const child = await forkChild(['serve', tempDir()]);
  const ledger = new IpcLedgerClient(child);
  return {
    ledger,
    close: async () => {
      ledger.close();
      child.disconnect();
      await exited(child);
    },
  };
});

describe('IndexSet', () => {
  it('agrees with a sorted-array model on add/delete/next/nextWrapping', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 3000 }),
        fc.boolean(),
        fc.array(fc.tuple(fc.constantFrom('add', 'del', 'next'), fc.nat(3100)), { maxLength: 300 }),
        (n, full, ops) => {
          const set = new IndexSet(n, full);
          const model = new Set<number>(full ? Array.from({ length: n }, (_, i) => i) : []);
          for (const [op, x] of ops) {
            if (op === 'add') {
              set.add(x);
              if (x < n) model.add(x);
            } else if (op === 'del') {
              set.delete(x);
              model.delete(x);
            }
            const sorted = [...model].sort((a, b) => a - b);
            expect(set.next(x)).toBe(sorted.find((i) => i >= x) ?? -1);
            expect(set.nextWrapping(x)).toBe(sorted.find((i) => i >= x) ?? sorted[0] ?? -1);
            expect(set.size).toBe(model.size);
            expect(set.has(x)).toBe(model.has(x));
          }
          expect([...set]).toEqual([...model].sort((a, b) => a - b));
        },
      ),
    );
  });
});

describe('MemoryLedger at scale', () => {
  it('creates a 10^6-chunk job and claims from any start without scanning', async () => {
    const l = new MemoryLedger();
    const n = 1_000_000;
    await l.createJob(spec('big', n), chunksOf(n));
    const t = performance.now();
    const got: number[] = [];
    for (let k = 0; k < 2000; k++) {
      const c = await l.claim('big', `w${k}`, { startIndex: 999_000 + k, now: T0 });
      got.push(c!.index);
    }
    // 999_000..999_999, then wrapped to the start: 0..999.
    expect(got.slice(0, 3)).toEqual([999_000, 999_001, 999_002]);
    expect(got[999]).toBe(999_999);
    expect(got.slice(1000, 1003)).toEqual([0, 1, 2]);
    expect(performance.now() - t).toBeLessThan(2000);
    expect((await l.counts('big')).RUNNING).toBe(2000);
  });
});

describe('LocalLedger', () => {
  it('survives close and reopen with every row intact', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(
      spec('j', 6, { maxAttempts: 2, attributes: { model: 'm', n: 1, ok: true } }),
      chunksOf(6),
    );
    const c0 = (await a.claim('j', 'w', { now: T0 }))!;
    await a.complete(c0);
    const c1 = (await a.claim('j', 'w', { now: T0 }))!;
    await a.fail(c1, 'first');
    const c1b = (await a.claim('j', 'w', { now: T0 }))!;
    await a.fail(c1b, 'second');
    const c2 = (await a.claim('j', 'w', { now: T0 }))!;
    await a.heartbeat(c2, { now: T0 + 5 });
    const c3 = (await a.claim('j', 'v', { now: T0 }))!;
    await a.complete(c3, { skipped: true });
    const c4 = (await a.claim('j', 'v', { now: T0 }))!;
    await a.release(c4);
    const before = await rows(a, 'j');
    const counts = await a.counts('j');
    await a.close();
    await expect(a.claim('j', 'w', { now: T0 })).rejects.toThrow(/closed/);

    const b = await LocalLedger.open(dir);
    expect(await b.getJob('j')).toEqual(
      spec('j', 6, { maxAttempts: 2, attributes: { model: 'm', n: 1, ok: true } }),
    );
    expect(await rows(b, 'j')).toEqual(before);
    expect(await b.counts('j')).toEqual(counts);
    // The live lease, its token and the fencing survive too.
    await expect(b.heartbeat(c2, { now: T0 + 6 })).resolves.toMatchObject({
      leaseExpiresAt: T0 + 10_006,
    });
    await expect(b.complete(c1b)).rejects.toBeInstanceOf(LeaseLostError);
    expect((await b.claim('j', 'w', { now: T0 }))?.index).toBe(4);
    expect((await b.createJob(spec('j', 6), chunksOf(6))).created).toBe(false);
    await b.close();
  });

  it('a 10^6-chunk job costs one ids file and one journal line', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    const n = 1_000_000;
    await a.createJob(spec('big', n), chunksOf(n));
    expect(journalLines(dir)).toHaveLength(2);
    const c = await a.claim('big', 'w', { startIndex: 999_999, now: T0 });
    expect(c?.chunkId).toBe('c999999');
    await a.close();
    const b = await LocalLedger.open(dir);
    expect((await b.counts('big')).PENDING).toBe(n - 1);
    expect((await b.claim('big', 'w', { startIndex: 999_999, now: T0 }))?.chunkId).toBe('c0');
    await b.close();
  });

  it('refuses a second open of a live directory and takes over a dead one', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await expect(LocalLedger.open(dir)).rejects.toBeInstanceOf(LedgerLockedError);
    await a.close();
    writeFileSync(join(dir, 'ledger.lock'), '999999999');
    const b = await LocalLedger.open(dir);
    await b.close();
    expect(existsSync(join(dir, 'ledger.lock'))).toBe(false);
  });

  it('keeps every completion a SIGKILLed process reported', async () => {
    const dir = tempDir();
    const n = 20_000;
    const setup = await LocalLedger.open(dir);
    await setup.createJob(spec('j', n), chunksOf(n));
    await setup.close();

    const child = await forkChild(['work', dir, 'j', 'doomed']);
    const reported = new Set<string>();
    let finished = false;
    await new Promise<void>((resolve) => {
      child.on('message', (m: { done?: string; finished?: boolean }) => {
        if (m.finished) finished = true;
        if (m.done) reported.add(m.done);
        if (reported.size === 300 || finished) {
          child.kill('SIGKILL');
          resolve();
        }
      });
    });
    await exited(child);
    expect(finished).toBe(false);

    const warnings: string[] = [];
    const l = await LocalLedger.open(dir, { onWarning: (w) => warnings.push(w) });
    const done = new Set<string>();
    for await (const r of l.list('j', 'DONE')) done.add(r.chunkId);
    for (const id of reported) expect(done.has(id)).toBe(true);
    expect(done.size).toBeGreaterThanOrEqual(reported.size);
    expect(done.size).toBeLessThan(n);
    const c = await l.counts('j');
    expect(c.DONE + c.RUNNING + c.PENDING).toBe(n);
    expect(c.RUNNING).toBeLessThanOrEqual(1);
    // The coordinator knows the process is dead: its chunk is claimable right away.
    await l.abandonOwners('j', (o) => o === 'doomed');
    expect((await l.counts('j')).RUNNING).toBe(0);
    await l.close();
  });

  it('ignores a torn last line with a warning and appends cleanly after it', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 3), chunksOf(3));
    await a.complete((await a.claim('j', 'w', { now: T0 }))!);
    const before = await rows(a, 'j');
    await a.close();
    appendFileSync(join(dir, 'ledger.jsonl'), '{"t":"row","j":"j","i":1,"s":"RUN');

    const warnings: string[] = [];
    const b = await LocalLedger.open(dir, { onWarning: (w) => warnings.push(w) });
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/torn last line 5/);
    expect(await rows(b, 'j')).toEqual(before);
    await b.complete((await b.claim('j', 'w', { now: T0 }))!);
    const after = await rows(b, 'j');
    await b.close();

    const c = await LocalLedger.open(dir, { onWarning: (w) => expect.fail(w) });
    expect(await rows(c, 'j')).toEqual(after);
    expect(after.map((r) => r.status)).toEqual(['DONE', 'DONE', 'PENDING']);
    await c.close();
  });

  it('accepts a whole last line that lost only its newline', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 2), chunksOf(2));
    await a.close();
    appendFileSync(
      join(dir, 'ledger.jsonl'),
      '{"t":"row","j":"j","i":1,"s":"DONE","o":"w","a":1,"k":1,"u":5}',
    );
    const b = await LocalLedger.open(dir, { onWarning: (w) => expect.fail(w) });
    await b.complete((await b.claim('j', 'v', { now: T0 }))!);
    await b.close();
    const c = await LocalLedger.open(dir);
    expect((await rows(c, 'j')).map((r) => [r.status, r.owner])).toEqual([
      ['DONE', 'v'],
      ['DONE', 'w'],
    ]);
    await c.close();
  });

  it('stops on a damaged line that is not the last', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 2), chunksOf(2));
    await a.close();
    appendFileSync(
      join(dir, 'ledger.jsonl'),
      'garbage\n{"t":"row","j":"j","i":0,"s":"DONE","a":1,"k":1,"u":5}\n',
    );
    const err = await LocalLedger.open(dir).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LedgerCorruptError);
    expect((err as LedgerCorruptError).line).toBe(3);
    // The failed open released its lock.
    expect(existsSync(join(dir, 'ledger.lock'))).toBe(false);
  });

  it('keeps output claims across reopen and compaction, and a JournalView reads them', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.claimOutput('/out/a.zarr', 'job-1');
    await a.claimOutput('/out/b.zarr', 'job-1');
    await a.claimOutput('/out/b.zarr', 'job-2', { replacing: 'job-1' });
    await a.createJob(spec('job-1', 2), chunksOf(2));
    // Superseded row lines, so that opening with compactMinLines: 1 compacts.
    for (let i = 0; i < 10; i++) await a.release((await a.claim('job-1', 'w', { now: T0 }))!);
    await a.close();
    expect(journalLines(dir).filter((x) => x.includes('"t":"out"'))).toHaveLength(3);
    const view = await JournalView.read(dir);
    expect(view.jobIds()).toEqual(['job-1']);
    for (const compactMinLines of [100_000, 1]) {
      const b = await LocalLedger.open(dir, { compactMinLines });
      await b.claimOutput('/out/a.zarr', 'job-1');
      await expect(b.claimOutput('/out/a.zarr', 'job-2')).rejects.toMatchObject({
        name: 'OutputClaimedError',
        holder: 'job-1',
      });
      await expect(b.claimOutput('/out/b.zarr', 'job-1')).rejects.toMatchObject({
        holder: 'job-2',
      });
      await b.close();
    }
    // Compacted: one line per claim, the superseded one gone.
    expect(journalLines(dir).filter((x) => x.includes('"t":"out"'))).toHaveLength(2);
  });

  it('compacts a mostly-superseded journal on open without changing state', async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 5, { leaseMs: 1000 }), chunksOf(5));
    await a.createJob(spec('k', 2), chunksOf(2));
    let c = (await a.claim('j', 'w', { now: T0 }))!;
    for (let t = 1; t <= 200; t++) c = await a.heartbeat(c, { now: T0 + t });
    await a.complete((await a.claim('j', 'w', { now: T0 }))!);
    await a.fail((await a.claim('k', 'w', { now: T0 }))!, 'x');
    const before = { j: await rows(a, 'j'), k: await rows(a, 'k') };
    await a.close();
    expect(journalLines(dir).length).toBeGreaterThan(200);

    // Under the threshold: left alone.
    await (await LocalLedger.open(dir, { compactMinLines: 10_000 })).close();
    expect(journalLines(dir).length).toBeGreaterThan(200);

    const b = await LocalLedger.open(dir, { compactMinLines: 10 });
    // header + 2 job lines + 3 touched rows
    expect(journalLines(dir)).toHaveLength(6);
    expect(existsSync(join(dir, 'ledger.jsonl.tmp'))).toBe(false);
    expect({ j: await rows(b, 'j'), k: await rows(b, 'k') }).toEqual(before);
    await b.heartbeat(c, { now: T0 + 500 });
    await b.close();
    const d = await LocalLedger.open(dir, { compactMinLines: 10 });
    expect((await rows(d, 'j'))[0]).toMatchObject({ leaseExpiresAt: T0 + 1500, token: 1 });
    await d.close();
  });

  it("abandonOwners frees dead owners' chunks now, keeping attempts, and is journaled", async () => {
    const dir = tempDir();
    const a = await LocalLedger.open(dir);
    await a.createJob(spec('j', 4, { maxAttempts: 2, leaseMs: 60_000 }), chunksOf(4));
    const d0 = (await a.claim('j', 'dead-1', { now: T0 }))!;
    const live = (await a.claim('j', 'alive', { now: T0 }))!;
    // chunk 2 is on its last attempt when its owner dies.
    const first = (await a.claim('j', 'dead-2', { now: T0 }))!;
    await a.fail(first, 'oom');
    const d2 = (await a.claim('j', 'dead-2', { startIndex: 2, now: T0 }))!;
    expect([d0.index, live.index, d2.index, d2.attempt]).toEqual([0, 1, 2, 2]);

    expect(await a.abandonOwners('j', (o) => o.startsWith('dead-'))).toEqual({
      released: 1,
      failed: 1,
    });
    await a.close();
    const b = await LocalLedger.open(dir);
    const [r0, r1, r2] = await rows(b, 'j');
    expect(r0).toMatchObject({ status: 'PENDING', attempts: 1, token: 1 });
    expect(r0?.lastError).toMatch(/abandoned/);
    expect(r1).toMatchObject({ status: 'RUNNING', owner: 'alive' });
    expect(r2).toMatchObject({ status: 'FAILED', attempts: 2 });
    // Claimable at once, long before the 60 s lease would have run out.
    expect(await b.claim('j', 'new', { startIndex: 0, now: T0 + 1 })).toMatchObject({
      index: 0,
      token: 2,
      attempt: 2,
    });
    await expect(b.heartbeat(d0, { now: T0 + 1 })).rejects.toBeInstanceOf(LeaseLostError);
    await expect(b.heartbeat(live, { now: T0 + 1 })).resolves.toBeDefined();
    await b.close();
  });
});

describe('serveLedger dispatch', () => {
  /** An in-process channel end: what the server sends lands in `replies`. */
  function endpoint() {
    const emitter = new EventEmitter();
    const replies: unknown[] = [];
    const end = Object.assign(emitter, {
      connected: true,
      send(m: unknown, cb?: (e: Error | null) => void) {
        replies.push(m);
        cb?.(null);
        return true;
      },
    });
    return { end, replies };
  }

  it("serves the port's methods and nothing else the ledger object has", async () => {
    const dir = tempDir();
    const ledger = await LocalLedger.open(dir);
    await ledger.createJob(spec('j', 2), chunksOf(2));
    const { end, replies } = endpoint();
    const stop = serveLedger(ledger, end);
    // Methods of the LocalLedger object, or of every object, that are not the port's.
    const refused = [
      'close',
      'abandonOwners',
      'toString',
      'constructor',
      '__proto__',
      'hasOwnProperty',
    ];
    refused.forEach((method, i) => {
      end.emit('message', { tessera: 'ledger', id: i + 1, method, args: [] });
    });
    end.emit('message', { tessera: 'ledger', id: 99, method: 'counts', args: ['j'] });
    await new Promise((r) => setTimeout(r, 20));
    stop();
    expect(replies).toHaveLength(refused.length + 1);
    for (const [i, method] of refused.entries()) {
      expect(replies[i], method).toMatchObject({
        tessera: 'ledger-reply',
        id: i + 1,
        ok: false,
        error: { name: 'LedgerIpcError' },
      });
    }
    expect(replies.at(-1)).toMatchObject({ id: 99, ok: true, value: { PENDING: 2 } });
    // Still open: `close` was not called through the channel.
    await expect(ledger.claim('j', 'w', { now: T0 })).resolves.toMatchObject({ index: 0 });
    await ledger.close();
  });
});

describe("IPC in the pipeline's direction (parent serves, child is the client)", () => {
  it("answers a forked child's claim and drops the channel cleanly", async () => {
    const ledger = new MemoryLedger();
    await ledger.createJob(spec('j', 3), chunksOf(3));
    const child = fork(CHILD, ['client', '-', 'j', 'kid'], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const stop = serveLedger(ledger, child);
    const claimed = await new Promise<Claim | null>((resolve) => {
      child.on('message', (m: { claimed?: Claim | null }) => {
        if (m.claimed !== undefined) resolve(m.claimed);
      });
    });
    expect(claimed).toMatchObject({ jobId: 'j', index: 0, owner: 'kid', token: 1 });
    await exited(child);
    stop();
    expect((await ledger.counts('j')).RUNNING).toBe(1);
  });

  it('fails waiting and later calls with LedgerIpcError once the server is gone', async () => {
    const child = await forkChild(['serve', tempDir()]);
    const client = new IpcLedgerClient(child);
    await client.createJob(spec('j', 1), chunksOf(1));
    child.kill('SIGKILL');
    await exited(child);
    await expect(client.claim('j', 'w')).rejects.toBeInstanceOf(LedgerIpcError);
    client.close();
  });
});
