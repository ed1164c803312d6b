// The ledger of a local run: MemoryLedger state made durable in a state directory, so a
// killed run resumes where it stopped.
//
//   <dir>/ledger.jsonl     append-only journal (format: journal-codec.ts)
//   <dir>/chunks/<h>.ids   the job's chunk ids in index order, one per line, written
//                          once (temp file + rename) before the job line; h = sha256(jobId)
//   <dir>/ledger.lock      who holds the directory (the lock itself is the kernel's: lock.ts)
//
// Why this shape:
// - Rows of a fresh job are implicit (PENDING, 0 attempts, token 0), so creating a job of
//   10^6 chunks writes one ids file and one journal line, not 10^6 lines.
// - Each line is the row's whole new state, not a delta: replay is "last line wins" and
//   needs none of the protocol's logic, and a repeated line is harmless.
// - A transition is written with writeSync on an O_APPEND descriptor before it becomes
//   visible, so once a call has returned, its line is in the kernel and survives a
//   SIGKILL of this process. Power loss is covered only with `fsync: true` (one fsync per
//   transition; off by default because a local run's worst case is redoing a few chunks
//   whose outputs are idempotent anyway).
// - The writer knows the offset where the journal's last whole line ends. An append that
//   fails (disk full, quota, I/O error), even after writing part of its bytes, is cut back
//   to that offset before the error is thrown, and nothing is appended until that cut has
//   succeeded: a torn line is never followed by another. The failed call throws
//   LedgerWriteError, its transition is not applied, and the same call may be made again.
// - So a torn line can only be the LAST one (a crash mid-write); replay drops it with a
//   warning and truncates it away. A line glued to a torn one by older releases is
//   salvaged. Any other bad line is damage from outside and stops the open.
// - Compaction (on open, when the journal is mostly superseded lines) writes the header,
//   job lines and one line per touched row to a temp file and renames it over the
//   journal: the snapshot and the fresh journal are one file, so a single atomic rename
//   switches both and no crash can pair a snapshot with the wrong journal.

import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fstatSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { LedgerClosedError, LedgerCorruptError, LedgerError, LedgerWriteError } from './errors.ts';
import {
  decodeLine,
  headerLine,
  JOURNAL_FILE,
  type JournalRecord,
  jobLine,
  outputLine,
  readLines,
  rowLine,
  salvage,
} from './journal-codec.ts';
import { acquireDirLock, type DirLock } from './lock.ts';
import { MemoryLedger, type OutputClaimChange, type RowChange } from './memory.ts';
import type { JobSpec } from './port.ts';

export interface LocalLedgerOptions {
  /** fsync after every transition: survives power loss, costs a disk flush per call. */
  fsync?: boolean;
  /**
   * Compact on open once the journal has at least this many lines (default 100 000) and
   * more than twice the lines a compacted journal would have: below that, replay is cheap.
   */
  compactMinLines?: number;
  /** Where replay reports a repaired torn line (default: process.emitWarning). */
  onWarning?: (message: string) => void;
  /**
   * Test hook: the write primitive appends go through (default fs.writeSync), so a test
   * can inject the faults a real filesystem gives (short writes, EIO) where it cannot
   * mount one that does.
   */
  writeSync?: (fd: number, buffer: Buffer, offset: number, length: number) => number;
}

const idsFileFor = (jobId: string): string =>
  `chunks/${createHash('sha256').update(jobId).digest('hex').slice(0, 32)}.ids`;

type Write = NonNullable<LocalLedgerOptions['writeSync']>;
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
function asWriteError(dir: string, op: string, error: unknown): unknown {
  if (error instanceof LedgerError || errnoOf(error) === undefined) return error;
  return new LedgerWriteError(dir, errnoOf(error), op, { cause: error });
}

export class LocalLedger extends MemoryLedger {
  private fd: number | undefined;
  private lock: DirLock | undefined;
  private readonly journalPath: string;
  /** Where the journal's last whole line ends: appends start here, failures cut back here. */
  private goodEnd = 0;
  /** A failed append could not be cut back yet: nothing may be appended until it is. */
  private tornTail: unknown;

  private constructor(
    readonly dir: string,
    private readonly options: LocalLedgerOptions,
  ) {
    super();
    this.journalPath = join(dir, JOURNAL_FILE);
  }

  /** Opens (creating if needed) the ledger in `dir`, replaying and maybe compacting its journal. */
  static async open(dir: string, options: LocalLedgerOptions = {}): Promise<LocalLedger> {
    try {
      mkdirSync(join(dir, 'chunks'), { recursive: true });
    } catch (error) {
      throw asWriteError(dir, 'creating the state directory', error);
    }
    const ledger = new LocalLedger(dir, options);
    ledger.lock = await acquireDirLock(dir);
    try {
      ledger.load();
    } catch (err) {
      await ledger.lock.release();
      throw err;
    }
    return ledger;
  }

  /** Stops recording; later transitions throw LedgerClosedError. */
  async close(): Promise<void> {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    await this.lock?.release();
  }

  protected override persistJob(job: JobSpec, ids: readonly string[]): void {
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

  protected override persistRows(changes: readonly RowChange[]): void {
    // One write for the lot: abandonOwners' rows land together or not at all.
    this.append(changes.map(rowLine).join(''), changes[0]?.jobId);
  }

  protected override persistOutput(change: OutputClaimChange): void {
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

  private load(): void {
    const warn =
      this.options.onWarning ?? ((m: string) => process.emitWarning(m, 'TesseraLedgerWarning'));
    const tmp = `${this.journalPath}.tmp`;
    // A compaction that died before its rename: the journal beside it is still whole.
    rmSync(tmp, { force: true });
    let lines = 0;
    let goodEnd = 0;
    let needsNewline = false;
    let salvaged = 0;
    if (existsSync(this.journalPath)) {
      for (const line of readLines(this.journalPath)) {
        const decoded = decodeLine(line.text, line.n);
        let record: JournalRecord;
        if (decoded.ok) record = decoded.record;
        else if (!line.terminated && decoded.detail === 'not valid JSON') {
          warn(
            `ledger journal ${this.journalPath}: ignoring torn last line ${line.n} ` +
              `(${line.end - line.start} bytes), left by a crash mid-write; that transition never returned to its caller`,
          );
          break;
        } else {
          const found = line.n > 1 ? salvage(line.text, line.n) : undefined;
          if (found === undefined)
            throw new LedgerCorruptError(this.journalPath, line.n, decoded.detail);
          warn(
            `ledger journal ${this.journalPath}: line ${line.n} began with ${found.dropped} bytes of ` +
              'a write that failed (left by an older release after a disk error); kept the record after them',
          );
          record = found.record;
          salvaged++;
        }
        this.replay(record, line.n);
        lines++;
        goodEnd = line.end;
        needsNewline = !line.terminated;
      }
    }
    const compacted = this.compactedLines();
    const minLines = this.options.compactMinLines ?? 100_000;
    if (salvaged > 0 || (lines >= minLines && lines > 2 * compacted)) {
      // Salvaged lines are rewritten clean, so the next open (and `status`) needs no salvage.
      try {
        this.compact();
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

  private replay(record: JournalRecord, n: number): void {
    switch (record.t) {
      case 'ledger':
        return;
      case 'row':
        if (!this.hasChunk(record.change.jobId, record.change.index)) {
          throw new LedgerCorruptError(
            this.journalPath,
            n,
            `row ${record.change.index} of job "${record.change.jobId}" before its job line or out of range`,
          );
        }
        this.restoreRow(record.change);
        return;
      case 'job':
        this.restoreJob(record.job, this.readIds(record.job, record.ids, n));
        return;
      case 'out':
        this.restoreOutput({ url: record.url, jobId: record.jobId });
        return;
    }
  }

  private readIds(job: JobSpec, rel: string, n: number): string[] {
    const path = join(this.dir, rel);
    if (!existsSync(path)) {
      throw new LedgerCorruptError(
        this.journalPath,
        n,
        `job "${job.jobId}": its chunk id file ${path} is missing`,
      );
    }
    const ids = readFileSync(path, 'utf8').split('\n');
    ids.pop();
    if (ids.length !== job.chunkCount) {
      throw new LedgerCorruptError(
        this.journalPath,
        n,
        `job "${job.jobId}": ${path} lists ${ids.length} chunk ids but chunkCount is ${job.chunkCount}`,
      );
    }
    return ids;
  }

  private compactedLines(): number {
    let n = 1 + [...this.outputClaims()].length;
    for (const { rows } of this.snapshot()) n += 1 + rows.size;
    return n;
  }

  private compact(): void {
    writeAtomic(this.dir, JOURNAL_FILE, (fd) => {
      let buf = headerLine();
      const flush = (force: boolean): void => {
        if (force || buf.length > 1 << 20) {
          writeText(fd, buf);
          buf = '';
        }
      };
      for (const { spec, rows } of this.snapshot()) {
        buf += jobLine(spec, idsFileFor(spec.jobId));
        const indices = [...rows.keys()].sort((a, b) => a - b);
        for (const index of indices) {
          buf += rowLine({ jobId: spec.jobId, index, row: rows.get(index)! });
          flush(false);
        }
      }
      for (const claim of this.outputClaims()) buf += outputLine(claim.url, claim.jobId);
      flush(true);
    });
  }
}
