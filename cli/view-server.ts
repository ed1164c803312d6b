// A read-only HTTP server for `tessera view`: local directories (the output, the input)
// under URL prefixes, on 127.0.0.1 only, for a viewer running in the browser.
//
//   GET / HEAD     the file's bytes; `Range: bytes=a-b | a- | -n` → 206 with Content-Range,
//                  a range past the end → 416 (Content-Range: bytes */size)
//   missing file   404, which neuroglancer and zarr readers take as "chunk not written":
//                  the fill value
//   OPTIONS        the CORS preflight (a Range header makes one), including Chrome's
//                  private-network one (an https page asking a loopback address)
//   every answer   Access-Control-Allow-Origin: *
//
// Only files inside a mounted directory are served: a path with `..`, `.` or an encoded
// `/` in a segment is refused (400), and so is a file whose real path (symlinks
// followed) lies outside the directory (403).

import { createReadStream } from 'node:fs';
import { realpath, stat } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { extname, join, sep } from 'node:path';

export interface Mount {
  /** URL path prefix, starting and ending with '/': '/' or '/_input/'. */
  prefix: string;
  /** The directory served there. */
  root: string;
}

export interface ServedDirectories {
  /** The port listened on (the one chosen when 0 was asked). */
  port: number;
  /** `http://127.0.0.1:<port>/`. */
  url: string;
  close(): Promise<void>;
}

/** The server could not listen where asked. */
export class ViewServerError extends Error {
  override readonly name = 'ViewServerError';
  constructor(
    readonly port: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot serve on 127.0.0.1:${port}: ${detail}`, options);
  }
}

export const HOST = '127.0.0.1';

const CONTENT_TYPES: Record<string, string> = {
  '.json': 'application/json',
  '.png': 'image/png',
  '.html': 'text/html; charset=utf-8',
};

export async function serveDirectories(
  mounts: readonly Mount[],
  o: { port?: number } = {},
): Promise<ServedDirectories> {
  // Longest prefix first: '/_input/x' is the input's, not the output's '_input/x'.
  const ordered = await Promise.all(
    [...mounts]
      .sort((a, b) => b.prefix.length - a.prefix.length)
      .map(async (m) => ({ prefix: m.prefix, root: await realpath(m.root) })),
  );
  const server = createServer((req, res) => {
    handle(ordered, req, res).catch((error: unknown) => {
      // An answer already under way cannot become an error page: cut it short.
      if (res.headersSent) res.destroy(error instanceof Error ? error : undefined);
      else send(res, 500, `cannot read the file: ${String(error)}\n`);
    });
  });
  const port = await listen(server, o.port ?? 0);
  return {
    port,
    url: `http://${HOST}:${port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // Viewers hold keep-alive connections open; they must not keep the process up.
        server.closeAllConnections();
      }),
  };
}

function listen(server: Server, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) => {
      reject(
        new ViewServerError(
          port,
          error.code === 'EADDRINUSE'
            ? 'the port is in use; give another --port, or --port 0 for any free one'
            : error.message,
          { cause: error },
        ),
      );
    });
    server.listen(port, HOST, () => {
      const address = server.address();
      resolve(typeof address === 'object' && address !== null ? address.port : port);
    });
  });
}

async function handle(
  mounts: readonly { prefix: string; root: string }[],
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  res.setHeader('Access-Control-Allow-Origin', '*');
  res.setHeader('Access-Control-Expose-Headers', 'Content-Length, Content-Range, Accept-Ranges');
  if (req.method === 'OPTIONS') {
    res.setHeader('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
    res.setHeader(
      'Access-Control-Allow-Headers',
      req.headers['access-control-request-headers'] ?? 'Range',
    );
    if (req.headers['access-control-request-private-network'] === 'true')
      res.setHeader('Access-Control-Allow-Private-Network', 'true');
    res.setHeader('Access-Control-Max-Age', '600');
    res.writeHead(204).end();
    return;
  }
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.setHeader('Allow', 'GET, HEAD, OPTIONS');
    send(res, 405, 'read-only: GET and HEAD only\n');
    return;
  }
  const target = locate(mounts, req.url ?? '/');
  if (typeof target === 'number') {
    send(res, target, target === 400 ? 'bad path\n' : 'not found\n');
    return;
  }
  const file = await servable(target.root, target.path);
  if (typeof file === 'number') {
    send(res, file, file === 403 ? 'outside the served directory\n' : 'not found\n');
    return;
  }
  res.setHeader('Accept-Ranges', 'bytes');
  res.setHeader('Content-Type', CONTENT_TYPES[extname(file.path)] ?? 'application/octet-stream');
  // A rerun rewrites the output: never let the browser show old chunks.
  res.setHeader('Cache-Control', 'no-store');
  const range = parseRange(req.headers.range, file.size);
  if (range === 'unsatisfiable') {
    res.setHeader('Content-Range', `bytes */${file.size}`);
    send(res, 416, 'range not satisfiable\n');
    return;
  }
  const [start, end] = range ?? [0, file.size - 1];
  if (range) res.setHeader('Content-Range', `bytes ${start}-${end}/${file.size}`);
  res.setHeader('Content-Length', String(Math.max(0, end - start + 1)));
  res.writeHead(range ? 206 : 200);
  if (req.method === 'HEAD' || file.size === 0) {
    res.end();
    return;
  }
  const stream = createReadStream(file.path, { start, end });
  stream.on('error', (error) => res.destroy(error));
  stream.pipe(res);
}

/**
 * The mount and the path segments a request names, or the status to answer: 404 when no
 * mount holds it, 400 for a segment that would step out (`..`, `.`, an encoded `/` or
 * `\`, a NUL) or does not decode.
 */
function locate(
  mounts: readonly { prefix: string; root: string }[],
  rawUrl: string,
): { root: string; path: string[] } | number {
  const pathname = rawUrl.split(/[?#]/, 1)[0] ?? '/';
  const mount = mounts.find((m) => pathname.startsWith(m.prefix));
  if (mount === undefined) return 404;
  const segments: string[] = [];
  for (const raw of pathname.slice(mount.prefix.length).split('/')) {
    if (raw === '') continue;
    let s: string;
    try {
      s = decodeURIComponent(raw);
    } catch (error) {
      if (error instanceof URIError) return 400;
      throw error;
    }
    if (s === '.' || s === '..' || /[/\\\0]/.test(s)) return 400;
    segments.push(s);
  }
  return segments.length === 0 ? 404 : { root: mount.root, path: segments };
}

/** The file to send, or 404 (absent, not a regular file) or 403 (its real path is outside). */
async function servable(
  root: string,
  segments: string[],
): Promise<{ path: string; size: number } | number> {
  let real: string;
  try {
    real = await realpath(join(root, ...segments));
  } catch (error) {
    if (isMissing(error)) return 404;
    throw error;
  }
  if (!real.startsWith(root + sep)) return 403;
  const s = await stat(real);
  return s.isFile() ? { path: real, size: s.size } : 404;
}

function isMissing(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR' || code === 'ELOOP' || code === 'ENAMETOOLONG';
}

/**
 * One byte range of a `size`-byte file: [start, end] inclusive, 'unsatisfiable', or
 * undefined to send the whole file (no header, a malformed one, or several ranges, which
 * RFC 9110 lets a server answer with the whole representation).
 */
export function parseRange(
  header: string | undefined,
  size: number,
): [number, number] | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (m === null) return undefined;
  const [, a = '', b = ''] = m;
  if (a === '' && b === '') return undefined;
  if (a === '') {
    // The last n bytes.
    const n = Number(b);
    if (n === 0 || size === 0) return 'unsatisfiable';
    return [Math.max(0, size - n), size - 1];
  }
  const start = Number(a);
  const end = b === '' ? size - 1 : Math.min(Number(b), size - 1);
  if (b !== '' && Number(b) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return [start, end];
}

function send(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}
