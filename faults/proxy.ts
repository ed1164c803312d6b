// A fault-injecting HTTP proxy on loopback, in front of s3rver or DynamoDB Local. Workers
// get its address as their endpoint (AWS_ENDPOINT_URL_S3 / _DYNAMODB), so every request
// they make passes through it and the production clients, retry strategies and adapters
// run unchanged. It can:
//
//   forward       pass the request through (the default)
//   error         answer as the service does when it throttles or fails (DynamoDB
//                 ThrottlingException / ProvisionedThroughputExceeded / 500, S3 SlowDown
//                 503 / InternalError 500) without forwarding
//   drop-before   cut the connection without forwarding (the request never happened)
//   drop-after    forward, then cut the connection instead of answering (it happened,
//                 the caller does not know)
//   hold          keep the request unanswered and unforwarded, and tell the controller:
//                 a kill point. The fault runner SIGKILLs the worker while it waits there,
//                 so "killed just before its complete reached the ledger" is exact (or
//                 SIGSTOPs it, and lets the request through when it wakes).
//
// Requests are classified (S3 object key; DynamoDB operation and, for chunk rows, the
// ledger transition: claim, heartbeat, complete, release, fail) so rules can aim at them.
// The signature stays valid: the Host header is passed through unchanged.

import {
  Agent,
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Rng } from './rng.ts';

export type Service = 's3' | 'dynamodb';

export type LedgerOp =
  | 'claim'
  | 'heartbeat'
  | 'complete'
  | 'release'
  | 'fail'
  | 'sweep'
  | 'create'
  | 'read'
  | 'other';

export interface ProxiedRequest {
  readonly seq: number;
  readonly service: Service;
  readonly method: string;
  /** S3: the object key (without bucket); DynamoDB: the operation (UpdateItem, ...). */
  readonly target: string;
  readonly bucket?: string;
  /** DynamoDB chunk-row writes: what the ledger is doing, and to which chunk index. */
  readonly ledger?: { op: LedgerOp; index?: number; status?: string };
  readonly bytes: number;
}

export type ErrorFault = 'throttle' | 'provisioned' | 'slowdown' | 'server-error' | 'access-denied';
export type Fault = ErrorFault | 'drop-before' | 'drop-after';
export type Verdict = 'forward' | 'hold' | Fault;

export interface ProxyOptions {
  service: Service;
  /** The emulator's endpoint, e.g. http://127.0.0.1:4569. */
  upstream: string;
  /** Random faults: each request draws one with probability `rate`. */
  random?: { rng: Rng; rate: number; faults: readonly Fault[] };
  /** Aimed faults and kill points; undefined falls through to the random faults. */
  rule?: (r: ProxiedRequest) => Verdict | undefined;
  /** Called for every request with what was done to it (after the decision). */
  onRequest?: (r: ProxiedRequest, verdict: Verdict) => void;
  /** Milliseconds to sit on a request before forwarding it (a slow network); default 0. */
  delayMs?: (r: ProxiedRequest) => number;
  /** Runs after the upstream answered and before the answer is sent on (a stall point). */
  beforeReply?: (r: ProxiedRequest) => Promise<void> | void;
}

export interface ProxyStats {
  requests: number;
  forwarded: number;
  held: number;
  faults: Record<Fault, number>;
}

const emptyFaults = (): Record<Fault, number> => ({
  throttle: 0,
  provisioned: 0,
  slowdown: 0,
  'server-error': 0,
  'access-denied': 0,
  'drop-before': 0,
  'drop-after': 0,
});

export class FaultProxy {
  readonly stats: ProxyStats = { requests: 0, forwarded: 0, held: 0, faults: emptyFaults() };
  private server: Server | undefined;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly upstream: URL;
  private readonly held = new Map<ServerResponse, { req: IncomingMessage; body: Buffer }>();
  private seq = 0;
  rule: ProxyOptions['rule'];

  constructor(private readonly o: ProxyOptions) {
    this.upstream = new URL(o.upstream);
    this.rule = o.rule;
  }

  async start(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 30_000;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.server = server;
    return this.endpoint;
  }

  get endpoint(): string {
    const a = this.server?.address() as AddressInfo | undefined;
    if (!a) throw new Error('proxy not started');
    return `http://127.0.0.1:${a.port}`;
  }

  /** Cuts every held request (its worker is dead or the scenario is over). */
  dropHeld(): void {
    for (const res of this.held.keys()) res.socket?.destroy();
    this.held.clear();
  }

  /** Lets every held request through after all (a stalled worker waking up); returns how many. */
  async releaseHeld(): Promise<number> {
    const held = [...this.held];
    this.held.clear();
    await Promise.all(held.map(([res, { req, body }]) => this.forward(req, body, res, false)));
    return held.length;
  }

  async stop(): Promise<void> {
    this.dropHeld();
    this.agent.destroy();
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const info = classify(this.o.service, this.seq++, req, body);
    this.stats.requests++;
    let verdict = this.rule?.(info);
    if (verdict === undefined) {
      const r = this.o.random;
      verdict = r && r.rate > 0 && r.rng.chance(r.rate) ? r.rng.pick(r.faults) : 'forward';
    }
    this.o.onRequest?.(info, verdict);
    switch (verdict) {
      case 'forward': {
        this.stats.forwarded++;
        const delay = this.o.delayMs?.(info) ?? 0;
        if (delay > 0) await new Promise((r) => setTimeout(r, delay));
        await this.forward(req, body, res, false, info);
        return;
      }
      case 'hold':
        this.stats.held++;
        this.held.set(res, { req, body });
        res.on('close', () => this.held.delete(res));
        return;
      case 'drop-before':
        this.stats.faults[verdict]++;
        req.socket.destroy();
        return;
      case 'drop-after':
        this.stats.faults[verdict]++;
        await this.forward(req, body, res, true);
        return;
      default:
        this.stats.faults[verdict]++;
        answerError(this.o.service, verdict, req, res);
    }
  }

  private forward(
    req: IncomingMessage,
    body: Buffer,
    res: ServerResponse,
    dropAnswer: boolean,
    info?: ProxiedRequest,
  ): Promise<void> {
    return new Promise((resolve) => {
      const headers = { ...req.headers };
      // The body is re-sent whole; chunked framing from the client does not apply.
      delete headers['transfer-encoding'];
      headers['content-length'] = String(body.length);
      const up = request(
        {
          host: this.upstream.hostname,
          port: this.upstream.port,
          method: req.method,
          path: req.url,
          headers,
          agent: this.agent,
        },
        (upRes) => {
          const parts: Buffer[] = [];
          upRes.on('data', (c: Buffer) => parts.push(c));
          upRes.on('end', () => {
            void (async () => {
              if (info && this.o.beforeReply) await this.o.beforeReply(info);
              if (dropAnswer) req.socket.destroy();
              else {
                res.writeHead(upRes.statusCode ?? 502, upRes.headers);
                res.end(Buffer.concat(parts));
              }
              resolve();
            })();
          });
          upRes.on('error', () => {
            req.socket.destroy();
            resolve();
          });
        },
      );
      up.on('error', () => {
        // The emulator went away (a scenario stopping): the caller sees a reset.
        req.socket.destroy();
        resolve();
      });
      up.end(body);
    });
  }
}

function answerError(
  service: Service,
  fault: ErrorFault,
  req: IncomingMessage,
  res: ServerResponse,
): void {
  if (service === 'dynamodb') {
    const [status, type, message] =
      fault === 'server-error'
        ? [500, 'InternalServerError', 'Internal server error (injected)']
        : fault === 'access-denied'
          ? [
              400,
              'AccessDeniedException',
              'User is not authorized to perform this action (injected)',
            ]
          : fault === 'provisioned'
            ? [
                400,
                'ProvisionedThroughputExceededException',
                'The level of configured provisioned throughput for the table was exceeded (injected)',
              ]
            : [
                400,
                'ThrottlingException',
                'Rate of requests exceeds the allowed throughput (injected)',
              ];
    const body = JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message });
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.0',
      'x-amzn-errortype': type,
      'x-amzn-requestid': `injected-${Date.now()}`,
      'content-length': Buffer.byteLength(body),
    });
    res.end(body);
    return;
  }
  const [status, code, message] =
    fault === 'server-error'
      ? [500, 'InternalError', 'We encountered an internal error. Please try again. (injected)']
      : fault === 'access-denied'
        ? [403, 'AccessDenied', 'Access Denied (injected)']
        : [503, 'SlowDown', 'Please reduce your request rate. (injected)'];
  const body =
    req.method === 'HEAD'
      ? ''
      : `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><RequestId>injected</RequestId></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'x-amz-request-id': 'injected',
    'content-length': Buffer.byteLength(body),
  });
  res.end(body);
}

function classify(
  service: Service,
  seq: number,
  req: IncomingMessage,
  body: Buffer,
): ProxiedRequest {
  const method = req.method ?? 'GET';
  if (service === 's3') {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const [, bucket = '', ...rest] = path.split('/');
    const key = decodeURIComponent(rest.join('/'));
    return { seq, service, method, target: key, bucket, bytes: body.length };
  }
  const target = String(req.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
  return { seq, service, method, target, bytes: body.length, ...ledgerOp(target, body) };
}

interface UpdateJson {
  Key?: { sk?: { S?: string } };
  UpdateExpression?: string;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Record<string, { S?: string }>;
}

/** What a DynamoDB request does to the ledger, read from the adapter's expressions. */
function ledgerOp(target: string, body: Buffer): { ledger?: ProxiedRequest['ledger'] } {
  if (target === 'Query' || target === 'GetItem') return { ledger: { op: 'read' } };
  if (target === 'BatchWriteItem' || target === 'PutItem') return { ledger: { op: 'create' } };
  let json: { TransactItems?: { Update?: UpdateJson }[] } & UpdateJson;
  try {
    json = JSON.parse(body.toString('utf8')) as typeof json;
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return { ledger: { op: 'other' } };
  }
  const u = target === 'TransactWriteItems' ? json.TransactItems?.[0]?.Update : json;
  const sk = u?.Key?.sk?.S;
  if (!u || !sk?.startsWith('C#')) return { ledger: { op: 'other' } };
  const index = Number(sk.slice(2));
  const names = u.ExpressionAttributeNames ?? {};
  const values = u.ExpressionAttributeValues ?? {};
  const set = new Map<string, string | undefined>();
  const setClause = /SET (.*?)(?: REMOVE | ADD | DELETE |$)/.exec(u.UpdateExpression ?? '')?.[1];
  for (const m of (setClause ?? '').matchAll(/(#\w+)\s*=\s*(:\w+)/g)) {
    set.set(names[m[1]!] ?? m[1]!, values[m[2]!]?.S);
  }
  const status = set.get('status');
  const op: LedgerOp =
    status === 'RUNNING'
      ? 'claim'
      : status === 'DONE' || status === 'SKIPPED'
        ? 'complete'
        : status === undefined && set.has('leaseExpiresAt')
          ? 'heartbeat'
          : status === 'PENDING' && !set.has('lastError')
            ? 'release'
            : status === 'PENDING' || status === 'FAILED'
              ? /^(lease of .* expired|poison: )/.test(set.get('lastError') ?? '')
                ? 'sweep'
                : 'fail'
              : 'other';
  return { ledger: { op, index, ...(status ? { status } : {}) } };
}
