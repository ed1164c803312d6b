// The lock that makes one process the only writer of a local ledger's state directory.
//
// Exclusion is held by the kernel, not by a file: on Linux the holder listens on an
// abstract-namespace Unix socket named after the directory's device and inode. Binding
// a name is atomic (of N processes racing, exactly one gets it) and the kernel closes
// the socket when its holder exits, however it exits: SIGKILL, OOM, or a process left a
// zombie by a parent that never reaps it (a zombie holds no descriptors). So no stale
// lock can exist, and no takeover is ever needed. (The kernel frees the socket a few
// milliseconds after its holder exits: a lock whose recorded holder is already gone or a
// zombie is waited for, up to 2 s, before the directory is called in use.) The device+inode name makes every
// spelling of the directory (symlinks, bind mounts) one lock.
//
// <dir>/ledger.lock holds "<pid> <start time>" of the holder, written after the socket is
// bound, for messages and for `tessera status` (lockHolder), which must not take the lock.
// The start time (/proc/<pid>/stat field 22) tells a live holder from an unrelated process
// that got its pid later; a zombie counts as gone.
//
// Elsewhere than Linux (no abstract sockets) the lock file is the lock: created with
// O_EXCL, taken over when its process is gone. That fallback cannot tell a reused pid.

import {
  closeSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { LedgerLockedError, LedgerWriteError } from './errors.ts';

export const LOCK_FILE = 'ledger.lock';

export interface DirLock {
  /** Gives the directory up (idempotent). */
  release(): Promise<void>;
}

/** Takes the lock of `dir`, or throws LedgerLockedError naming the live holder. */
export async function acquireDirLock(dir: string): Promise<DirLock> {
  if (process.platform !== 'linux') return acquireFileLock(dir);
  const { dev, ino } = statSync(dir);
  const name = `\0tessera-ledger-${dev}-${ino}`;
  let server: Server;
  for (let waited = 0; ; waited += HOLDER_EXIT_POLL_MS) {
    try {
      server = await listenOn(name);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      // A holder that has just died (killed with its process group, a zombie now) has
      // exited, but the kernel may take a few milliseconds more to free its socket.
      const recorded = recordedHolder(dir);
      const dying = recorded !== undefined && !isHolderAlive(recorded);
      if (!dying || waited >= HOLDER_EXIT_WAIT_MS) throw new LedgerLockedError(dir, recorded?.pid);
      await new Promise((r) => setTimeout(r, HOLDER_EXIT_POLL_MS));
    }
  }
  // Holding the lock must not keep a finished process alive.
  server.unref();
  try {
    writeHolderFile(dir);
  } catch (error) {
    await closeServer(server);
    throw error;
  }
  return new SocketLock(dir, server);
}

/** How long a lock held by a process that has exited may take to be freed by the kernel. */
const HOLDER_EXIT_WAIT_MS = 2000;
const HOLDER_EXIT_POLL_MS = 20;

function listenOn(name: string): Promise<Server> {
  const server = createServer((socket) => socket.destroy());
  return new Promise<Server>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path: name }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

class SocketLock implements DirLock {
  private released = false;
  constructor(
    private readonly dir: string,
    private readonly server: Server,
  ) {}

  async release(): Promise<void> {
    if (this.released) return;
    this.released = true;
    removeOwnHolderFile(this.dir);
    await closeServer(this.server);
  }
}

const closeServer = (server: Server): Promise<void> =>
  new Promise((resolve) => server.close(() => resolve()));

/** "<pid> <start>" of this process. */
function holderText(): string {
  return `${process.pid} ${processStartTime(process.pid) ?? '?'}\n`;
}

function writeHolderFile(dir: string): void {
  const path = join(dir, LOCK_FILE);
  const tmp = `${path}.${process.pid}.tmp`;
  try {
    writeFileSync(tmp, holderText());
    renameSync(tmp, path);
  } catch (error) {
    unlinkIfThere(tmp);
    throw new LedgerWriteError(dir, (error as NodeJS.ErrnoException).code, `writing ${LOCK_FILE}`, {
      cause: error,
    });
  }
}

function removeOwnHolderFile(dir: string): void {
  const recorded = recordedHolder(dir);
  if (recorded?.pid === process.pid) unlinkIfThere(join(dir, LOCK_FILE));
}

function unlinkIfThere(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

/** What ledger.lock records, or undefined when it is absent or unreadable. */
export function recordedHolder(dir: string): { pid: number; start?: string } | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, LOCK_FILE), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  // Older releases wrote the pid alone.
  const [pidText, start] = text.trim().split(/\s+/);
  const pid = Number(pidText);
  if (!Number.isSafeInteger(pid) || pid <= 0) return undefined;
  return start === undefined || start === '?' ? { pid } : { pid, start };
}

/**
 * Field 22 of /proc/<pid>/stat (start time in clock ticks since boot): with the pid, it
 * names one process for the life of the machine. Undefined when the process is gone, is
 * a zombie (state Z: it has exited, only its exit status is left), or /proc is absent.
 */
export function processStartTime(pid: number): string | undefined {
  const stat = procStat(pid);
  if (stat === undefined || stat.state === 'Z' || stat.state === 'X') return undefined;
  return stat.start;
}

/** State (field 3) and start time (field 22) from /proc/<pid>/stat, or undefined. */
export function procStat(pid: number): { state: string; start: string } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ESRCH') return undefined;
    throw error;
  }
  // The command name (field 2) is in parentheses and may itself hold spaces and ')'.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  const state = fields[0];
  const start = fields[19];
  return state === undefined || start === undefined ? undefined : { state, start };
}

/**
 * The pid of the live process holding `dir` (a run in progress), or undefined when none
 * does: no lock file, or one naming a process that is gone, a zombie, or another process
 * that got the same pid later. Takes nothing; for readers such as `tessera status`.
 */
export function lockHolder(dir: string): number | undefined {
  const recorded = recordedHolder(dir);
  if (recorded === undefined) return undefined;
  return isHolderAlive(recorded) ? recorded.pid : undefined;
}

function isHolderAlive(h: { pid: number; start?: string }): boolean {
  if (process.platform === 'linux' && procStat(h.pid) !== undefined) {
    const start = processStartTime(h.pid);
    if (start === undefined) return false;
    return h.start === undefined || h.start === start;
  }
  try {
    process.kill(h.pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else; only ESRCH means it is gone.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

// ---- fallback where the kernel cannot hold it (no abstract sockets) --------------------

async function acquireFileLock(dir: string): Promise<DirLock> {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      try {
        writeSync(fd, holderText());
      } finally {
        closeSync(fd);
      }
      return { release: async () => removeOwnHolderFile(dir) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const recorded = recordedHolder(dir);
    if (attempt > 0 || (recorded !== undefined && isHolderAlive(recorded)))
      throw new LedgerLockedError(dir, recorded?.pid);
    unlinkIfThere(path);
  }
}
