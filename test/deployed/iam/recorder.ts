// A recording proxy for the deployment twin. Every component (a Lambda process, a worker)
// gets its own loopback endpoint as AWS_ENDPOINT_URL; each request it makes is classified
// into the IAM authorization(s) AWS would evaluate for it (action, resource ARN, the
// condition keys that matter), recorded under that component, and forwarded unchanged to
// the emulator that serves it:
//
//   component ─► 127.0.0.1:<port for component> ─┬─ X-Amz-Target DynamoDB_20120810.* ─► DynamoDB Local
//                                                 ├─ X-Amz-Target AWSStepFunctions.*  ─► Step Functions
//                                                 ├─ /v1/<operation>                  ─► Batch
//                                                 └─ anything else (path-style S3)    ─► s3rver
//
// The Host header and the body travel byte for byte, so the SigV4 signature stays valid
// (faults/proxy.ts does the same in front of one emulator). The mapping from request to
// authorization lives in ./actions.ts; evaluate.ts judges the recorded calls.

import { Agent, createServer, type IncomingMessage, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  type ArnContext,
  type AwsService,
  classifyRequest,
  type KeySchemas,
  type RecordedCall,
  type TableKeySchema,
} from './actions.ts';

export type { AwsService, KeySchemas, RecordedCall, TableKeySchema } from './actions.ts';

export interface RecorderOptions {
  upstream: { s3: string; dynamodb: string; sfn?: string; batch?: string };
  /** Account and region in the ARNs the recorder builds (table, queue, job definition). */
  account?: string;
  region?: string;
  partition?: string;
  /**
   * Partition key attribute per table (and per index) for dynamodb:LeadingKeys; see
   * keySchemasFromTemplate. A table missing here is described once through the upstream.
   */
  keySchemas?: KeySchemas;
  /** Components to give an endpoint up front. */
  components?: readonly string[];
  /** Endpoints kept ready for components endpointFor meets later (default 8). */
  spares?: number;
}

export interface Recorder {
  /** The AWS_ENDPOINT_URL for `component`'s process: a loopback server of its own. */
  endpointFor(component: string): string;
  /** Every authorization recorded so far, in request order. */
  readonly calls: RecordedCall[];
  stop(): Promise<void>;
}

export class RecorderError extends Error {
  override readonly name = 'RecorderError';
}

export async function startRecorder(o: RecorderOptions): Promise<Recorder> {
  const r = new RecordingProxy(o);
  await r.start(o.components ?? [], o.spares ?? 8);
  return r;
}

interface Endpoint {
  server: Server;
  url: string;
  /** The component it records for; set when it is handed out. */
  component: string;
}

class RecordingProxy implements Recorder {
  readonly calls: RecordedCall[] = [];
  private readonly servers = new Map<string, Endpoint>();
  private readonly spares: Endpoint[] = [];
  private readonly all: Server[] = [];
  private stopped = false;
  private readonly agent = new Agent({ keepAlive: true, maxSockets: 64 });
  private readonly arn: ArnContext;
  private readonly keySchemas = new Map<string, TableKeySchema>();
  private readonly described = new Map<string, Promise<TableKeySchema | undefined>>();

  constructor(private readonly o: RecorderOptions) {
    this.arn = {
      account: o.account ?? '000000000000',
      region: o.region ?? 'us-east-1',
      partition: o.partition ?? 'aws',
    };
    for (const [t, s] of Object.entries(o.keySchemas ?? {})) this.keySchemas.set(t, s);
  }

  endpointFor(component: string): string {
    const known = this.servers.get(component);
    if (known) return known.url;
    // endpointFor is synchronous for the twin, and a server learns its port only once it
    // listens: so servers are started ahead (startRecorder) and handed out from a pool,
    // which refills in the background.
    const spare = this.spares.shift();
    if (!spare)
      throw new RecorderError(
        `no spare endpoint left for component "${component}": list the components in startRecorder({ components }) or raise spares`,
      );
    spare.component = component;
    this.servers.set(component, spare);
    void this.addSpare();
    return spare.url;
  }

  /** Starts `components`' servers and the spare pool. */
  async start(components: readonly string[], spares: number): Promise<void> {
    await Promise.all(
      components.map(async (c) => {
        const s = await this.listen();
        s.component = c;
        this.servers.set(c, s);
      }),
    );
    await Promise.all(Array.from({ length: spares }, () => this.addSpare()));
  }

  private async addSpare(): Promise<void> {
    const s = await this.listen();
    if (this.stopped) s.server.close();
    else this.spares.push(s);
  }

  private async listen(): Promise<Endpoint> {
    const endpoint: Endpoint = { server: createServer(), url: '', component: '' };
    const server = endpoint.server;
    server.on('request', (req, res) => {
      void this.handle(endpoint.component, req).then(
        (answer) => {
          if (!answer) {
            res.socket?.destroy();
            return;
          }
          res.writeHead(answer.status, answer.headers);
          res.end(answer.body);
        },
        (e: unknown) => {
          // A bug in classification must not look like an AWS error to the component.
          const body = `recorder: ${e instanceof Error ? e.message : String(e)}`;
          res.writeHead(599, {
            'content-type': 'text/plain',
            'content-length': Buffer.byteLength(body),
          });
          res.end(body);
        },
      );
    });
    server.keepAliveTimeout = 30_000;
    this.all.push(server);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', resolve);
    });
    endpoint.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return endpoint;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.agent.destroy();
    await Promise.all(
      this.all.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.closeAllConnections();
            server.close(() => resolve());
          }),
      ),
    );
    this.servers.clear();
    this.spares.length = 0;
  }

  private async handle(
    component: string,
    req: IncomingMessage,
  ): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer } | undefined> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const head = {
      method: req.method ?? 'GET',
      url: req.url ?? '/',
      headers: req.headers,
    };
    const target = String(req.headers['x-amz-target'] ?? '');
    const service: AwsService = target.startsWith('DynamoDB_')
      ? 'dynamodb'
      : target.startsWith('AWSStepFunctions.')
        ? 'states'
        : head.url.startsWith('/v1/')
          ? 'batch'
          : 's3';
    if (service === 'dynamodb') await this.learnTables(head.headers, body);
    const calls = classifyRequest(service, head, body, {
      arn: this.arn,
      keySchema: (table) => this.keySchemas.get(table),
    });
    for (const c of calls) this.calls.push({ component, ...c });
    return this.forward(this.upstreamFor(service), head, body);
  }

  private upstreamFor(service: AwsService): URL {
    const u = this.o.upstream;
    const url =
      service === 'dynamodb'
        ? u.dynamodb
        : service === 's3'
          ? u.s3
          : service === 'states'
            ? u.sfn
            : u.batch;
    if (!url)
      throw new RecorderError(
        `a component called ${service === 'states' ? 'Step Functions' : 'Batch'}, but the recorder has no upstream for it: pass upstream.${service === 'states' ? 'sfn' : 'batch'}`,
      );
    return new URL(url);
  }

  /** Key schemas of the tables a DynamoDB request names, described once when not given. */
  private async learnTables(headers: IncomingMessage['headers'], body: Buffer): Promise<void> {
    for (const table of tablesNamed(body)) {
      if (this.keySchemas.has(table)) continue;
      let p = this.described.get(table);
      if (!p) {
        p = this.describeTable(headers, table);
        this.described.set(table, p);
      }
      const s = await p;
      if (s) this.keySchemas.set(table, s);
    }
  }

  /**
   * DescribeTable through the upstream, reusing the caller's credential scope: DynamoDB
   * Local keys its tables by access key and region and does not check the signature.
   */
  private async describeTable(
    headers: IncomingMessage['headers'],
    table: string,
  ): Promise<TableKeySchema | undefined> {
    const body = Buffer.from(JSON.stringify({ TableName: table }));
    const answer = await this.forward(
      new URL(this.o.upstream.dynamodb),
      {
        method: 'POST',
        url: '/',
        headers: {
          host: headers.host,
          authorization: headers.authorization,
          'x-amz-date': headers['x-amz-date'],
          'content-type': 'application/x-amz-json-1.0',
          'x-amz-target': 'DynamoDB_20120810.DescribeTable',
        },
      },
      body,
    );
    if (answer?.status !== 200) return undefined;
    const d = JSON.parse(answer.body.toString('utf8')) as {
      Table?: {
        KeySchema?: { AttributeName: string; KeyType: string }[];
        GlobalSecondaryIndexes?: {
          IndexName: string;
          KeySchema: { AttributeName: string; KeyType: string }[];
        }[];
        LocalSecondaryIndexes?: {
          IndexName: string;
          KeySchema: { AttributeName: string; KeyType: string }[];
        }[];
      };
    };
    const hashOf = (ks: { AttributeName: string; KeyType: string }[] | undefined) =>
      ks?.find((k) => k.KeyType === 'HASH')?.AttributeName;
    const hash = hashOf(d.Table?.KeySchema);
    if (!hash) return undefined;
    const indexes: Record<string, string> = {};
    for (const i of [
      ...(d.Table?.GlobalSecondaryIndexes ?? []),
      ...(d.Table?.LocalSecondaryIndexes ?? []),
    ]) {
      const h = hashOf(i.KeySchema);
      if (h) indexes[i.IndexName] = h;
    }
    return { hash, indexes };
  }

  private forward(
    upstream: URL,
    head: { method: string; url: string; headers: IncomingMessage['headers'] },
    body: Buffer,
  ): Promise<{ status: number; headers: IncomingMessage['headers']; body: Buffer } | undefined> {
    return new Promise((resolve) => {
      const headers = { ...head.headers };
      // The body is re-sent whole; the client's chunked framing does not apply.
      delete headers['transfer-encoding'];
      headers['content-length'] = String(body.length);
      const up = request(
        {
          host: upstream.hostname,
          port: upstream.port,
          method: head.method,
          path: head.url,
          headers,
          agent: this.agent,
        },
        (upRes) => {
          const parts: Buffer[] = [];
          upRes.on('data', (c: Buffer) => parts.push(c));
          upRes.on('end', () =>
            resolve({
              status: upRes.statusCode ?? 502,
              headers: upRes.headers,
              body: Buffer.concat(parts),
            }),
          );
          upRes.on('error', () => resolve(undefined));
        },
      );
      // The emulator went away (the twin stopping): the caller sees a reset.
      up.on('error', () => resolve(undefined));
      up.end(body);
    });
  }
}

/** Table names a DynamoDB request body mentions (TableName, RequestItems, TransactItems). */
function tablesNamed(body: Buffer): string[] {
  let json: {
    TableName?: string;
    RequestItems?: Record<string, unknown>;
    TransactItems?: Record<string, { TableName?: string }>[];
  };
  try {
    json = JSON.parse(body.toString('utf8')) as typeof json;
  } catch (e) {
    if (e instanceof SyntaxError) return [];
    throw e;
  }
  const names = new Set<string>();
  if (json.TableName) names.add(json.TableName);
  for (const t of Object.keys(json.RequestItems ?? {})) names.add(t);
  for (const item of json.TransactItems ?? [])
    for (const op of Object.values(item)) if (op.TableName) names.add(op.TableName);
  return [...names].map((n) => n.replace(/^arn:[^:]+:dynamodb:[^:]*:[^:]*:table\//, ''));
}
