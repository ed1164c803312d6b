// The ledger across a process boundary: a local run's parent owns the LocalLedger (one
// journal, one writer) and its forked workers reach it through the Node IPC channel.
//
//   worker (IpcLedgerClient) ── {tessera:'ledger', id, method, args} ──► parent (serveLedger)
//                            ◄── {tessera:'ledger-reply', id, ok, value | error} ──
//
// Messages are JSON (Node's default IPC serialization), tagged so they share the channel
// with the pipeline's own messages. Errors a caller acts on (LeaseLostError with its row,
// JobNotFoundError, …) are rebuilt as the same classes; anything else arrives as
// RemoteLedgerError. Either side may be the parent: serveLedger and IpcLedgerClient take
// a ChildProcess or `process` alike.

import {
  ChunkNotFoundError,
  InvalidJobError,
  JobNotFoundError,
  type LeaseAction,
  LeaseLostError,
  LedgerIpcError,
  LedgerWriteError,
  OutputClaimedError,
  RemoteLedgerError,
  UnknownChunkIdsError,
} from './errors.ts';
import type {
  ChunkRef,
  ChunkRow,
  ChunkStatus,
  Claim,
  JobSpec,
  Ledger,
  RearmSelection,
  StatusCounts,
} from './port.ts';

/** The one method table both sides are typed from. */
interface Methods {
  createJob: {
    args: [job: JobSpec, chunks: ChunkRef[]];
    result: { created: boolean; job: JobSpec };
  };
  getJob: { args: [jobId: string]; result: JobSpec | undefined };
  claim: {
    args: [jobId: string, owner: string, o?: { startIndex?: number; now?: number }];
    result: Claim | undefined;
  };
  heartbeat: { args: [claim: Claim, o?: { now?: number }]; result: Claim };
  complete: { args: [claim: Claim, o?: { skipped?: boolean }]; result: undefined };
  release: { args: [claim: Claim]; result: undefined };
  fail: { args: [claim: Claim, error: string]; result: ChunkRow };
  counts: { args: [jobId: string]; result: StatusCounts };
  /** Served as one array: a worker lists rarely, and never a million rows over IPC. */
  list: { args: [jobId: string, status?: ChunkStatus]; result: ChunkRow[] };
  sweep: {
    args: [jobId: string, o?: { now?: number }];
    result: { expired: number; failed: number };
  };
  claimOutput: {
    args: [url: string, jobId: string, o?: { replacing?: string }];
    result: undefined;
  };
  rearm: { args: [jobId: string, which: RearmSelection]; result: { rearmed: number } };
}

type Method = keyof Methods;

const METHODS: readonly Method[] = [
  'createJob',
  'getJob',
  'claim',
  'heartbeat',
  'complete',
  'release',
  'fail',
  'counts',
  'list',
  'sweep',
  'claimOutput',
  'rearm',
];

export type LedgerRequest = {
  [M in Method]: { tessera: 'ledger'; id: number; method: M; args: Methods[M]['args'] };
}[Method];

export type WireError =
  | { name: 'LeaseLostError'; action: LeaseAction; claim: Claim; row: ChunkRow }
  | { name: 'JobNotFoundError'; jobId: string; chunkId?: string }
  | { name: 'ChunkNotFoundError'; jobId: string; chunkId: string; index: number }
  | { name: 'InvalidJobError'; jobId: string; field: string; detail: string }
  | { name: 'OutputClaimedError'; url: string; holder: string; jobId: string }
  | { name: 'LedgerWriteError'; dir: string; code?: string; op: string }
  | { name: 'UnknownChunkIdsError'; jobId: string; chunkIds: string[]; count: number }
  | { name: 'RangeError'; message: string }
  | { name: 'LedgerIpcError'; message: string }
  | { name: 'RemoteError'; remoteName: string; message: string };

export type LedgerReply =
  | { tessera: 'ledger-reply'; id: number; ok: true; value?: unknown }
  | { tessera: 'ledger-reply'; id: number; ok: false; error: WireError };

/**
 * What both ends need of a channel; a ChildProcess and a forked child's `process` both
 * fit. `process.send` is absent when the process was not forked with an IPC channel.
 */
export interface IpcEndpoint {
  send?(message: LedgerRequest | LedgerReply, callback?: (error: Error | null) => void): boolean;
  readonly connected?: boolean;
  on(event: 'message', listener: (message: unknown) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
  off(event: 'message', listener: (message: unknown) => void): unknown;
  off(event: 'disconnect', listener: () => void): unknown;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null;

export function toWire(err: unknown): WireError {
  if (err instanceof LeaseLostError) {
    return { name: 'LeaseLostError', action: err.action, claim: err.claim, row: err.row };
  }
  if (err instanceof JobNotFoundError) {
    const w: WireError = { name: 'JobNotFoundError', jobId: err.jobId };
    if (err.chunkId !== undefined) w.chunkId = err.chunkId;
    return w;
  }
  if (err instanceof ChunkNotFoundError) {
    return { name: 'ChunkNotFoundError', jobId: err.jobId, chunkId: err.chunkId, index: err.index };
  }
  if (err instanceof InvalidJobError) {
    return { name: 'InvalidJobError', jobId: err.jobId, field: err.field, detail: err.detail };
  }
  if (err instanceof OutputClaimedError) {
    return { name: 'OutputClaimedError', url: err.url, holder: err.holder, jobId: err.jobId };
  }
  if (err instanceof LedgerWriteError) {
    // A worker must see the environment's fault as such, not as its chunk's (see errors.ts).
    const w: WireError = { name: 'LedgerWriteError', dir: err.dir, op: err.op };
    if (err.code !== undefined) w.code = err.code;
    return w;
  }
  if (err instanceof UnknownChunkIdsError) {
    return {
      name: 'UnknownChunkIdsError',
      jobId: err.jobId,
      chunkIds: [...err.chunkIds],
      count: err.count,
    };
  }
  if (err instanceof RangeError) return { name: 'RangeError', message: err.message };
  if (err instanceof LedgerIpcError) return { name: 'LedgerIpcError', message: err.message };
  if (err instanceof Error)
    return { name: 'RemoteError', remoteName: err.name, message: err.message };
  return { name: 'RemoteError', remoteName: typeof err, message: String(err) };
}

export function fromWire(w: WireError): Error {
  switch (w.name) {
    case 'LeaseLostError':
      return new LeaseLostError(w.action, w.claim, w.row);
    case 'JobNotFoundError':
      return new JobNotFoundError(w.jobId, w.chunkId);
    case 'ChunkNotFoundError':
      return new ChunkNotFoundError(w.jobId, w.chunkId, w.index);
    case 'InvalidJobError':
      return new InvalidJobError(w.jobId, w.field, w.detail);
    case 'OutputClaimedError':
      return new OutputClaimedError(w.url, w.holder, w.jobId);
    case 'LedgerWriteError':
      return new LedgerWriteError(w.dir, w.code, w.op);
    case 'UnknownChunkIdsError':
      return new UnknownChunkIdsError(w.jobId, w.chunkIds, w.count);
    case 'RangeError':
      return new RangeError(w.message);
    case 'LedgerIpcError': {
      // Already prefixed by the other side's constructor.
      const e = new LedgerIpcError('');
      e.message = w.message;
      return e;
    }
    case 'RemoteError':
      return new RemoteLedgerError(w.remoteName, w.message);
  }
}

function isRequest(m: unknown): m is LedgerRequest {
  return (
    isRecord(m) &&
    m.tessera === 'ledger' &&
    typeof m.id === 'number' &&
    typeof m.method === 'string' &&
    (METHODS as readonly string[]).includes(m.method) &&
    Array.isArray(m.args)
  );
}

function isReply(m: unknown): m is LedgerReply {
  return isRecord(m) && m.tessera === 'ledger-reply' && typeof m.id === 'number';
}

/** JSON turns an omitted optional argument into null; the ledger expects undefined. */
const unNull = <T extends unknown[]>(args: T): T =>
  args.map((a) => (a === null ? undefined : a)) as T;

async function dispatch(ledger: Ledger, req: LedgerRequest): Promise<unknown> {
  switch (req.method) {
    case 'createJob': {
      const [job, chunks] = unNull(req.args);
      return ledger.createJob(job, chunks);
    }
    case 'getJob':
      return ledger.getJob(...unNull(req.args));
    case 'claim':
      return ledger.claim(...unNull(req.args));
    case 'heartbeat':
      return ledger.heartbeat(...unNull(req.args));
    case 'complete':
      return ledger.complete(...unNull(req.args));
    case 'release':
      return ledger.release(...unNull(req.args));
    case 'fail':
      return ledger.fail(...unNull(req.args));
    case 'counts':
      return ledger.counts(...unNull(req.args));
    case 'list': {
      const rows: ChunkRow[] = [];
      for await (const row of ledger.list(...unNull(req.args))) rows.push(row);
      return rows;
    }
    case 'sweep':
      return ledger.sweep(...unNull(req.args));
    case 'claimOutput':
      return ledger.claimOutput(...unNull(req.args));
    case 'rearm':
      return ledger.rearm(...unNull(req.args));
  }
}

/**
 * Answers ledger requests arriving on `endpoint` until the returned function is called.
 * A reply that cannot be delivered (the worker died meanwhile) is dropped: whatever the
 * call did stands, and the owner's abandoned chunks are the caller's to re-drive (LocalLedger's
 * abandonOwners, or lease expiry).
 */
export function serveLedger(ledger: Ledger, endpoint: IpcEndpoint): () => void {
  const reply = (r: LedgerReply): void => {
    if (!endpoint.send || endpoint.connected === false) return;
    endpoint.send(r, () => {
      // Delivery failed only if the peer is gone; see above.
    });
  };
  const onMessage = (m: unknown): void => {
    if (!isRecord(m) || m.tessera !== 'ledger') return;
    const id = typeof m.id === 'number' ? m.id : -1;
    if (!isRequest(m)) {
      const error = toWire(
        new LedgerIpcError(`malformed request ${JSON.stringify(m).slice(0, 200)}`),
      );
      reply({ tessera: 'ledger-reply', id, ok: false, error });
      return;
    }
    dispatch(ledger, m).then(
      (value) => reply({ tessera: 'ledger-reply', id, ok: true, value }),
      (err: unknown) => reply({ tessera: 'ledger-reply', id, ok: false, error: toWire(err) }),
    );
  };
  endpoint.on('message', onMessage);
  return () => {
    endpoint.off('message', onMessage);
  };
}

interface Waiter {
  method: Method;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

/** A Ledger whose calls are answered by serveLedger on the other end of `endpoint`. */
export class IpcLedgerClient implements Ledger {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closed = false;

  constructor(private readonly endpoint: IpcEndpoint) {
    if (!endpoint.send) {
      throw new LedgerIpcError(
        'this process has no IPC channel; start it with child_process.fork from the process that owns the ledger',
      );
    }
    endpoint.on('message', this.onMessage);
    endpoint.on('disconnect', this.onDisconnect);
  }

  /** Detaches from the channel (so it can close) and fails calls still waiting. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.endpoint.off('message', this.onMessage);
    this.endpoint.off('disconnect', this.onDisconnect);
    this.failAll('the client was closed');
  }

  createJob(job: JobSpec, chunks: Iterable<ChunkRef>): Promise<{ created: boolean; job: JobSpec }> {
    return this.call('createJob', [job, Array.from(chunks)]);
  }
  getJob(jobId: string): Promise<JobSpec | undefined> {
    return this.call('getJob', [jobId]);
  }
  claim(
    jobId: string,
    owner: string,
    o?: { startIndex?: number; now?: number },
  ): Promise<Claim | undefined> {
    return this.call('claim', [jobId, owner, o]);
  }
  heartbeat(claim: Claim, o?: { now?: number }): Promise<Claim> {
    return this.call('heartbeat', [claim, o]);
  }
  async complete(claim: Claim, o?: { skipped?: boolean }): Promise<void> {
    await this.call('complete', [claim, o]);
  }
  async release(claim: Claim): Promise<void> {
    await this.call('release', [claim]);
  }
  fail(claim: Claim, error: string): Promise<ChunkRow> {
    return this.call('fail', [claim, error]);
  }
  counts(jobId: string): Promise<StatusCounts> {
    return this.call('counts', [jobId]);
  }
  async *list(jobId: string, status?: ChunkStatus): AsyncIterable<ChunkRow> {
    yield* await this.call('list', [jobId, status]);
  }
  sweep(jobId: string, o?: { now?: number }): Promise<{ expired: number; failed: number }> {
    return this.call('sweep', [jobId, o]);
  }
  async claimOutput(url: string, jobId: string, o?: { replacing?: string }): Promise<void> {
    await this.call('claimOutput', [url, jobId, o]);
  }
  rearm(jobId: string, which: RearmSelection): Promise<{ rearmed: number }> {
    return this.call('rearm', [jobId, which]);
  }

  private call<M extends Method>(
    method: M,
    args: Methods[M]['args'],
  ): Promise<Methods[M]['result']> {
    return new Promise((resolve, reject) => {
      if (this.closed || this.endpoint.connected === false || !this.endpoint.send) {
        reject(
          new LedgerIpcError(`cannot send ${method}: the channel to the ledger process is closed`),
        );
        return;
      }
      const id = this.nextId++;
      // The reply's value is whatever the server's ledger returned for this same method.
      this.waiting.set(id, { method, resolve: resolve as (v: unknown) => void, reject });
      const req = { tessera: 'ledger', id, method, args } as LedgerRequest;
      this.endpoint.send(req, (err) => {
        if (!err) return;
        this.waiting.delete(id);
        reject(new LedgerIpcError(`sending ${method} failed: ${err.message}`, { cause: err }));
      });
    });
  }

  private readonly onMessage = (m: unknown): void => {
    if (!isReply(m)) return;
    const w = this.waiting.get(m.id);
    if (!w) return;
    this.waiting.delete(m.id);
    if (m.ok) w.resolve(m.value);
    else w.reject(fromWire(m.error));
  };

  private readonly onDisconnect = (): void => {
    this.failAll('the channel to the ledger process closed');
  };

  private failAll(why: string): void {
    for (const [id, w] of this.waiting) {
      this.waiting.delete(id);
      w.reject(
        new LedgerIpcError(
          `${why} before ${w.method} was answered; whether it took effect is unknown (a claim ` +
            'may be held until its lease expires or the owner is abandoned)',
        ),
      );
    }
  }
}
