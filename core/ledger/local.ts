// The ledger of a local run: the engine (engine.ts) made durable by a journal in a state
// directory (journal-writer.ts), held by one process (lock.ts), so a killed run resumes
// where it stopped.
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
// - A failed append is cut back before anything else is appended (journal-writer.ts), so
//   a torn line can only be the LAST one (a crash mid-write); replay drops it with a
//   warning and the writer truncates it away. A line glued to a torn one by older
//   releases is salvaged. Any other bad line is damage from outside and stops the open
//   (journal-replay.ts, which `tessera status`'s JournalView reads through as well).
// - Compaction (on open, when the journal is mostly superseded lines) rewrites the
//   journal as its snapshot in one atomic rename.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { LedgerEngine } from './engine.ts';
import { EngineLedger } from './engine-ledger.ts';
import { JOURNAL_FILE } from './journal-codec.ts';
import { replayJournal } from './journal-replay.ts';
import { asWriteError, JournalWriter, type JournalWriterOptions } from './journal-writer.ts';
import { acquireDirLock, type DirLock } from './lock.ts';

export interface LocalLedgerOptions extends JournalWriterOptions {
  /** Where replay reports a repaired torn line (default: process.emitWarning). */
  onWarning?: (message: string) => void;
}

export class LocalLedger extends EngineLedger {
  private constructor(
    private readonly journal: JournalWriter,
    private readonly lock: DirLock,
  ) {
    super(new LedgerEngine(journal));
  }

  get dir(): string {
    return this.journal.dir;
  }

  /** Opens (creating if needed) the ledger in `dir`, replaying and maybe compacting its journal. */
  static async open(dir: string, options: LocalLedgerOptions = {}): Promise<LocalLedger> {
    try {
      mkdirSync(join(dir, 'chunks'), { recursive: true });
    } catch (error) {
      throw asWriteError(dir, 'creating the state directory', error);
    }
    const ledger = new LocalLedger(new JournalWriter(dir, options), await acquireDirLock(dir));
    try {
      ledger.load(options.onWarning);
    } catch (err) {
      await ledger.lock.release();
      throw err;
    }
    return ledger;
  }

  /** Stops recording; later transitions throw LedgerClosedError. */
  async close(): Promise<void> {
    if (this.journal.close()) await this.lock.release();
  }

  private load(onWarning: ((message: string) => void) | undefined): void {
    const warn = onWarning ?? ((m: string) => process.emitWarning(m, 'TesseraLedgerWarning'));
    const path = join(this.dir, JOURNAL_FILE);
    const replayed = replayJournal(this.dir, this.engine.state, (note) =>
      warn(
        note.kind === 'torn-tail'
          ? `ledger journal ${path}: ignoring torn last line ${note.line} (${note.bytes} bytes), ` +
              'left by a crash mid-write; that transition never returned to its caller'
          : `ledger journal ${path}: line ${note.line} began with ${note.dropped} bytes of ` +
              'a write that failed (left by an older release after a disk error); kept the record after them',
      ),
    );
    this.journal.start(replayed, this.engine.state, warn);
  }
}
