// `tessera view`: the server (in process, on a loopback port the system picks) answers as
// a browser viewer needs — CORS on every answer, byte ranges, 404 for a chunk never
// written, nothing outside the served directory — and the neuroglancer link it prints
// points at that server with the fixture's voxel size. The fixtures
// (test/fixtures/viewer/, written by generate.py from the specs with numpy, not by
// Tessera) are read back through the server with zarrita's FetchStore, a reader that
// shares no code with it.

import { cpSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FetchStore } from '@zarrita/storage';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as zarr from 'zarrita';
import { INPUT_PREFIX, locateTarget, startView, type View } from '../../cli/view-command.ts';
import { parseRange, ViewServerError } from '../../cli/view-server.ts';
import { NEUROGLANCER } from '../../core/pipeline/viewer.ts';

const FIXTURES = fileURLToPath(new URL('../fixtures/viewer/', import.meta.url));

let dir: string;
let view: View;
let base: string;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tessera-view-'));
  cpSync(join(FIXTURES, 'output.zarr'), join(dir, 'output.zarr'), { recursive: true });
  cpSync(join(FIXTURES, 'input.zarr'), join(dir, 'input.zarr'), { recursive: true });
  // Beside the output, not in it: what a traversal or a symlink would reach.
  writeFileSync(join(dir, 'secret.txt'), 'not to be served\n');
  symlinkSync(join(dir, 'secret.txt'), join(dir, 'output.zarr', 'escape.txt'));
  symlinkSync(join(dir, 'input.zarr'), join(dir, 'output.zarr', 'escape-dir'));
  view = await startView({
    output: join(dir, 'output.zarr'),
    input: { root: join(dir, 'input.zarr'), array: '' },
    port: 0,
  });
  base = view.server.url;
});

afterAll(async () => {
  await view?.close();
  rmSync(dir, { recursive: true, force: true });
});

/** A raw request: fetch() would normalise `..` away before sending it. */
function rawGet(path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: view.server.port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const CHUNK = 'output.zarr/0/c/0/0/0/0';
const chunkBytes = () => new Uint8Array(readFileSync(join(FIXTURES, CHUNK)));

describe('the server', () => {
  it('listens on 127.0.0.1 on the port the system chose', () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    expect(view.server.port).toBeGreaterThan(0);
  });

  it('serves a file whole, with CORS and Accept-Ranges', async () => {
    const r = await fetch(`${base}0/c/0/0/0/0`);
    expect(r.status).toBe(200);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.headers.get('accept-ranges')).toBe('bytes');
    expect(r.headers.get('content-length')).toBe('240');
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(chunkBytes());
  });

  it('serves byte ranges: a-b, a- and -n as 206 with Content-Range', async () => {
    const bytes = chunkBytes();
    const cases: [string, number, number][] = [
      ['bytes=10-19', 10, 19],
      ['bytes=200-', 200, 239],
      ['bytes=-16', 224, 239],
      ['bytes=230-999', 230, 239], // an end past the file is clamped
    ];
    for (const [range, start, end] of cases) {
      const r = await fetch(`${base}0/c/0/0/0/0`, { headers: { Range: range } });
      expect(r.status, range).toBe(206);
      expect(r.headers.get('content-range'), range).toBe(`bytes ${start}-${end}/240`);
      expect(r.headers.get('access-control-allow-origin')).toBe('*');
      expect(new Uint8Array(await r.arrayBuffer()), range).toEqual(bytes.slice(start, end + 1));
    }
  });

  it('answers a range past the end with 416 and the size', async () => {
    const r = await fetch(`${base}0/c/0/0/0/0`, { headers: { Range: 'bytes=240-' } });
    expect(r.status).toBe(416);
    expect(r.headers.get('content-range')).toBe('bytes */240');
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('answers HEAD with the length and no body', async () => {
    const r = await fetch(`${base}zarr.json`, { method: 'HEAD' });
    expect(r.status).toBe(200);
    expect(r.headers.get('content-length')).toBe(
      String(readFileSync(join(FIXTURES, 'output.zarr/zarr.json')).length),
    );
    expect(r.headers.get('content-type')).toBe('application/json');
    expect((await r.arrayBuffer()).byteLength).toBe(0);
  });

  it('answers a chunk never written with 404, with CORS (a viewer takes the fill value)', async () => {
    const r = await fetch(`${base}0/c/1/0/0/0`);
    expect(r.status).toBe(404);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
  });

  it("answers the browser's preflight for a Range request from an https page", async () => {
    const r = await fetch(`${base}0/zarr.json`, {
      method: 'OPTIONS',
      headers: {
        Origin: 'https://neuroglancer-demo.appspot.com',
        'Access-Control-Request-Method': 'GET',
        'Access-Control-Request-Headers': 'range',
        'Access-Control-Request-Private-Network': 'true',
      },
    });
    expect(r.status).toBe(204);
    expect(r.headers.get('access-control-allow-origin')).toBe('*');
    expect(r.headers.get('access-control-allow-headers')).toBe('range');
    expect(r.headers.get('access-control-allow-methods')).toContain('GET');
    expect(r.headers.get('access-control-allow-private-network')).toBe('true');
  });

  it('refuses writes', async () => {
    const r = await fetch(`${base}zarr.json`, { method: 'PUT', body: '{}' });
    expect(r.status).toBe(405);
    expect(readFileSync(join(dir, 'output.zarr', 'zarr.json'), 'utf8')).not.toBe('{}');
  });

  it('serves nothing outside the output: .. (plain or encoded) and symlinks out are refused', async () => {
    for (const path of [
      '/../secret.txt',
      '/%2e%2e/secret.txt',
      '/0/%2e%2e%2f..%2fsecret.txt',
      '/0/..%5c..%5csecret.txt',
      '/_input/../../secret.txt',
    ]) {
      const r = await rawGet(path);
      expect(r.status, path).toBe(400);
      expect(r.body, path).not.toContain('not to be served');
    }
    const link = await rawGet('/escape.txt');
    expect(link.status).toBe(403);
    expect(link.body).not.toContain('not to be served');
    expect((await rawGet('/escape-dir/zarr.json')).status).toBe(403);
    // A directory is not a file.
    expect((await rawGet('/0')).status).toBe(404);
  });

  it('serves the input under its own prefix', async () => {
    const r = await fetch(`${base}${INPUT_PREFIX.slice(1)}c/0/0/0`);
    expect(r.status).toBe(200);
    expect(new Uint8Array(await r.arrayBuffer())).toEqual(
      new Uint8Array(readFileSync(join(FIXTURES, 'input.zarr/c/0/0/0'))),
    );
  });
});

describe('read through the server with a zarr HTTP reader (zarrita FetchStore)', () => {
  it("gives the output's values: channel 0 as written, channel 1 (never written) the fill", async () => {
    const store = new FetchStore(base);
    const group = await zarr.open(store, { kind: 'group' });
    expect((group.attrs.ome as { version: string }).version).toBe('0.5');
    const arr = await zarr.open(group.resolve('0'), { kind: 'array' });
    expect(arr.shape).toEqual([2, 3, 4, 5]);
    const all = await zarr.get(arr);
    const data = all.data as Float32Array;
    // generate.py wrote i / 64 (exact in float32) into channel 0.
    for (let i = 0; i < 60; i++) expect(data[i]).toBe(i / 64);
    for (let i = 60; i < 120; i++) expect(data[i]).toBe(0);
  });

  it("gives the input's values", async () => {
    const arr = await zarr.open(new FetchStore(`${base}_input/`), { kind: 'array' });
    const data = (await zarr.get(arr)).data as Uint8Array;
    expect(Array.from(data)).toEqual(Array.from({ length: 60 }, (_, i) => (7 * i) % 256));
  });
});

describe('the neuroglancer link', () => {
  const state = () => {
    expect(view.link.startsWith(NEUROGLANCER)).toBe(true);
    return JSON.parse(decodeURIComponent(view.link.slice(NEUROGLANCER.length))) as {
      dimensions: Record<string, [number, string]>;
      position: number[];
      layers: {
        name: string;
        type: string;
        source: string | { url: string; transform: { outputDimensions: Record<string, unknown> } };
        localPosition?: number[];
        shaderControls?: { normalized: { range: number[] } };
        visible?: boolean;
      }[];
    };
  };

  it("has the fixture's voxel size (40, 8, 4 nm in z, y, x), in metres, x first", () => {
    const s = state();
    expect(Object.keys(s.dimensions)).toEqual(['x', 'y', 'z']);
    expect(s.dimensions.x![1]).toBe('m');
    expect(s.dimensions.x![0]).toBeCloseTo(4e-9, 15);
    expect(s.dimensions.y![0]).toBeCloseTo(8e-9, 15);
    expect(s.dimensions.z![0]).toBeCloseTo(40e-9, 15);
    // The centre of the 3×4×5 volume, x, y, z.
    expect(s.position).toEqual([2.5, 2, 1.5]);
  });

  it('shows each output channel as a layer reading from this server, window 0–1 for float32', () => {
    const out = state().layers.filter((l) => l.name !== 'input');
    expect(out.map((l) => l.name)).toEqual([
      'viewer-fixture membrane',
      'viewer-fixture foreground',
    ]);
    for (const [c, l] of out.entries()) {
      expect(l.source).toBe(`zarr3://http://127.0.0.1:${view.server.port}/`);
      expect(l.localPosition).toEqual([c]);
      expect(l.shaderControls?.normalized.range).toEqual([0, 1]);
    }
    expect(out[1]!.visible).toBe(false);
  });

  it('shows the input beneath, from its prefix, its axes named z, y, x at the same voxel size', () => {
    const [input] = state().layers;
    expect(input!.name).toBe('input');
    const source = input!.source as { url: string; transform: { outputDimensions: object } };
    expect(source.url).toBe(`zarr://http://127.0.0.1:${view.server.port}/_input/`);
    expect(Object.keys(source.transform.outputDimensions)).toEqual(['z', 'y', 'x']);
    expect(input!.shaderControls?.normalized.range).toEqual([0, 255]);
  });
});

describe('parseRange', () => {
  it('sends the whole file for no header, a malformed one or several ranges', () => {
    expect(parseRange(undefined, 100)).toBeUndefined();
    expect(parseRange('bytes=5-2', 100)).toBeUndefined();
    expect(parseRange('bytes=0-1,5-6', 100)).toBeUndefined();
    expect(parseRange('items=0-1', 100)).toBeUndefined();
  });

  it('is unsatisfiable past the end and for an empty suffix', () => {
    expect(parseRange('bytes=100-', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-0', 100)).toBe('unsatisfiable');
    expect(parseRange('bytes=-10', 0)).toBe('unsatisfiable');
  });

  it('takes a suffix longer than the file as the whole file', () => {
    expect(parseRange('bytes=-500', 100)).toEqual([0, 99]);
  });
});

describe('tessera view <manifest.json>', () => {
  it('finds the output and the input beside the manifest, relative paths from its directory', async () => {
    const path = join(dir, 'manifest.json');
    writeFileSync(
      path,
      JSON.stringify({
        version: 1,
        name: 'view-test',
        input: { url: 'input.zarr' },
        output: { url: 'output.zarr', dtype: 'float32' },
        model: { url: 'model.onnx', patchShape: [2, 4, 4], outputChannels: 2 },
        overlap: [0, 0, 0],
        chunkShape: [4, 8, 8],
        blend: 'constant',
      }),
    );
    expect(await locateTarget(path, undefined)).toEqual({
      output: join(dir, 'output.zarr'),
      input: { root: join(dir, 'input.zarr'), array: '' },
    });
    // An output directory given directly: no input unless --input names one.
    expect(await locateTarget(join(dir, 'output.zarr'), undefined)).toEqual({
      output: join(dir, 'output.zarr'),
      input: undefined,
    });
  });

  it('an output on S3 gets its link and no server', async () => {
    const path = join(dir, 's3-manifest.json');
    writeFileSync(
      path,
      JSON.stringify({
        version: 1,
        name: 'view-s3',
        input: { url: 's3://bucket/in.zarr' },
        output: { url: 's3://bucket/out.zarr', dtype: 'float32' },
        model: { url: 's3://bucket/model.onnx', patchShape: [2, 4, 4], outputChannels: 2 },
        overlap: [0, 0, 0],
        chunkShape: [4, 8, 8],
        blend: 'constant',
      }),
    );
    const located = await locateTarget(path, undefined);
    expect(located.s3Link?.startsWith(NEUROGLANCER)).toBe(true);
    expect(decodeURIComponent(located.s3Link!)).toContain('zarr3://s3://bucket/out.zarr');
  });

  it('a port in use is refused by name, saying what to do', async () => {
    const second = startView({ output: join(dir, 'output.zarr'), port: view.server.port });
    await expect(second).rejects.toBeInstanceOf(ViewServerError);
    await expect(second).rejects.toThrow(/port is in use; give another --port, or --port 0/);
  });

  it('refuses a directory that is not a Zarr output, saying what to give', async () => {
    await expect(startView({ output: dir })).rejects.toThrow(
      /holds no zarr\.json: give the output directory/,
    );
  });
});
