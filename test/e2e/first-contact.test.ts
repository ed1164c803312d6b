// First contact (issue 18): what a new user meets before reading further.
// - The quick start in order leaves `npm test` passing: what the demo writes inside the
//   clone is formatted as Biome wants, and Biome skips what git ignores (the demo's
//   directory, the .tessera state directories).
// - bin/tessera works from any directory, also through a symlink as `npm link` and
//   `npm install -g .` make it: --version, --help, and the demo end to end.

import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { writeDemo } from '../../cli/demo.ts';
import { tempDir } from '../helpers/job-dir.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(REPO, 'bin', 'tessera.js');
const BIOME = join(REPO, 'node_modules', '@biomejs', 'biome', 'bin', 'biome');
const VERSION = (
  JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }
).version;

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
function dir(): string {
  const t = tempDir('tessera-first-contact-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** Biome's formatting of `text` as a JSON file at the repository root. */
function biomeFormat(text: string): string {
  return execFileSync(process.execPath, [BIOME, 'format', '--stdin-file-path=demo-check.json'], {
    cwd: REPO,
    input: text,
    encoding: 'utf8',
  });
}

describe('the quick start leaves npm test passing', () => {
  it("the demo's manifest is written as Biome formats it", async () => {
    const d = dir();
    const path = await writeDemo(d, [8, 16, 16]);
    const written = readFileSync(path, 'utf8');
    expect(biomeFormat(written)).toBe(written);
  });

  it('biome check skips what git ignores: the demo directory and .tessera state directories', () => {
    // Unformatted JSON where a demo and a run put theirs, named for this test alone.
    const name = `first-contact-${process.pid}`;
    const files = [
      join('tessera-demo', `${name}.json`),
      join('.tessera', name, 'ledger.json'),
      join(`${name}-dir`, '.tessera', 'job', 'job.json'),
    ];
    const made: string[] = [];
    try {
      for (const f of files) {
        const abs = join(REPO, f);
        const parent = join(abs, '..');
        if (!existsSync(parent)) {
          mkdirSync(parent, { recursive: true });
          made.push(parent);
        }
        writeFileSync(abs, '{"a":[\n1,\n2]}');
        made.push(abs);
      }
      // git ignores them (.gitignore) …
      for (const f of files)
        expect(spawnSync('git', ['check-ignore', '-q', f], { cwd: REPO }).status, f).toBe(0);
      // … and so does biome: given only these paths, it finds nothing to check.
      const r = spawnSync(process.execPath, [BIOME, 'check', ...files], {
        cwd: REPO,
        encoding: 'utf8',
      });
      expect(r.stdout + r.stderr).toMatch(/Checked 0 files/);
      expect(r.stdout + r.stderr).not.toMatch(/Formatter would have printed/);
    } finally {
      for (const p of made.reverse()) rmSync(p, { recursive: true, force: true });
      rmSync(join(REPO, `${name}-dir`), { recursive: true, force: true });
    }
  });
});

describe('bin/tessera from any directory', () => {
  let demoDir: string | undefined;
  const run = (bin: string, args: string[], cwd: string) =>
    spawnSync(process.execPath, [bin, ...args], { cwd, encoding: 'utf8', timeout: 120_000 });

  it('--version and --help', () => {
    const cwd = dir();
    const v = run(BIN, ['--version'], cwd);
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(`tessera ${VERSION}`);
    const h = run(BIN, ['--help'], cwd);
    expect(h.status).toBe(0);
    expect(h.stdout).toContain('tessera view');
  });

  it('through a symlink, as npm link installs it', () => {
    const cwd = dir();
    const link = join(cwd, 'bin', 'tessera');
    mkdirSync(join(cwd, 'bin'));
    symlinkSync(BIN, link);
    const v = spawnSync(link, ['--version'], { cwd, encoding: 'utf8', timeout: 60_000 });
    expect(v.status).toBe(0);
    expect(v.stdout.trim()).toBe(`tessera ${VERSION}`);
  });

  it('tessera demo --dir <tmp> runs end to end and says how to look at the output', () => {
    const cwd = dir();
    const out = join(cwd, 'demo');
    const r = run(BIN, ['demo', '--dir', out, '--size', '16,32,32'], cwd);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toContain('demo SUCCEEDED');
    expect(existsSync(join(out, 'output.zarr', 'zarr.json'))).toBe(true);
    expect(r.stdout).toContain(`tessera view ${join(out, 'manifest.json')}`);
    expect(r.stdout).toContain(`napari --plugin napari-ome-zarr ${join(out, 'output.zarr')}`);
    demoDir = out;
  });

  it('tessera view <the demo manifest> serves it until Ctrl-C', async () => {
    expect(demoDir).toBeDefined();
    const child = spawn(process.execPath, [BIN, 'view', join(demoDir!, 'manifest.json')], {
      cwd: dir(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => {
      stdout += c.toString();
    });
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
    });
    const exited = new Promise<number | null>((resolve) =>
      child.on('exit', (code) => resolve(code)),
    );
    try {
      const deadline = Date.now() + 60_000;
      while (!stderr.includes('Ctrl-C stops the server') && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      const port = /127\.0\.0\.1:(\d+)\//.exec(stderr)?.[1];
      expect(port, stderr).toBeDefined();
      expect(stdout).toContain('https://neuroglancer-demo.appspot.com/#!');
      const served = await fetch(`http://127.0.0.1:${port}/zarr.json`);
      expect(served.status).toBe(200);
      expect(await served.text()).toBe(
        readFileSync(join(demoDir!, 'output.zarr', 'zarr.json'), 'utf8'),
      );
      const input = await fetch(`http://127.0.0.1:${port}/_input/zarr.json`);
      expect(input.status).toBe(200);
    } finally {
      child.kill('SIGINT');
    }
    expect(await exited).toBe(0);
    expect(stderr).toContain('stopped');
  });
});
