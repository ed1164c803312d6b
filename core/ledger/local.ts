// The ledger of a local run: MemoryLedger state made durable in a state directory, so a
// killed run resumes where it stopped.
//
//   <dir>/ledger.jsonl     append-only journal, one JSON object per line:
//     {"t":"ledger","v":1}                                   header, first line
//     {"t":"job","job":{…JobSpec},"ids":"chunks/<h>.ids"}    a job was created
//     {"t":"row","j":jobId,"i":index,"s":status,"o":owner,"l":leaseExpiresAt,
//      "a":attempts,"k":token,"e":lastError,"u":updatedAt}  a row's full new state
//                                                            (absent fields omitted)
//     {"t":"out","url":outputUrl,"j":jobId}                 an output claim (last wins)
//   <dir>/chunks/<h>.ids   the job's chunk ids in index order, one per line, written
//                          once (temp file + rename) before the job line; h = sha256(jobId)
//   <dir>/ledger.lock      pid of the process that has the directory open
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
// - A crash mid-write can only tear the LAST line; replay ignores it with a warning and
//   truncates it away, so later appends start on a clean line. Any other bad line is
//   corruption and stops the open.
// - Compaction (on open, when the journal is mostly superseded lines) writes the header,
//   job lines and one line per touched row to a temp file and renames it over the
//   journal: the snapshot and the fresh journal are one file, so a single atomic rename
//   switches both and no crash can pair a snapshot with the wrong journal.

import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  ftruncateSync,
  mkdirSync,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { LedgerClosedError, LedgerCorruptError, LedgerLockedError } from './errors.ts';
import { MemoryLedger, type OutputClaimChange, type RowChange } from './memory.ts';
import { CHUNK_STATUSES, type ChunkStatus, type JobSpec } from './port.ts';
import { type RowState, validateJobSpec } from './protocol.ts';

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
}

const JOURNAL = 'ledger.jsonl';
const LOCK = 'ledger.lock';
const VERSION = 1;

interface RowLine {
  t: 'row';
  j: string;
  i: number;
  s: ChunkStatus;
  o?: string;
  l?: number;
  a: number;
  k: number;
  e?: string;
  u: number;
}

const rowLine = ({ jobId, index, row }: RowChange): string => {
  const line: RowLine = {
    t: 'row',
    j: jobId,
    i: index,
    s: row.status,
    a: row.attempts,
    k: row.token,
    u: row.updatedAt,
  };
  if (row.owner !== undefined) line.o = row.owner;
  if (row.leaseExpiresAt !== undefined) line.l = row.leaseExpiresAt;
  if (row.lastError !== undefined) line.e = row.lastError;
  return `${JSON.stringify(line)}\n`;
};

const outputLine = ({ url, jobId }: OutputClaimChange): string =>
  `${JSON.stringify({ t: 'out', url, j: jobId })}\n`;

const headerLine = (): string => `${JSON.stringify({ t: 'ledger', v: VERSION })}\n`;

const jobLine = (job: JobSpec, ids: string): string =>
  `${JSON.stringify({ t: 'job', job, ids })}\n`;

const idsFileFor = (jobId: string): string =>
  `chunks/${createHash('sha256').update(jobId).digest('hex').slice(0, 32)}.ids`;

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text, 'utf8');
  for (let off = 0; off < buf.length; ) off += writeSync(fd, buf, off, buf.length - off);
}

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
  const fd = openSync(tmp, 'w');
  try {
    write(fd);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  fsyncDir(join(path, '..'));
}

interface Line {
  text: string;
  n: number;
  /** Ended by "\n": written whole. */
  terminated: boolean;
  /** Byte offsets of the line in the file. */
  start: number;
  end: number;
}

/** Streams a journal's lines without holding it in one string (it may be hundreds of MB). */
function* readLines(path: string): Generator<Line> {
  const fd = openSync(path, 'r');
  try {
    const buf = Buffer.allocUnsafe(1 << 22);
    let carry = Buffer.alloc(0);
    let offset = 0;
    let n = 0;
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) break;
      const data =
        carry.length > 0 ? Buffer.concat([carry, buf.subarray(0, got)]) : buf.subarray(0, got);
      let pos = 0;
      for (let nl = data.indexOf(10, pos); nl >= 0; nl = data.indexOf(10, pos)) {
        n++;
        yield {
          text: data.toString('utf8', pos, nl),
          n,
          terminated: true,
          start: offset + pos,
          end: offset + nl + 1,
        };
        pos = nl + 1;
      }
      offset += pos;
      // Copied: `buf` is reused by the next read.
      carry = Buffer.from(data.subarray(pos));
    }
    if (carry.length > 0) {
      yield {
        text: carry.toString('utf8'),
        n: n + 1,
        terminated: false,
        start: offset,
        end: offset + carry.length,
      };
    }
  } finally {
    closeSync(fd);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isStatus = (v: unknown): v is ChunkStatus =>
  typeof v === 'string' && (CHUNK_STATUSES as readonly string[]).includes(v);

function parseRow(v: Record<string, unknown>): RowChange | undefined {
  const { j, i, s, o, l, a, k, e, u } = v;
  if (typeof j !== 'string' || !isInt(i) || !isStatus(s) || !isInt(a) || !isInt(k))
    return undefined;
  if (typeof u !== 'number' || (o !== undefined && typeof o !== 'string')) return undefined;
  if ((l !== undefined && typeof l !== 'number') || (e !== undefined && typeof e !== 'string')) {
    return undefined;
  }
  const row: RowState = { status: s, attempts: a, token: k, updatedAt: u };
  if (o !== undefined) row.owner = o;
  if (l !== undefined) row.leaseExpiresAt = l;
  if (e !== undefined) row.lastError = e;
  return { jobId: j, index: i, row };
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else; only ESRCH means it is gone.
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function acquireLock(dir: string): void {
  const path = join(dir, LOCK);
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(path, String(process.pid), { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(readFileSync(path, 'utf8').trim());
    // A lock left by a killed run is taken over; a live holder (this process included:
    // two instances would interleave journals) is not.
    if (attempt > 0 || (Number.isInteger(pid) && pid > 0 && isAlive(pid))) {
      throw new LedgerLockedError(dir, pid);
    }
    unlinkSync(path);
  }
}

export class LocalLedger extends MemoryLedger {
  private fd: number | undefined;
  private readonly journalPath: string;

  private constructor(
    readonly dir: string,
    private readonly options: LocalLedgerOptions,
  ) {
    super();
    this.journalPath = join(dir, JOURNAL);
  }

  /** Opens (creating if needed) the ledger in `dir`, replaying and maybe compacting its journal. */
  static async open(dir: string, options: LocalLedgerOptions = {}): Promise<LocalLedger> {
    mkdirSync(join(dir, 'chunks'), { recursive: true });
    acquireLock(dir);
    const ledger = new LocalLedger(dir, options);
    try {
      ledger.load();
    } catch (err) {
      unlinkSync(join(dir, LOCK));
      throw err;
    }
    return ledger;
  }

  /** Stops recording; later transitions throw LedgerClosedError. */
  async close(): Promise<void> {
    if (this.fd === undefined) return;
    closeSync(this.fd);
    this.fd = undefined;
    const lock = join(this.dir, LOCK);
    if (existsSync(lock) && readFileSync(lock, 'utf8').trim() === String(process.pid))
      unlinkSync(lock);
  }

  protected override persistJob(job: JobSpec, ids: readonly string[]): void {
    const fd = this.journalFd(job.jobId);
    const rel = idsFileFor(job.jobId);
    writeAtomic(this.dir, rel, (out) => {
      // In slices: one string of 10^6 ids is fine, of 10^7 it nears V8's string limit.
      for (let i = 0; i < ids.length; i += 65536) {
        writeAll(out, `${ids.slice(i, i + 65536).join('\n')}\n`);
      }
    });
    this.append(fd, jobLine(job, rel));
  }

  protected override persistRows(changes: readonly RowChange[]): void {
    const fd = this.journalFd(changes[0]?.jobId);
    // One write for the lot: abandonOwners' rows land together or tear only at the end.
    this.append(fd, changes.map(rowLine).join(''));
  }

  protected override persistOutput(change: OutputClaimChange): void {
    this.append(this.journalFd(change.jobId), outputLine(change));
  }

  private journalFd(jobId: string | undefined): number {
    if (this.fd === undefined) throw new LedgerClosedError(this.dir, jobId);
    return this.fd;
  }

  private append(fd: number, text: string): void {
    writeAll(fd, text);
    if (this.options.fsync) fsyncSync(fd);
  }

  private load(): void {
    const warn =
      this.options.onWarning ?? ((m: string) => process.emitWarning(m, 'TesseraLedgerWarning'));
    const tmp = `${this.journalPath}.tmp`;
    // A compaction that died before its rename: the journal beside it is still whole.
    if (existsSync(tmp)) unlinkSync(tmp);
    let lines = 0;
    let goodEnd = 0;
    let needsNewline = false;
    if (existsSync(this.journalPath)) {
      for (const line of readLines(this.journalPath)) {
        let value: unknown;
        try {
          value = JSON.parse(line.text);
        } catch (err) {
          if (line.terminated) {
            throw new LedgerCorruptError(this.journalPath, line.n, 'not valid JSON', {
              cause: err,
            });
          }
          warn(
            `ledger journal ${this.journalPath}: ignoring torn last line ${line.n} ` +
              `(${line.end - line.start} bytes), left by a crash mid-write; that transition never returned to its caller`,
          );
          break;
        }
        this.replay(value, line.n);
        lines++;
        goodEnd = line.end;
        needsNewline = !line.terminated;
      }
    }
    const compacted = this.compactedLines();
    const minLines = this.options.compactMinLines ?? 100_000;
    if (lines >= minLines && lines > 2 * compacted) {
      this.compact();
      needsNewline = false;
    } else if (lines === 0) {
      writeAtomic(this.dir, JOURNAL, (fd) => writeAll(fd, headerLine()));
    } else {
      const fd = openSync(this.journalPath, 'r+');
      try {
        ftruncateSync(fd, goodEnd);
      } finally {
        closeSync(fd);
      }
    }
    this.fd = openSync(this.journalPath, 'a');
    if (needsNewline) writeAll(this.fd, '\n');
  }

  private replay(value: unknown, n: number): void {
    const corrupt = (detail: string, cause?: unknown): LedgerCorruptError =>
      new LedgerCorruptError(
        this.journalPath,
        n,
        detail,
        cause === undefined ? undefined : { cause },
      );
    if (!isObject(value)) throw corrupt('not a JSON object');
    if (n === 1) {
      if (value.t !== 'ledger' || value.v !== VERSION) {
        throw corrupt(`expected the header {"t":"ledger","v":${VERSION}}`);
      }
      return;
    }
    if (value.t === 'row') {
      const change = parseRow(value);
      if (!change) throw corrupt('malformed row line');
      if (!this.hasChunk(change.jobId, change.index)) {
        throw corrupt(
          `row ${change.index} of job "${change.jobId}" before its job line or out of range`,
        );
      }
      this.restoreRow(change);
      return;
    }
    if (value.t === 'job' && isObject(value.job) && typeof value.ids === 'string') {
      const job = value.job as unknown as JobSpec;
      try {
        validateJobSpec(job);
      } catch (err) {
        throw corrupt('malformed job line', err);
      }
      this.restoreJob(job, this.readIds(job, value.ids, n));
      return;
    }
    if (value.t === 'out') {
      const { url, j } = value;
      if (typeof url !== 'string' || url === '' || typeof j !== 'string' || j === '')
        throw corrupt('malformed output claim line');
      this.restoreOutput({ url, jobId: j });
      return;
    }
    throw corrupt(`unknown line type ${JSON.stringify(value.t)}`);
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
    writeAtomic(this.dir, JOURNAL, (fd) => {
      let buf = headerLine();
      const flush = (force: boolean): void => {
        if (force || buf.length > 1 << 20) {
          writeAll(fd, buf);
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
      for (const claim of this.outputClaims()) buf += outputLine(claim);
      flush(true);
    });
  }
}
