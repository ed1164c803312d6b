// The local ledger's lock (core/ledger/lock.ts) against the ways a pid file fails: a
// holder left a zombie by a parent that does not reap it, a lock file naming a live
// process that merely got the same pid, and many processes taking over one stale lock
// at once. Each of these blocked or split a run with the pid-file lock.

import { type ChildProcess, fork, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { LedgerLockedError, LocalLedger } from '../../core/ledger/index.ts';
import { lockHolder } from '../../core/ledger/journal-view.ts';

const CHILD = fileURLToPath(new URL('../helpers/lock-child.ts', import.meta.url));
const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-lock-'));
  dirs.push(d);
  return d;
};
const killLater: ChildProcess[] = [];
afterEach(() => {
  for (const c of killLater.splice(0)) c.kill('SIGKILL');
});
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** State and start time of a process, read here (not through the code under test). */
function procStat(pid: number): { state: string; start: string } | undefined {
  if (!existsSync(`/proc/${pid}/stat`)) return undefined;
  const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, start: fields[19]! };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(f: () => T | undefined, what: string, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe.runIf(process.platform === 'linux')('the local ledger lock', () => {
  it('is free once its holder is a zombie that nobody reaps', async () => {
    const dir = tempDir();
    const pidFile = join(dir, '..', `${dir.split('/').pop()}.pid`);
    dirs.push(pidFile);
    // sh starts the holder in the background, then becomes `sleep`, which never waits
    // for children: the holder, once it exits, stays a zombie for as long as sleep runs.
    const tsx = createRequire(import.meta.url).resolve('tsx');
    const parent = spawn(
      'sh',
      [
        '-c',
        `"${process.execPath}" --import "${tsx}" "${CHILD}" hold-and-exit "${dir}" "${pidFile}" & exec sleep 60`,
      ],
      { stdio: 'ignore' },
    );
    killLater.push(parent);
    const pid = await until(
      () => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : undefined),
      'the holder to open the ledger',
    );
    await until(
      () => (procStat(pid)?.state === 'Z' ? true : undefined),
      `process ${pid} to be a zombie`,
    );
    // The holder's lock file still names it, and kill(pid, 0) still succeeds on a zombie.
    expect(readFileSync(join(dir, 'ledger.lock'), 'utf8')).toMatch(new RegExp(`^${pid}\\b`));
    expect(() => process.kill(pid, 0)).not.toThrow();

    expect(lockHolder(dir)).toBeUndefined();
    // A multi-threaded process shows state Z as soon as its main thread has exited, and
    // the kernel closes its descriptors once the last thread has: allow those moments.
    const deadline = Date.now() + 5000;
    let ledger: LocalLedger | undefined;
    while (ledger === undefined) {
      ledger = await LocalLedger.open(dir).catch((error: unknown) => {
        if (!(error instanceof LedgerLockedError) || Date.now() > deadline) throw error;
        return sleep(50).then(() => undefined);
      });
    }
    // Still a zombie: the lock did not wait for it to be reaped.
    expect(procStat(pid)?.state).toBe('Z');
    expect(lockHolder(dir)).toBe(process.pid);
    await ledger.close();
  });

  it('ignores a lock file whose pid now belongs to another process (pid reuse)', async () => {
    const dir = tempDir();
    const other = spawn('sleep', ['60'], { stdio: 'ignore' });
    killLater.push(other);
    const pid = other.pid!;
    const start = await until(() => procStat(pid)?.start, 'sleep to start');
    // As an older release wrote it (the pid alone), naming a pid that a process unrelated
    // to Tessera has now: the directory is free.
    writeFileSync(join(dir, 'ledger.lock'), `${pid}\n`);
    const ledger = await LocalLedger.open(dir);
    await ledger.close();
    // Same pid, the start time of an earlier process that had it: status sees no holder.
    writeFileSync(join(dir, 'ledger.lock'), `${pid} ${Number(start) - 1000}\n`);
    expect(lockHolder(dir)).toBeUndefined();
    // Naming that process as it is (pid and start time): reported as held.
    writeFileSync(join(dir, 'ledger.lock'), `${pid} ${start}\n`);
    expect(lockHolder(dir)).toBe(pid);
  });

  it('refuses a second opener while the holder lives, and frees on SIGKILL', async () => {
    const dir = tempDir();
    const child = await contender();
    expect(await ask(child, { dir })).toEqual({ won: true });
    await expect(LocalLedger.open(dir)).rejects.toBeInstanceOf(LedgerLockedError);
    await expect(LocalLedger.open(dir)).rejects.toThrow(new RegExp(`process ${child.pid}\\b`));
    child.kill('SIGKILL');
    await once(child, 'exit');
    const ledger = await LocalLedger.open(dir);
    await ledger.close();
  });

  it('lets exactly one of 8 processes take over a stale lock, 30 times over', async () => {
    const children = await Promise.all(Array.from({ length: 8 }, () => contender()));
    for (let round = 0; round < 30; round++) {
      const dir = tempDir();
      // A lock left by a killed run: a pid that is not alive.
      writeFileSync(join(dir, 'ledger.lock'), '999999999\n');
      const answers = await Promise.all(children.map((c) => ask(c, { dir })));
      const winners = answers.filter((a) => 'won' in a);
      expect({ round, winners: winners.length }).toEqual({ round, winners: 1 });
      for (const a of answers) if (!('won' in a)) expect(a).toEqual({ lost: 'LedgerLockedError' });
      await Promise.all(children.map((c) => ask(c, { release: true })));
    }
    for (const c of children) c.disconnect();
  }, 120_000);
});

async function contender(): Promise<ChildProcess> {
  const child = fork(CHILD, ['contend'], { execArgv: ['--import', 'tsx'], stdio: 'ignore' });
  killLater.push(child);
  await new Promise<void>((resolve, reject) => {
    child.once('message', () => resolve());
    child.once('exit', (code) => reject(new Error(`contender exited early (${code})`)));
  });
  return child;
}

function ask(child: ChildProcess, m: object): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    child.once('message', (r: Record<string, unknown>) => resolve(r));
    child.send(m);
  });
}
