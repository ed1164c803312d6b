// Where a local run may write (cli/output-location.ts): every case of an output.url that
// would damage user data is refused before anything is written, naming what it collides
// with; a read-only filesystem and a path that is a file are said as such. One case runs
// the whole `runLocal`, with the output a symlink to the input, and checks the input's
// bytes are untouched.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultStateDir, loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { checkOutputLocation, type OutputLocationInput } from '../../cli/output-location.ts';
import { FIXTURE_MODELS, writeJobDir } from '../helpers/job-dir.ts';

const dirs: string[] = [];
const tempDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-outloc-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A job directory laid out as a user's: manifest, input.zarr, model.onnx beside it. */
function job(outputUrl: string, over: Partial<OutputLocationInput> = {}): OutputLocationInput {
  const dir = tempDir();
  mkdirSync(join(dir, 'input.zarr'));
  writeFileSync(join(dir, 'input.zarr', 'zarr.json'), '{"zarr_format":3,"node_type":"array"}');
  mkdirSync(join(dir, 'models'));
  writeFileSync(join(dir, 'models', 'model.onnx'), 'onnx');
  writeFileSync(join(dir, 'manifest.json'), '{}');
  return {
    jobId: 'job-1234abcd',
    outputUrl,
    inputUrl: 'input.zarr',
    modelUrl: 'models/model.onnx',
    manifestPath: join(dir, 'manifest.json'),
    baseDir: dir,
    stateDir: join(dir, '.tessera', 'job'),
    ...over,
  };
}

/** Every file under `dir` with its size: what "nothing was written" is checked against. */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(`${p} ${statSync(p).size}`);
    }
  };
  walk(dir);
  return out.sort();
}

const refusal = (o: OutputLocationInput): string => {
  const before = tree(o.baseDir);
  let message = '';
  try {
    checkOutputLocation(o);
  } catch (error) {
    expect((error as Error).name).toBe('OutputLocationError');
    message = (error as Error).message;
  }
  expect(message, 'refused').not.toBe('');
  expect(message).toMatch(/nothing was written$/);
  expect(tree(o.baseDir)).toEqual(before);
  return message;
};

describe('checkOutputLocation refuses', () => {
  it('the filesystem root, however spelled', () => {
    expect(refusal(job('/'))).toMatch(/^output\.url \/ is the filesystem root/);
    const o = job('x');
    o.outputUrl = `${'../'.repeat(o.baseDir.split('/').length + 2)}`;
    expect(refusal(o)).toMatch(/is the filesystem root/);
  });

  it("the manifest's own directory ('.', and through `..`)", () => {
    expect(refusal(job('.'))).toMatch(/is the manifest's own directory/);
    expect(refusal(job('input.zarr/..'))).toMatch(/is the manifest's own directory/);
  });

  it('the input, through a symlink', () => {
    const o = job('out.zarr');
    symlinkSync(join(o.baseDir, 'input.zarr'), join(o.baseDir, 'out.zarr'));
    expect(refusal(o)).toMatch(/out\.zarr \(.*input\.zarr\) is the input \(input\.url\)/);
  });

  it('a directory inside the input, the state directory or the model', () => {
    expect(refusal(job('input.zarr/out'))).toMatch(/is inside the input \(input\.url\)/);
    expect(refusal(job('.tessera/job/out.zarr'))).toMatch(/is inside the state directory/);
    expect(refusal(job('models/model.onnx/out'))).toMatch(/is inside the model \(model\.url\)/);
  });

  it('an ancestor of the model, the input or the state directory', () => {
    expect(refusal(job('models'))).toMatch(/contains the model \(model\.url\)/);
    expect(refusal(job('.tessera'))).toMatch(/contains the state directory/);
    const o = job('data');
    mkdirSync(join(o.baseDir, 'data', 'raw.zarr'), { recursive: true });
    o.inputUrl = 'data/raw.zarr';
    expect(refusal(o)).toMatch(/contains the input \(input\.url\)/);
  });

  it('a directory holding anything but an earlier output of this job', () => {
    const o = job('out.zarr');
    mkdirSync(join(o.baseDir, 'out.zarr'));
    writeFileSync(join(o.baseDir, 'out.zarr', 'thesis.tex'), 'years of work');
    expect(refusal(o)).toMatch(
      /is not empty \(thesis\.tex\) and is not an earlier output of this job/,
    );
    const p = job('out.zarr');
    mkdirSync(join(p.baseDir, 'out.zarr'));
    writeFileSync(
      join(p.baseDir, 'out.zarr', 'zarr.json'),
      JSON.stringify({
        zarr_format: 3,
        node_type: 'group',
        attributes: { tessera: { job: 'other-99' } },
      }),
    );
    const before = tree(p.baseDir);
    expect(() => checkOutputLocation(p)).toThrow(
      expect.objectContaining({
        name: 'OutputOwnedError',
        owner: 'other-99',
        jobId: 'job-1234abcd',
      }),
    );
    expect(tree(p.baseDir)).toEqual(before);
  });

  it('a path that is a file, or below one, in words rather than ENOTDIR', () => {
    const o = job('notes.txt');
    writeFileSync(join(o.baseDir, 'notes.txt'), 'keep me');
    const m = refusal(o);
    expect(m).toMatch(/is a file, not a directory/);
    expect(m).not.toMatch(/ENOTDIR/);
    o.outputUrl = 'notes.txt/out.zarr';
    expect(refusal(o)).toMatch(/notes\.txt is a file, not a directory/);
    expect(readFileSync(join(o.baseDir, 'notes.txt'), 'utf8')).toBe('keep me');
  });
});

describe('checkOutputLocation accepts', () => {
  it('a new path, an empty directory, and an earlier output of this job', () => {
    const o = job('out/new.zarr');
    checkOutputLocation(o);
    expect(statSync(join(o.baseDir, 'out', 'new.zarr')).isDirectory()).toBe(true);
    expect(readdirSync(join(o.baseDir, 'out', 'new.zarr'))).toEqual([]);
    checkOutputLocation(o);
    // The array's zarr.json is written first: a run stopped before the group's is its own.
    mkdirSync(join(o.baseDir, 'out', 'new.zarr', '0'));
    writeFileSync(
      join(o.baseDir, 'out', 'new.zarr', '0', 'zarr.json'),
      JSON.stringify({ attributes: { tessera: { job: 'job-1234abcd' } } }),
    );
    checkOutputLocation(o);
  });
});

/** Mounts a read-only tmpfs; why not, where this process may not mount. */
function readOnlyMount(): { dir: string; unmount: () => void } | { why: string } {
  const dir = tempDir();
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'ro,size=1m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    return { why: String((error as { stderr?: Buffer }).stderr ?? error).trim() };
  }
  return { dir, unmount: () => execFileSync('umount', ['-l', dir]) };
}

describe('a read-only output filesystem', () => {
  it('is named as read-only, not as ENOENT from mkdir', (ctx) => {
    const ro = readOnlyMount();
    if ('why' in ro) {
      // Said, not silently skipped, where no filesystem can be mounted (root bypasses chmod).
      console.warn(`read-only output test skipped: tmpfs could not be mounted (${ro.why})`);
      ctx.skip();
      return;
    }
    try {
      const o = job(join(ro.dir, 'deep', 'out.zarr'));
      let message = '';
      try {
        checkOutputLocation(o);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/cannot be written \(EROFS\): .* is on a read-only filesystem/);
      expect(message).not.toMatch(/ENOENT/);
    } finally {
      ro.unmount();
    }
  });
});

describe('tessera run with output.url a symlink to the input', () => {
  it('refuses before writing, and the input keeps every byte', async () => {
    const dir = tempDir();
    const path = await writeJobDir(dir, {
      shape: [8, 16, 16],
      manifest: {
        model: {
          url: join(FIXTURE_MODELS, 'realistic.onnx'),
          patchShape: [8, 16, 16],
          outputChannels: 2,
        },
        output: { url: 'result.zarr', dtype: 'float32' },
        overlap: [0, 4, 4],
        chunkShape: [8, 16, 16],
      },
    });
    symlinkSync(join(dir, 'input.zarr'), join(dir, 'result.zarr'));
    const hash = (): string => {
      const h = createHash('sha256');
      for (const line of tree(join(dir, 'input.zarr'))) {
        h.update(line);
        h.update(readFileSync(line.slice(0, line.lastIndexOf(' '))));
      }
      return h.digest('hex');
    };
    const before = hash();
    const m = await loadManifest(path);
    await expect(runLocal(m, { workers: 1 })).rejects.toThrow(
      /output\.url result\.zarr \(.*input\.zarr\) is the input \(input\.url\)/,
    );
    expect(hash()).toBe(before);
    // Not even the state directory was made.
    expect(existsSync(defaultStateDir(m))).toBe(false);
  });
});
