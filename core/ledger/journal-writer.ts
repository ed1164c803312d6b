// The writer of a local ledger's journal: the engine's Persistence in a LocalLedger.
// The directory's layout and the reasons for it are in local.ts; the line format in
// journal-codec.ts; reading it back in journal-replay.ts.
//
// It knows the offset where the journal's last whole line ends. An append that fails
// (disk full, quota, I/O error), even after writing part of its bytes, is cut back to that
// offset before the error is thrown, and nothing is appended until that cut has
// succeeded: a torn line is never followed by another. The failed call throws
// LedgerWriteError, the engine does not apply its transition, and the same call may be
// made again.

import { createHash } from 'node:crypto';
import {
  closeSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  openSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import type { Persistence } from './engine.ts';
import { LedgerClosedError, LedgerError, LedgerWriteError } from './errors.ts';
import { headerLine, JOURNAL_FILE, jobLine, outputLine, rowLine } from './journal-codec.ts';
import type { ReplayEnd } from './journal-replay.ts';
import type { LedgerState, OutputClaimChange, RowChange } from './ledger-state.ts';
import type { JobSpec } from './port.ts';

export interface JournalWriterOptions {
  /** fsync after every transition: survives power loss, costs a disk flush per call. */
  fsync?: boolean;
  /**
   * Compact on open once the journal has at least this many lines (default 100 000) and
   * more than twice the lines a compacted journal would have: below that, replay is cheap.
   */
  compactMinLines?: number;
  /**
   * Test hook: the write primitive appends go through (default fs.writeSync), so a test
   * can inject the faults a real filesystem gives (short writes, EIO) where it cannot
   * mount one that does.
   */
  writeSync?: (fd: number, buffer: Buffer, offset: number, length: number) => number;
}

export const idsFileFor = (jobId: string): string =>
  `chunks/${createHash('sha256').update(jobId).digest('hex').slice(0, 32)}.ids`;

type Write = NonNullable<JournalWriterOptions['writeSync']>;
const plainWrite: Write = (fd, buffer, offset, length) => writeSync(fd, buffer, offset, length);

function writeAll(fd: number, buf: Buffer, write: Write = plainWrite): void {
  for (let off = 0; off < buf.length; ) off += write(fd, buf, off, buf.length - off);
}

const writeText = (fd: number, text: string): void => writeAll(fd, Buffer.from(text, 'utf8'));

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Writes a file whole or not at all: temp file, fsync, rename, fsync of the directory. */
function writeAtomic(dir: string, rel: string, write: (fd: number) => void): void {
  const path = join(dir, rel);
  const tmp = `${path}.tmp`;
  try {
    const fd = openSync(tmp, 'w');
    try {
      write(fd);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (error) {
    // A half-written temp file would only take space from a filesystem that may be full.
    rmSync(tmp, { force: true });
    throw error;
  }
  fsyncDir(join(path, '..'));
}

const errnoOf = (error: unknown): string | undefined => {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
};

/** An fs failure as LedgerWriteError; anything else (a bug) passes through unchanged. */
export function asWriteError(dir: string, op: string, error: unknown): unknown {
  if (error instanceof LedgerError || errnoOf(error) === undefined) return error;
  return new LedgerWriteError(dir, errnoOf(error), op, { cause: error });
}

export class JournalWriter implements Persistence {
  private fd: number | undefined;
  private readonly journalPath: string;
  /** Where the journal's last whole line ends: appends start here, failures cut back here. */
  private goodEnd = 0;
  /** A failed append could not be cut back yet: nothing may be appended until it is. */
  private tornTail: unknown;

  constructor(
    readonly dir: string,
    private readonly options: JournalWriterOptions,
  ) {
    this.journalPath = join(dir, JOURNAL_FILE);
  }

  /**
   * Makes the replayed journal appendable: compacts it when due (or when records had to
   * be salvaged, so the next reader needs no salvage), else cuts a torn tail away or
   * writes the header of a new journal; then opens it for appending.
   */
  start(replayed: ReplayEnd, state: LedgerState, warn: (message: string) => void): void {
    // A compaction that died before its rename: the journal beside it is still whole.
    rmSync(`${this.journalPath}.tmp`, { force: true });
    let { needsNewline } = replayed;
    const { lines, goodEnd } = replayed;
    const minLines = this.options.compactMinLines ?? 100_000;
    if (replayed.salvaged > 0 || (lines >= minLines && lines > 2 * compactedLines(state))) {
      try {
        this.compact(state);
        needsNewline = false;
      } catch (error) {
        // The journal is still whole beside the failed temp file: open it as it is.
        warn(
          `ledger journal ${this.journalPath}: compaction skipped: ${String(asWriteError(this.dir, 'compacting', error))}`,
        );
        this.truncateTo(goodEnd);
      }
    } else if (lines === 0) {
      try {
        writeAtomic(this.dir, JOURNAL_FILE, (fd) => writeText(fd, headerLine()));
      } catch (error) {
        throw asWriteError(this.dir, `creating ${JOURNAL_FILE}`, error);
      }
    } else this.truncateTo(goodEnd);
    try {
      this.fd = openSync(this.journalPath, 'a');
      this.goodEnd = fstatSync(this.fd).size;
    } catch (error) {
      throw asWriteError(this.dir, `opening ${JOURNAL_FILE} for appending`, error);
    }
    // A whole last record that lacks only its newline.
    if (needsNewline) this.append('\n', undefined);
  }

  /** Stops recording; later writes throw LedgerClosedError. Returns whether it was open. */
  close(): boolean {
    if (this.fd === undefined) return false;
    closeSync(this.fd);
    this.fd = undefined;
    return true;
  }

  job(job: JobSpec, ids: readonly string[]): void {
    this.journalFd(job.jobId);
    const rel = idsFileFor(job.jobId);
    try {
      writeAtomic(this.dir, rel, (out) => {
        // In slices: one string of 10^6 ids is fine, of 10^7 it nears V8's string limit.
        for (let i = 0; i < ids.length; i += 65536) {
          writeText(out, `${ids.slice(i, i + 65536).join('\n')}\n`);
        }
      });
    } catch (error) {
      throw asWriteError(this.dir, `writing the chunk id file ${rel}`, error);
    }
    this.append(jobLine(job, rel), job.jobId);
  }

  rows(changes: readonly RowChange[]): void {
    // One write for the lot: abandonOwners' rows land together or not at all.
    this.append(changes.map(rowLine).join(''), changes[0]?.jobId);
  }

  output(change: OutputClaimChange): void {
    this.append(outputLine(change.url, change.jobId), change.jobId);
  }

  private journalFd(jobId: string | undefined): number {
    if (this.fd === undefined) throw new LedgerClosedError(this.dir, jobId);
    return this.fd;
  }

  /**
   * Appends whole lines or nothing. On any failure the journal is cut back to the end of
   * its last whole line before the error is thrown; if even that fails, every later
   * append tries the cut again first and fails while it cannot be made.
   */
  private append(text: string, jobId: string | undefined): void {
    const fd = this.journalFd(jobId);
    this.cutTornTail(fd);
    const buf = Buffer.from(text, 'utf8');
    try {
      writeAll(fd, buf, this.options.writeSync);
      if (this.options.fsync) fsyncSync(fd);
    } catch (error) {
      this.tornTail = error;
      this.cutTornTail(fd);
      throw asWriteError(this.dir, `appending to ${JOURNAL_FILE}`, error);
    }
    this.goodEnd += buf.length;
  }

  private cutTornTail(fd: number): void {
    if (this.tornTail === undefined) return;
    try {
      ftruncateSync(fd, this.goodEnd);
      if (this.options.fsync) fsyncSync(fd);
    } catch (error) {
      throw asWriteError(
        this.dir,
        `cutting a failed append off ${JOURNAL_FILE} (after ${String(this.tornTail)})`,
        error,
      );
    }
    this.tornTail = undefined;
  }

  private truncateTo(end: number): void {
    try {
      const fd = openSync(this.journalPath, 'r+');
      try {
        ftruncateSync(fd, end);
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      throw asWriteError(this.dir, `cutting the torn end off ${JOURNAL_FILE}`, error);
    }
  }

  /**
   * The header, job lines and one line per touched row, to a temp file renamed over the
   * journal: the snapshot and the fresh journal are one file, so a single atomic rename
   * switches both and no crash can pair a snapshot with the wrong journal.
   */
  private compact(state: LedgerState): void {
    writeAtomic(this.dir, JOURNAL_FILE, (fd) => {
      let buf = headerLine();
      const flush = (force: boolean): void => {
        if (force || buf.length > 1 << 20) {
          writeText(fd, buf);
          buf = '';
        }
      };
      for (const { spec, rows } of state.snapshot()) {
        buf += jobLine(spec, idsFileFor(spec.jobId));
        const indices = [...rows.keys()].sort((a, b) => a - b);
        for (const index of indices) {
          buf += rowLine({ jobId: spec.jobId, index, row: rows.get(index)! });
          flush(false);
        }
      }
      for (const claim of state.outputClaims()) buf += outputLine(claim.url, claim.jobId);
      flush(true);
    });
  }
}

/** Lines a compacted journal of `state` would have. */
function compactedLines(state: LedgerState): number {
  let n = 1 + [...state.outputClaims()].length;
  for (const { rows } of state.snapshot()) n += 1 + rows.size;
  return n;
}
