// Failures of the ledger a caller can act on. Payloads are plain data so the IPC
// transport can rebuild the same class on the other side.

import type { ChunkRow, Claim } from './port.ts';

/** Base class: `instanceof LedgerError` catches every ledger failure. */
export class LedgerError extends Error {
  override readonly name: string = 'LedgerError';
}

/** The job id is not in the ledger. */
export class JobNotFoundError extends LedgerError {
  override readonly name = 'JobNotFoundError';
  constructor(
    readonly jobId: string,
    readonly chunkId?: string,
  ) {
    super(
      `job "${jobId}" is not in the ledger${chunkId === undefined ? '' : ` (asked about chunk "${chunkId}")`}; ` +
        'check the job id, or plan/create the job before starting workers on it',
    );
  }
}

/** A claim names a chunk the job does not have (index out of range or id mismatch). */
export class ChunkNotFoundError extends LedgerError {
  override readonly name = 'ChunkNotFoundError';
  constructor(
    readonly jobId: string,
    readonly chunkId: string,
    readonly index: number,
  ) {
    super(
      `job "${jobId}" has no chunk "${chunkId}" at index ${index}; the claim was not issued ` +
        'by this ledger for this job (wrong job id, or a claim from another plan)',
    );
  }
}

export type LeaseAction = 'heartbeat' | 'complete' | 'release' | 'fail';

/**
 * The claim's tenure is over: the row is no longer RUNNING under this owner and token
 * (its lease expired and another worker claimed it, a sweep or an admin re-drove it, or
 * it was already finished). `row` is the row as it is now.
 */
export class LeaseLostError extends LedgerError {
  override readonly name = 'LeaseLostError';
  constructor(
    readonly action: LeaseAction,
    readonly claim: Claim,
    readonly row: ChunkRow,
  ) {
    const now = `${row.status}${row.owner === undefined ? '' : ` owned by "${row.owner}"`} at token ${row.token}`;
    const todo =
      action === 'complete'
        ? 'do not count this chunk as yours; its outputs are deterministic, so what was written is harmless'
        : 'stop working on it and claim another chunk';
    super(
      `${action} of chunk "${claim.chunkId}" in job "${claim.jobId}" refused: "${claim.owner}" ` +
        `holds token ${claim.token}, but the chunk is now ${now}. The lease expired or the ` +
        `chunk was re-driven; ${todo}. Frequent lease losses mean leaseMs is too short for ` +
        'the heartbeat interval.',
    );
  }
}

/** Another job holds the output location: two jobs never write one output. */
export class OutputClaimedError extends LedgerError {
  override readonly name = 'OutputClaimedError';
  constructor(
    /** The output location, canonical (see Ledger.claimOutput). */
    readonly url: string,
    /** The job that holds it. */
    readonly holder: string,
    /** The job that was refused. */
    readonly jobId: string,
  ) {
    super(
      `output.url ${url} belongs to job "${holder}", so job "${jobId}" may not write there: ` +
        'two jobs never share an output (their blocks would mix). Pick another output.url, or, ' +
        `once job "${holder}" is finished, delete its output (everything under ${url}) and run this job again`,
    );
  }
}

/** createJob got a spec or chunk list that cannot make a job. */
export class InvalidJobError extends LedgerError {
  override readonly name = 'InvalidJobError';
  constructor(
    readonly jobId: string,
    readonly field: string,
    readonly detail: string,
  ) {
    super(`job "${jobId}": ${field} ${detail}; fix the plan that produced it`);
  }
}

/** The local journal has a damaged line that is not a torn final write. */
export class LedgerCorruptError extends LedgerError {
  override readonly name = 'LedgerCorruptError';
  constructor(
    readonly path: string,
    readonly line: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `ledger journal ${path}, line ${line}: ${detail}. Torn writes are repaired ` +
        'automatically, so this is damage from outside Tessera (an edit, a disk error); ' +
        'restore the state directory from a backup or start the job afresh',
      options,
    );
  }
}

/** Another live process holds the local ledger's state directory. */
export class LedgerLockedError extends LedgerError {
  override readonly name = 'LedgerLockedError';
  constructor(
    readonly dir: string,
    /** The holder's pid as its lock file records it; undefined when unreadable. */
    readonly pid: number | undefined,
  ) {
    super(
      `ledger state directory ${dir} is in use by ${pid === undefined ? 'another process' : `process ${pid}`}; ` +
        'stop that run first, or wait for it to finish (the lock is released by the ' +
        'operating system as soon as that process exits)',
    );
  }
}

/** Filesystem error codes that mean "the place is unusable now", not "this chunk is bad". */
export const ENVIRONMENT_FS_CODES = [
  'ENOSPC',
  'EDQUOT',
  'EIO',
  'EROFS',
  'EACCES',
  'EPERM',
] as const;

/** What a user can do about a filesystem error `code` on `dir`. */
export function fsFaultAdvice(code: string | undefined, dir: string): string {
  switch (code) {
    case 'ENOSPC':
      return `the filesystem of ${dir} is full: free space there`;
    case 'EDQUOT':
      return `your disk quota on the filesystem of ${dir} is used up: free space or raise the quota`;
    case 'EROFS':
      return `${dir} is on a read-only filesystem: remount it read-write or choose a writable place`;
    case 'EACCES':
    case 'EPERM':
      return `this user may not write in ${dir}: fix its permissions or choose a writable place`;
    case 'EIO':
      return `the disk under ${dir} reported an I/O error: check the device (dmesg) before going on`;
    default:
      return `check that ${dir} is writable and has free space`;
  }
}

/**
 * The local journal could not be written (disk full, quota, read-only, permissions, I/O
 * error). Nothing of the transition was recorded or applied and the journal is whole: the
 * same call can be made again once the cause is fixed. Not the chunk's fault.
 */
export class LedgerWriteError extends LedgerError {
  override readonly name = 'LedgerWriteError';
  constructor(
    /** The state directory. */
    readonly dir: string,
    /** The errno code (ENOSPC, EIO, …), or undefined when the failure had none. */
    readonly code: string | undefined,
    /** What the failed call was doing, e.g. "appending to ledger.jsonl". */
    readonly op: string,
    options?: { cause?: unknown },
  ) {
    super(
      `ledger state directory ${dir}: ${op} failed (${code ?? 'no error code'}); ` +
        `${fsFaultAdvice(code, dir)}. Nothing was recorded for this step and no chunk's ` +
        'attempt was spent; run the same command again once it is fixed',
      options,
    );
  }
}

/** The ledger was closed and cannot record transitions any more. */
export class LedgerClosedError extends LedgerError {
  override readonly name = 'LedgerClosedError';
  constructor(
    readonly where: string,
    readonly jobId?: string,
  ) {
    super(
      `ledger ${where} is closed${jobId === undefined ? '' : ` (job "${jobId}")`}; open it again to continue`,
    );
  }
}

/** The IPC channel to the process that owns the ledger broke or answered nonsense. */
export class LedgerIpcError extends LedgerError {
  override readonly name = 'LedgerIpcError';
  constructor(detail: string, options?: { cause?: unknown }) {
    super(`ledger IPC: ${detail}`, options);
  }
}

/** An error of a kind the IPC transport does not rebuild, thrown in the serving process. */
export class RemoteLedgerError extends LedgerError {
  override readonly name = 'RemoteLedgerError';
  constructor(
    readonly remoteName: string,
    remoteMessage: string,
  ) {
    super(`ledger process threw ${remoteName}: ${remoteMessage}`);
  }
}

/**
 * rearm named chunk ids the job does not have; nothing was re-armed.
 */
export class UnknownChunkIdsError extends LedgerError {
  override readonly name = 'UnknownChunkIdsError';
  constructor(
    readonly jobId: string,
    /** The unknown ids (at most the first 20). */
    readonly chunkIds: readonly string[],
    /** How many of the given ids were unknown. */
    readonly count: number,
  ) {
    super(
      `job "${jobId}" has no chunk ${chunkIds.map((c) => `"${c}"`).join(', ')}${count > chunkIds.length ? ` (and ${count - chunkIds.length} more)` : ''}; ` +
        'nothing was re-armed: name chunks of this job (as `tessera status` lists them), or check the job id',
    );
  }
}

/** completePlan found index ranges no planRange has written; the job stays invisible. */
export class PlanIncompleteError extends LedgerError {
  override readonly name = 'PlanIncompleteError';
  constructor(
    readonly jobId: string,
    /** The missing ranges, half-open (at most the first 20). */
    readonly missing: readonly { from: number; to: number }[],
    /** How many chunk indices are missing in all. */
    readonly count: number,
  ) {
    super(
      `job "${jobId}": ${count} chunk rows were never planned, indices ${missing
        .map((r) => `${r.from}..${r.to - 1}`)
        .join(', ')}${missing.length >= 20 ? ' …' : ''}; ` +
        'run planRange for those ranges (a PlanRanges item that failed), then completePlan again',
    );
  }
}

/**
 * A planner task (Plan, PlanRange, CompletePlan) got a ledger without range planning (a
 * wrapper of the port, e.g. the TESSERA_CLOCK_OFFSET_MS fault hook) for a job planned in
 * ranges: the job's rows cannot be written. Thrown before anything is written.
 */
export class LedgerCannotPlanRangesError extends LedgerError {
  override readonly name = 'LedgerCannotPlanRangesError';
  constructor(readonly jobId: string) {
    super(
      `job "${jobId}": this Lambda's ledger cannot plan in ranges (planRange/completePlan), so the job's ` +
        'chunk rows were not written; unset TESSERA_CLOCK_OFFSET_MS on the planner and plan-range functions ' +
        '(the only ledger wrapper a deployed stack may add) and re-run the execution',
    );
  }
}
