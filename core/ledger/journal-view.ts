// A read-only view of a local ledger, for `tessera status` while a run holds the
// directory: LocalLedger.open takes the lock (two writers would interleave journals),
// this takes nothing and writes nothing.
//
// It replays <dir>/ledger.jsonl through the writer's own codec (journal-codec.ts).
// The writer appends with one write per transition, cuts failed appends back, and
// compacts by rename, so a reader sees either the old file whole or the new one whole,
// and at worst a torn last line of a write in progress: that line is skipped (its
// transition had not returned to its caller yet), never repaired — repairing is the
// writer's job. A line glued to a torn write by an older release is read as the record
// it ends with, as the writer reads it.
//
// The view is a snapshot: call JournalView.read again for fresher state.

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
import { MemoryLedger } from './memory.ts';

export { lockHolder } from './lock.ts';

/** The in-memory ledger replayed from a journal; its write methods must not be used. */
export class JournalView extends MemoryLedger {
  private constructor(readonly dir: string) {
    super();
  }

  /** The journal's jobs as of now, or an empty view when `dir` has no journal yet. */
  static async read(dir: string): Promise<JournalView> {
    const view = new JournalView(dir);
    const path = join(dir, JOURNAL_FILE);
    if (!existsSync(path)) return view;
    for (const line of readLines(path)) {
      const decoded = decodeLine(line.text, line.n);
      if (decoded.ok) {
        view.replay(path, decoded.record, line.n);
        continue;
      }
      // A write in progress.
      if (!line.terminated && decoded.detail === 'not valid JSON') break;
      const found = line.n > 1 ? salvage(line.text, line.n) : undefined;
      if (found === undefined) throw new LedgerCorruptError(path, line.n, decoded.detail);
      view.replay(path, found.record, line.n);
    }
    return view;
  }

  /** Ids of the jobs in the journal, in order of creation. */
  jobIds(): string[] {
    return [...this.snapshot()].map((j) => j.spec.jobId);
  }

  private replay(path: string, record: JournalRecord, n: number): void {
    switch (record.t) {
      case 'ledger':
        return;
      case 'job': {
        const { job } = record;
        const ids = readFileSync(join(this.dir, record.ids), 'utf8').split('\n');
        ids.pop();
        if (ids.length !== job.chunkCount)
          throw new LedgerCorruptError(
            path,
            n,
            `job "${job.jobId}": ${record.ids} lists ${ids.length} ids, chunkCount is ${job.chunkCount}`,
          );
        this.restoreJob(job, ids);
        return;
      }
      case 'row':
        if (!this.hasChunk(record.change.jobId, record.change.index))
          throw new LedgerCorruptError(path, n, 'a row before its job line, or out of range');
        this.restoreRow(record.change);
        return;
      case 'out':
        this.restoreOutput({ url: record.url, jobId: record.jobId });
        return;
    }
  }
}
