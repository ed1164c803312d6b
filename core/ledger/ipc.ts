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
import type { ChunkRow, Claim, Ledger } from './port.ts';

type Method = keyof Ledger;
type Args<M extends Method> = Parameters<Ledger[M]>;

/**
 * How one method crosses the channel, where JSON as it is will not do. Method syntax on
 * purpose: each entry is also read as a LooseWire, which only the table's type checks.
 */
interface Wire<M extends Method> {
  /** Client: the arguments as sent (default: as given). */
  send?(...args: Args<M>): unknown[];
  /** Server: calls the ledger and gives what the reply carries (default: its awaited result). */
  serve?(ledger: Ledger, args: Args<M>): Promise<unknown>;
  /** Client: what the method returns, from the reply (default: the reply's promise). */
  receive?(reply: Promise<unknown>): ReturnType<Ledger[M]>;
}

interface LooseWire {
  send?(...args: unknown[]): unknown[];
  serve?(ledger: Ledger, args: unknown[]): Promise<unknown>;
  receive?(reply: Promise<unknown>): unknown;
}

/**
 * The ledger methods served over IPC, the only place they are listed: the client's
 * methods and the server's dispatch are both made from it, and its type requires an
 * entry for every method of the Ledger port, so a new method is one line here.
 */
const WIRE: { readonly [M in Method]: Wire<M> } = {
  createJob: { send: (job, chunks) => [job, Array.from(chunks)] },
  getJob: {},
  claim: {},
  heartbeat: {},
  complete: {},
  release: {},
  fail: {},
  counts: {},
  list: {
    // Served as one array: a worker lists rarely, and never a million rows over IPC.
    serve: async (ledger, [jobId, status]) => {
      const rows: ChunkRow[] = [];
      for await (const row of ledger.list(jobId, status)) rows.push(row);
      return rows;
    },
    receive: async function* (reply) {
      yield* (await reply) as ChunkRow[];
    },
  },
  statuses: {},
  sweep: {},
  claimOutput: {},
  rearm: {},
};

const wireOf = (method: Method): LooseWire => WIRE[method];

export interface LedgerRequest {
  tessera: 'ledger';
  id: number;
  method: Method;
  args: unknown[];
}

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
    Object.hasOwn(WIRE, m.method) &&
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
  const args = unNull(req.args);
  const wire = wireOf(req.method);
  if (wire.serve) return wire.serve(ledger, args);
  // The ledger's own method, with the arguments its client sent for it.
  return (ledger[req.method] as (...a: unknown[]) => Promise<unknown>).apply(ledger, args);
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

/**
 * Every method of the Ledger port, installed on the prototype from WIRE: each sends its
 * (encoded) arguments through `call` and returns the (decoded) reply.
 */
abstract class LedgerCalls {
  protected abstract call(method: Method, args: unknown[]): Promise<unknown>;

  static {
    for (const method of Object.keys(WIRE) as Method[]) {
      const wire = wireOf(method);
      Object.defineProperty(LedgerCalls.prototype, method, {
        configurable: true,
        writable: true,
        value(this: LedgerCalls, ...args: unknown[]): unknown {
          const reply = this.call(method, wire.send ? wire.send(...args) : args);
          return wire.receive ? wire.receive(reply) : reply;
        },
      });
    }
  }
}

// What the static block above installed: WIRE's type names every Ledger method.
const LedgerCallsBase = LedgerCalls as abstract new () => LedgerCalls & Ledger;

/** A Ledger whose calls are answered by serveLedger on the other end of `endpoint`. */
export class IpcLedgerClient extends LedgerCallsBase {
  private nextId = 1;
  private readonly waiting = new Map<number, Waiter>();
  private closed = false;

  constructor(private readonly endpoint: IpcEndpoint) {
    super();
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

  protected call(method: Method, args: unknown[]): Promise<unknown> {
    return new Promise((resolve, reject) => {
      if (this.closed || this.endpoint.connected === false || !this.endpoint.send) {
        reject(
          new LedgerIpcError(`cannot send ${method}: the channel to the ledger process is closed`),
        );
        return;
      }
      const id = this.nextId++;
      this.waiting.set(id, { method, resolve, reject });
      const req: LedgerRequest = { tessera: 'ledger', id, method, args };
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
