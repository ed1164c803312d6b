// The local ledger's journal format: the encoding journal-writer.ts appends with, and the
// one decoder, which journal-replay.ts applies for both the writer (LocalLedger) and the
// read-only reader (JournalView), so the two can never disagree on what a line means.
//
//   <dir>/ledger.jsonl     append-only journal, one JSON object per line:
//     {"t":"ledger","v":1}                                   header, first line
//     {"t":"job","job":{…JobSpec},"ids":"chunks/<h>.ids"}    a job was created
//     {"t":"row","j":jobId,"i":index,"s":status,"o":owner,"l":leaseExpiresAt,
//      "a":attempts,"k":token,"e":lastError,"u":updatedAt}  a row's full new state
//                                                            (absent fields omitted)
//     {"t":"out","url":outputUrl,"j":jobId}                 an output claim (last wins)
//
// A line is one JSON object, so no strict prefix of a line is valid JSON: a torn write
// is always recognisable, and needs no checksum. The writer truncates a failed append
// away before it appends anything else, so a torn line can only ever be the last one.
// Journals written before that rule could hold a torn line glued to the next record
// (`{"t":"r{"t":"row",…}`); `salvage` recovers the whole record at the end of such a line.

import { closeSync, openSync, readSync } from 'node:fs';
import { CHUNK_STATUSES, type ChunkStatus, type JobSpec } from './port.ts';
import { type RowState, validateJobSpec } from './protocol.ts';

export const JOURNAL_FILE = 'ledger.jsonl';
export const JOURNAL_VERSION = 1;

export interface RowRecord {
  jobId: string;
  index: number;
  row: RowState;
}

export type JournalRecord =
  | { t: 'ledger' }
  | { t: 'job'; job: JobSpec; ids: string }
  | { t: 'row'; change: RowRecord }
  | { t: 'out'; url: string; jobId: string };

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

export const headerLine = (): string => `${JSON.stringify({ t: 'ledger', v: JOURNAL_VERSION })}\n`;

export const jobLine = (job: JobSpec, ids: string): string =>
  `${JSON.stringify({ t: 'job', job, ids })}\n`;

export function rowLine({ jobId, index, row }: RowRecord): string {
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
}

export const outputLine = (url: string, jobId: string): string =>
  `${JSON.stringify({ t: 'out', url, j: jobId })}\n`;

/**
 * A decoded line, or why it is not one: `not-json` (what a torn write leaves: no strict
 * prefix of a line is valid JSON) or `bad-record` (valid JSON that is not a record).
 */
export type Decoded =
  | { ok: true; record: JournalRecord }
  | { ok: false; reason: 'not-json' | 'bad-record'; detail: string };

/** Decodes line `n` (1-based; line 1 must be the header). Never throws. */
export function decodeLine(text: string, n: number): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { ok: false, reason: 'not-json', detail: 'not valid JSON' };
  }
  if (!isObject(value)) return bad('not a JSON object');
  if (n === 1) {
    return value.t === 'ledger' && value.v === JOURNAL_VERSION
      ? { ok: true, record: { t: 'ledger' } }
      : bad(`expected the header {"t":"ledger","v":${JOURNAL_VERSION}}`);
  }
  if (value.t === 'row') {
    const change = parseRow(value);
    return change ? { ok: true, record: { t: 'row', change } } : bad('malformed row line');
  }
  if (value.t === 'job' && isObject(value.job) && typeof value.ids === 'string') {
    const job = value.job as unknown as JobSpec;
    try {
      validateJobSpec(job);
    } catch (error) {
      return bad(`malformed job line (${error instanceof Error ? error.message : String(error)})`);
    }
    return { ok: true, record: { t: 'job', job, ids: value.ids } };
  }
  if (value.t === 'out') {
    const { url, j } = value;
    if (typeof url !== 'string' || url === '' || typeof j !== 'string' || j === '')
      return bad('malformed output claim line');
    return { ok: true, record: { t: 'out', url, jobId: j } };
  }
  return bad(`unknown line type ${JSON.stringify(value.t)}`);
}

const bad = (detail: string): Decoded => ({ ok: false, reason: 'bad-record', detail });

const RECORD_START = '{"t":"';

/**
 * The whole record at the end of a line that starts with torn writes, and how many bytes
 * of torn prefix precede it; undefined when the line holds no whole record at its end.
 * The earliest suffix that decodes is the record: a record's own nested objects cannot
 * decode on their own (the braces after them do not balance), and a JSON string cannot
 * hold `{"t":"` unescaped.
 */
export function salvage(
  text: string,
  n: number,
): { record: JournalRecord; dropped: number } | undefined {
  for (let at = text.indexOf(RECORD_START, 1); at > 0; at = text.indexOf(RECORD_START, at + 1)) {
    const decoded = decodeLine(text.slice(at), n);
    if (decoded.ok)
      return { record: decoded.record, dropped: Buffer.byteLength(text.slice(0, at)) };
  }
  return undefined;
}

export interface Line {
  text: string;
  n: number;
  /** Ended by "\n": written whole. */
  terminated: boolean;
  /** Byte offsets of the line in the file. */
  start: number;
  end: number;
}

/**
 * Streams a journal's lines without holding it in one string (it may be hundreds of MB),
 * from one descriptor: a compaction renaming a new file over the path mid-read leaves the
 * reader on the old, complete file.
 */
export function* readLines(path: string): Generator<Line> {
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

function parseRow(v: Record<string, unknown>): RowRecord | undefined {
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
