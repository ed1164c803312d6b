// Whose fault is an error (DESIGN.md): the place's (a full or read-only disk, an I/O or
// permission error, a throttled or unreachable service, a ledger that cannot record) or
// the chunk's own (NaN output, undecodable bytes, a model error on this input). Only the
// chunk's own failures may spend its attempts; the place's pause the worker (Pause below)
// and, if they last, stop it with every chunk handed back unspent.
//
// Structural only: core knows no AWS SDK, so SDK errors are told by the fields every SDK
// v3 error carries ($metadata, $retryable, $fault, name), Node's by their errno `code`,
// the ledger's by class. `cause` chains are walked: the volume and store layers wrap the
// original error (VolumeWriteError ← ENOSPC, StoreIoError ← SlowDown).

import {
  ENVIRONMENT_FS_CODES,
  fsFaultAdvice,
  LedgerClosedError,
  LedgerIpcError,
  LedgerWriteError,
  RemoteLedgerError,
} from '../ledger/errors.ts';
import { EnvironmentFaultError } from './errors.ts';

export interface EnvironmentFault {
  kind: 'environment';
  /** The errno code (ENOSPC), the service's error name (SlowDown), or undefined. */
  code?: string;
  /** The place at fault: a directory, `s3://bucket/key`, the ledger's state directory. */
  place?: string;
  /** The cause and what to do, in one line (without the step that failed). */
  message: string;
}

export type Fault = EnvironmentFault | { kind: 'chunk' };

/** Node's network error codes: the service was not reached or the connection broke. */
export const NETWORK_CODES = [
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
] as const;

/**
 * Error names of throttled or briefly unavailable services (S3, DynamoDB, the SDK's own
 * timeouts), and the DynamoDB adapter's errors for throttling that outlived its retries.
 */
export const TRANSIENT_SERVICE_NAMES = [
  'SlowDown',
  'Throttling',
  'ThrottlingException',
  'ThrottledException',
  'TooManyRequestsException',
  'ProvisionedThroughputExceededException',
  'RequestLimitExceeded',
  'RequestThrottled',
  'RequestTimeout',
  'RequestTimeoutException',
  'TimeoutError',
  'ServiceUnavailable',
  'ServiceUnavailableException',
  'InternalError',
  'InternalServerError',
  'LedgerThrottledError',
  'LedgerContentionError',
] as const;

/** Error names of credentials or policies that do not allow the call: the same for every chunk. */
export const DENIED_SERVICE_NAMES = [
  'AccessDenied',
  'AccessDeniedException',
  'ExpiredToken',
  'ExpiredTokenException',
  'InvalidAccessKeyId',
] as const;

const FS_CODES: ReadonlySet<string> = new Set(ENVIRONMENT_FS_CODES);
const NETWORK: ReadonlySet<string> = new Set(NETWORK_CODES);
const TRANSIENT: ReadonlySet<string> = new Set(TRANSIENT_SERVICE_NAMES);
const DENIED: ReadonlySet<string> = new Set(DENIED_SERVICE_NAMES);

/**
 * Whose fault `error` is. `place`, when given, is where the failed step reads or writes
 * (the output directory, the work store): messages name it rather than the file the error
 * names, which is often a temporary file inside it.
 */
export function classifyFault(error: unknown, place?: string): Fault {
  const chain = causes(error);
  const where = place ?? placeIn(chain);
  for (const e of chain) {
    const found = classifyOne(e, where);
    if (found) return found;
  }
  return { kind: 'chunk' };
}

function classifyOne(e: object, place: string | undefined): EnvironmentFault | undefined {
  if (e instanceof LedgerWriteError)
    return environment(
      e.code,
      e.dir,
      `ledger state directory ${e.dir}: ${e.op} failed (${e.code ?? 'no error code'}); ${fsFaultAdvice(e.code, e.dir)}`,
    );
  if (ledgerGone(e))
    return environment(
      undefined,
      place,
      `${e.message}; the process that keeps the ledger (the run's coordinator) stopped or ` +
        'closed it: run the same command again',
    );
  const code = stringField(e, 'code');
  if (code !== undefined && FS_CODES.has(code)) {
    const dir = place ?? parentOf(stringField(e, 'path')) ?? 'the disk';
    const syscall = stringField(e, 'syscall');
    return environment(
      code,
      dir,
      `${fsFaultAdvice(code, dir)} (${code}${syscall === undefined ? '' : ` in ${syscall}`})`,
    );
  }
  if (code !== undefined && NETWORK.has(code))
    return environment(
      code,
      place,
      `${code}: the connection to ${place ?? 'the service'} failed (${messageOf(e)}); check the ` +
        'network and the endpoint, then run again',
    );
  const name = stringField(e, 'name');
  const status = httpStatus(e);
  const service = `${name ?? 'error'}${status === undefined ? '' : ` (HTTP ${status})`}`;
  if ((name !== undefined && DENIED.has(name)) || status === 403)
    return environment(
      name,
      place,
      `${service}: the credentials in use may not access ${place ?? 'the service'}; check ` +
        "AWS_PROFILE / the task's IAM role and the bucket or table policy",
    );
  if (
    (name !== undefined && TRANSIENT.has(name)) ||
    isRetryable(e) ||
    (status !== undefined && (status >= 500 || status === 429))
  )
    return environment(
      name,
      place,
      `${service}: ${place ?? 'the service'} stayed throttled or unavailable through the SDK's ` +
        'retries; lower the concurrency or raise AWS_MAX_ATTEMPTS, then run again',
    );
  return undefined;
}

/**
 * The ledger's process is gone or closed the ledger (a LedgerClosedError thrown in the
 * coordinator crosses IPC as a RemoteLedgerError): waiting will not bring it back.
 */
function ledgerGone(e: object): e is LedgerIpcError | LedgerClosedError | RemoteLedgerError {
  return (
    e instanceof LedgerIpcError ||
    e instanceof LedgerClosedError ||
    (e instanceof RemoteLedgerError && e.remoteName === 'LedgerClosedError')
  );
}

function environment(
  code: string | undefined,
  place: string | undefined,
  message: string,
): EnvironmentFault {
  return {
    kind: 'environment',
    ...(code === undefined ? {} : { code }),
    ...(place === undefined ? {} : { place }),
    message,
  };
}

/** `error` and its causes, outermost first; cycles and deep chains are cut. */
function causes(error: unknown): object[] {
  const out: object[] = [];
  let e: unknown = error;
  while (typeof e === 'object' && e !== null && !out.includes(e) && out.length < 16) {
    out.push(e);
    e = (e as { cause?: unknown }).cause;
  }
  return out;
}

/** The most precise place an error chain names: an S3 object, a ledger directory, a file. */
function placeIn(chain: readonly object[]): string | undefined {
  for (const e of chain) {
    const bucket = stringField(e, 'bucket');
    const key = stringField(e, 'key');
    if (bucket !== undefined && key !== undefined)
      return `s3://${bucket}/${key.replace(/^\/+/, '')}`;
    if (e instanceof LedgerWriteError) return e.dir;
  }
  for (const e of chain) {
    const path = stringField(e, 'path');
    if (path !== undefined) return parentOf(path);
  }
  return undefined;
}

function parentOf(path: string | undefined): string | undefined {
  if (path === undefined) return undefined;
  const cut = path.replace(/\/+$/, '').lastIndexOf('/');
  return cut <= 0 ? path : path.slice(0, cut);
}

function stringField(e: object, field: string): string | undefined {
  const v = (e as Record<string, unknown>)[field];
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function httpStatus(e: object): number | undefined {
  const meta = (e as { $metadata?: unknown }).$metadata;
  if (typeof meta !== 'object' || meta === null) return undefined;
  const status = (meta as { httpStatusCode?: unknown }).httpStatusCode;
  return typeof status === 'number' ? status : undefined;
}

/** The SDK marks errors its retry strategy would retry ($retryable) or that the server caused ($fault). */
function isRetryable(e: object): boolean {
  const { $retryable, $fault } = e as { $retryable?: unknown; $fault?: unknown };
  return (typeof $retryable === 'object' && $retryable !== null) || $fault === 'server';
}

function messageOf(e: object): string {
  const m = stringField(e, 'message');
  return m === undefined ? 'no message' : m.length > 200 ? `${m.slice(0, 200)}…` : m;
}

/** What a paused step is: for messages. */
export interface PausedStep {
  /** What it does, e.g. "writing output block /0/c/0/1/1". */
  what: string;
  /** Where, e.g. the output's location. */
  place: string;
}

/** A pause ended because the worker is stopping (abort, or another step's fault lasted). */
export class PauseInterrupted extends Error {
  override readonly name = 'PauseInterrupted';
  constructor(
    readonly step: PausedStep,
    options?: { cause?: unknown },
  ) {
    super(`${step.what} in ${step.place}: given up, the worker is stopping`, options);
  }
}

export interface PauseOptions {
  /** How long a run of environment faults is waited out before giving up. */
  pauseMs: number;
  /** Aborting ends a wait at once (PauseInterrupted). */
  signal: AbortSignal;
  /** Called once when a pause begins (not again for faults while paused). */
  onPause?: (step: PausedStep, fault: EnvironmentFault) => void;
  /** Called when a step works again after a pause. */
  onResume?: (step: PausedStep, pausedMs: number) => void;
  /** First retry delay; doubles up to maxDelayMs. */
  firstDelayMs?: number;
  maxDelayMs?: number;
}

/**
 * Runs idempotent steps through environment faults: a step that fails for the place's
 * fault is retried with backoff until it works or the pause has lasted `pauseMs`, when it
 * throws EnvironmentFaultError. Steps at one place (two chunks' block writes to the output)
 * wait out one pause, announced once and ended by the first of them that works; a step
 * elsewhere (the next chunk's read) neither ends nor extends it. The chunk's own errors
 * pass through at once.
 */
export class Pause {
  /** When each paused place began failing: steps at one place share its pause. */
  private readonly since = new Map<string, number>();

  constructor(private readonly o: PauseOptions) {}

  get paused(): boolean {
    return this.since.size > 0;
  }

  async run<T>(step: PausedStep, fn: () => Promise<T>): Promise<T> {
    let delay = this.o.firstDelayMs ?? 100;
    for (;;) {
      try {
        const value = await fn();
        const since = this.since.get(step.place);
        if (since !== undefined) {
          this.since.delete(step.place);
          this.o.onResume?.(step, Date.now() - since);
        }
        return value;
      } catch (error) {
        const f = classifyFault(error, step.place);
        if (f.kind === 'chunk') throw error;
        // A ledger whose process is gone does not come back: no point waiting for it.
        const gone = causes(error).some(ledgerGone);
        const now = Date.now();
        if (!this.since.has(step.place) && !gone && this.o.pauseMs > 0) {
          this.since.set(step.place, now);
          this.o.onPause?.(step, f);
        }
        const since = this.since.get(step.place) ?? now;
        const left = since + this.o.pauseMs - now;
        if (gone || left <= 0)
          throw new EnvironmentFaultError(f, step, now - since, { cause: error });
        // Only a wait is cut short: a step that works goes on while the worker stops (the
        // chunk before a hung one still completes).
        if (this.o.signal.aborted) throw new PauseInterrupted(step, { cause: error });
        await sleep(Math.min(delay, left), this.o.signal);
        delay = Math.min(delay * 2, this.o.maxDelayMs ?? 5000);
      }
    }
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done);
  });
}
