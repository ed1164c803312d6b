// A fake EC2 instance metadata service (IMDSv2) on loopback: a token on PUT
// /latest/api/token, and /latest/meta-data/spot/instance-action answering 404 until
// `notice()` and the interruption notice after, as EC2 does two minutes before a reclaim.
// Workers reach it through AWS_EC2_METADATA_SERVICE_ENDPOINT (adapters/aws/spot-notice.ts).

import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeImds {
  endpoint: string;
  /** From now on, answer the interruption notice. */
  notice(): void;
  /** When the notice was first served to a worker (epoch ms), if it was. */
  servedAt(): number | undefined;
  stop(): Promise<void>;
}

export async function startImds(): Promise<FakeImds> {
  let armed = false;
  let served: number | undefined;
  const server = createServer((req, res) => {
    if (req.method === 'PUT' && req.url === '/latest/api/token') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('fake-imds-token');
      return;
    }
    if (req.url === '/latest/meta-data/spot/instance-action') {
      if (req.headers['x-aws-ec2-metadata-token'] !== 'fake-imds-token') {
        res.writeHead(401).end();
        return;
      }
      if (!armed) {
        res.writeHead(404).end();
        return;
      }
      served ??= Date.now();
      const time = new Date(Date.now() + 120_000).toISOString().replace(/\.\d+Z$/, 'Z');
      res
        .writeHead(200, { 'content-type': 'application/json' })
        .end(JSON.stringify({ action: 'terminate', time }));
      return;
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    notice: () => {
      armed = true;
    },
    servedAt: () => served,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
