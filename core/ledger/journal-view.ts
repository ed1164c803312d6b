// A read-only view of a local ledger, for `tessera status` while a run holds the
// directory: LocalLedger.open takes the lock (two writers would interleave journals),
// this takes nothing and writes nothing, and has no method that could.
//
// It replays <dir>/ledger.jsonl into a LedgerState (state, no transitions) through the writer's own replay
// (journal-replay.ts). The writer appends with one write per transition, cuts failed
// appends back, and compacts by rename, so a reader sees either the old file whole or
// the new one whole, and at worst a torn last line of a write in progress: that line is
// skipped (its transition had not returned to its caller yet), never repaired — repairing
// is the writer's job. A line glued to a torn write by an older release is read as the
// record it ends with, as the writer reads it.
//
// The view is a snapshot: call JournalView.read again for fresher state.

import { replayJournal } from './journal-replay.ts';
import { LedgerState } from './ledger-state.ts';
import type {
  ChunkRef,
  ChunkRow,
  ChunkStatus,
  JobSpec,
  LedgerReader,
  StatusCounts,
} from './port.ts';

export { lockHolder } from './lock.ts';

/** The jobs of a journal as of its reading: the Ledger port's reads, and no write. */
export class JournalView implements LedgerReader {
  private constructor(
    readonly dir: string,
    private readonly state: LedgerState,
  ) {}

  /** The journal's jobs as of now, or an empty view when `dir` has no journal yet. */
  static async read(dir: string): Promise<JournalView> {
    const state = new LedgerState();
    replayJournal(dir, state);
    return new JournalView(dir, state);
  }

  /** Ids of the jobs in the journal, in order of creation. */
  jobIds(): string[] {
    return this.state.jobIds();
  }

  async getJob(jobId: string): Promise<JobSpec | undefined> {
    return this.state.getJob(jobId);
  }

  async counts(jobId: string): Promise<StatusCounts> {
    return this.state.counts(jobId);
  }

  async *list(jobId: string, status?: ChunkStatus): AsyncIterable<ChunkRow> {
    yield* this.state.list(jobId, status);
  }

  async statuses(jobId: string, chunks: readonly ChunkRef[]): Promise<ChunkStatus[]> {
    return this.state.statuses(jobId, chunks);
  }

  /** The job that holds output location `url`, if one does. */
  outputHolder(url: string): string | undefined {
    return this.state.outputHolder(url);
  }
}
