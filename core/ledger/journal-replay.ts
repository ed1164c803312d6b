// Replay of a local ledger's journal into a LedgerState: the one reading of the journal that
// both its writer (LocalLedger.open) and its read-only reader (JournalView) use, so the
// two cannot disagree on which journals are whole, torn or corrupt.
//
// What replay accepts (the format itself: journal-codec.ts):
// - every line that decodes, in order, "last line wins";
// - a torn LAST line (not valid JSON, no newline: a crash or a write in progress): replay
//   stops before it and says so; cutting it away is the writer's business;
// - a line after the first that ends with a whole record behind bytes of a failed write
//   (left by releases before cut-back appends): the record is kept and replay says so.
// Anything else (a bad line in the middle, a row before its job, a missing or short ids
// file) is damage from outside: LedgerCorruptError naming the file and line.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LedgerCorruptError } from './errors.ts';
import {
  decodeLine,
  JOURNAL_FILE,
  type JournalRecord,
  readLines,
  salvage,
} from './journal-codec.ts';
import type { LedgerState } from './ledger-state.ts';
import type { JobSpec } from './port.ts';

/** What replay met that a writer repairs and a reader passes over. */
export type ReplayNote =
  | { kind: 'torn-tail'; line: number; bytes: number }
  | { kind: 'salvaged'; line: number; dropped: number };

export interface ReplayEnd {
  /** Records replayed. */
  lines: number;
  /** Byte offset where the last replayed line ends: a torn tail starts here. */
  goodEnd: number;
  /** The last replayed record lacks only its newline. */
  needsNewline: boolean;
  /** How many of the records were salvaged from behind a torn write. */
  salvaged: number;
}

/** Replays `<dir>/ledger.jsonl` into `state`; an absent journal replays nothing. */
export function replayJournal(
  dir: string,
  state: LedgerState,
  onNote: (note: ReplayNote) => void = () => undefined,
): ReplayEnd {
  const path = join(dir, JOURNAL_FILE);
  const end: ReplayEnd = { lines: 0, goodEnd: 0, needsNewline: false, salvaged: 0 };
  if (!existsSync(path)) return end;
  for (const line of readLines(path)) {
    const decoded = decodeLine(line.text, line.n);
    let record: JournalRecord;
    if (decoded.ok) record = decoded.record;
    else if (!line.terminated && decoded.reason === 'not-json') {
      onNote({ kind: 'torn-tail', line: line.n, bytes: line.end - line.start });
      break;
    } else {
      const found = line.n > 1 ? salvage(line.text, line.n) : undefined;
      if (found === undefined) throw new LedgerCorruptError(path, line.n, decoded.detail);
      onNote({ kind: 'salvaged', line: line.n, dropped: found.dropped });
      record = found.record;
      end.salvaged++;
    }
    apply(dir, path, state, record, line.n);
    end.lines++;
    end.goodEnd = line.end;
    end.needsNewline = !line.terminated;
  }
  return end;
}

function apply(
  dir: string,
  path: string,
  state: LedgerState,
  record: JournalRecord,
  n: number,
): void {
  switch (record.t) {
    case 'ledger':
      return;
    case 'row':
      if (!state.hasChunk(record.change.jobId, record.change.index)) {
        throw new LedgerCorruptError(
          path,
          n,
          `row ${record.change.index} of job "${record.change.jobId}" before its job line or out of range`,
        );
      }
      state.restoreRow(record.change);
      return;
    case 'job':
      state.restoreJob(record.job, readIds(dir, path, record.job, record.ids, n));
      return;
    case 'out':
      state.restoreOutput({ url: record.url, jobId: record.jobId });
      return;
  }
}

function readIds(dir: string, path: string, job: JobSpec, rel: string, n: number): string[] {
  const idsPath = join(dir, rel);
  if (!existsSync(idsPath)) {
    throw new LedgerCorruptError(
      path,
      n,
      `job "${job.jobId}": its chunk id file ${idsPath} is missing`,
    );
  }
  const ids = readFileSync(idsPath, 'utf8').split('\n');
  ids.pop();
  if (ids.length !== job.chunkCount) {
    throw new LedgerCorruptError(
      path,
      n,
      `job "${job.jobId}": ${idsPath} lists ${ids.length} chunk ids but chunkCount is ${job.chunkCount}`,
    );
  }
  return ids;
}
