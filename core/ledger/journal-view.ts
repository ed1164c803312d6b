// A read-only view of a local ledger, for `tessera status` while a run holds the
// directory: LocalLedger.open takes the lock (two writers would interleave journals),
// this takes nothing and writes nothing.
//
// It replays <dir>/ledger.jsonl with the format of local.ts (header, job lines naming
// their ids file, row lines each holding a row's whole new state, output claim lines;
// last line wins).
// The writer appends with one write per transition and compacts by rename, so a
// reader sees either the old file whole or the new one whole, and at worst a torn
// last line of a write in progress: that line is skipped (its transition had not
// returned to its caller yet), never repaired — repairing is the writer's job.
//
// The view is a snapshot: call JournalView.read again for fresher state.

import { createReadStream, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { LedgerCorruptError } from './errors.ts';
import { MemoryLedger } from './memory.ts';
import { CHUNK_STATUSES, type ChunkStatus, type JobSpec } from './port.ts';
import { type RowState, validateJobSpec } from './protocol.ts';

const JOURNAL = 'ledger.jsonl';
const LOCK = 'ledger.lock';

/**
 * The pid of the live process holding `dir` (a run in progress), or undefined when no
 * one does (no lock, or a stale one left by a killed run).
 */
export function lockHolder(dir: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, LOCK), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  const pid = Number(text.trim());
  if (!Number.isInteger(pid) || pid <= 0) return undefined;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (error) {
    // EPERM: alive but someone else's; only ESRCH means it is gone (as local.ts decides).
    return (error as NodeJS.ErrnoException).code === 'ESRCH' ? undefined : pid;
  }
}

/** The in-memory ledger replayed from a journal; its write methods must not be used. */
export class JournalView extends MemoryLedger {
  private constructor(readonly dir: string) {
    super();
  }

  /** The journal's jobs as of now, or an empty view when `dir` has no journal yet. */
  static async read(dir: string): Promise<JournalView> {
    const view = new JournalView(dir);
    const path = join(dir, JOURNAL);
    if (!existsSync(path)) return view;
    // Read from one open descriptor: a compaction renaming a new file over the path
    // mid-read leaves this reader on the old, complete file.
    const lines = createInterface({
      input: createReadStream(path),
      crlfDelay: Number.POSITIVE_INFINITY,
    });
    let n = 0;
    let pending: { text: string; n: number } | undefined;
    for await (const text of lines) {
      // A line is known whole only once another line follows it; the last one is
      // judged after the loop.
      if (pending) view.replayLine(path, pending.text, pending.n, true);
      pending = { text, n: ++n };
    }
    if (pending) view.replayLine(path, pending.text, pending.n, false);
    return view;
  }

  /** Ids of the jobs in the journal, in order of creation. */
  jobIds(): string[] {
    return [...this.snapshot()].map((j) => j.spec.jobId);
  }

  private replayLine(path: string, text: string, n: number, whole: boolean): void {
    const corrupt = (detail: string, cause?: unknown) =>
      new LedgerCorruptError(path, n, detail, cause === undefined ? undefined : { cause });
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      if (!whole && error instanceof SyntaxError) return; // a write in progress
      throw corrupt('not valid JSON', error);
    }
    if (!isObject(value)) throw corrupt('not a JSON object');
    if (n === 1) {
      if (value.t !== 'ledger' || value.v !== 1)
        throw corrupt('expected the header {"t":"ledger","v":1}');
      return;
    }
    if (value.t === 'job' && isObject(value.job) && typeof value.ids === 'string') {
      const job = value.job as unknown as JobSpec;
      try {
        validateJobSpec(job);
      } catch (error) {
        throw corrupt('malformed job line', error);
      }
      const ids = readFileSync(join(this.dir, value.ids), 'utf8').split('\n');
      ids.pop();
      if (ids.length !== job.chunkCount)
        throw corrupt(
          `job "${job.jobId}": ${value.ids} lists ${ids.length} ids, chunkCount is ${job.chunkCount}`,
        );
      this.restoreJob(job, ids);
      return;
    }
    if (value.t === 'row') {
      const change = parseRow(value);
      if (!change || !this.hasChunk(change.jobId, change.index))
        throw corrupt('malformed row line, or a row before its job line');
      this.restoreRow(change);
      return;
    }
    if (value.t === 'out') {
      if (typeof value.url !== 'string' || typeof value.j !== 'string')
        throw corrupt('malformed output claim line');
      this.restoreOutput({ url: value.url, jobId: value.j });
      return;
    }
    throw corrupt(`unknown line type ${JSON.stringify(value.t)}`);
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;
const isInt = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);
const isStatus = (v: unknown): v is ChunkStatus =>
  typeof v === 'string' && (CHUNK_STATUSES as readonly string[]).includes(v);

/** A row line `{"t":"row","j","i","s","o"?,"l"?,"a","k","e"?,"u"}` (see local.ts). */
function parseRow(
  v: Record<string, unknown>,
): { jobId: string; index: number; row: RowState } | undefined {
  const { j, i, s, o, l, a, k, e, u } = v;
  if (typeof j !== 'string' || !isInt(i) || !isStatus(s) || !isInt(a) || !isInt(k))
    return undefined;
  if (typeof u !== 'number') return undefined;
  const row: RowState = { status: s, attempts: a, token: k, updatedAt: u };
  if (typeof o === 'string') row.owner = o;
  if (typeof l === 'number') row.leaseExpiresAt = l;
  if (typeof e === 'string') row.lastError = e;
  return { jobId: j, index: i, row };
}
