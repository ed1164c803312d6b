// One resolver for the model path: what `tessera plan` checks and what a worker opens is
// the same file, whether model.url is a relative path, an absolute one, or a file:// URL
// whose name is percent-encoded (a space is `%20` in a URL and ' ' on disk).

import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { planCommand } from '../../cli/plan-command.ts';
import { InvalidUrlError } from '../../core/manifest/errors.ts';
import { localPathOf } from '../../core/manifest/url.ts';
import { ModelLoadError } from '../../core/model/index.ts';
import { ModelNotLocalError, resolveModelPath } from '../../core/pipeline/model-source.ts';
import { FIXTURE_MODELS, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});
function dir(): string {
  const t = tempDir('tessera-model-path-');
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A tiny job whose model file is `modelFile` (relative to the job directory). */
async function job(modelFile: string, url: (d: string) => string) {
  const d = dir();
  mkdirSync(join(d, modelFile, '..'), { recursive: true });
  copyFileSync(join(FIXTURE_MODELS, 'tiny.onnx'), join(d, modelFile));
  const path = await writeJobDir(d, {
    shape: [12, 20, 20],
    manifest: {
      model: { url: url(d), patchShape: [4, 8, 8], outputChannels: 2 },
      overlap: [0, 2, 2],
      chunkShape: [8, 12, 12],
      blend: 'bump',
    },
  });
  return { dir: d, path };
}

/** `tessera plan` with these arguments: its exit code and stdout, or what it threw. */
async function plan(args: string[]): Promise<{ code?: number; out: string; error?: Error }> {
  const write = process.stdout.write.bind(process.stdout);
  const writeErr = process.stderr.write.bind(process.stderr);
  let out = '';
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    return { code: await planCommand(args), out };
  } catch (error) {
    return { out, error: error as Error };
  } finally {
    process.stdout.write = write;
    process.stderr.write = writeErr;
  }
}

describe('localPathOf: the local file a storage URL names', () => {
  it('resolves a relative path against the manifest directory, not the cwd', () => {
    expect(localPathOf('models/my model.onnx', '/jobs/a')).toBe('/jobs/a/models/my model.onnx');
    expect(localPathOf('../m.onnx', '/jobs/a')).toBe('/jobs/m.onnx');
  });

  it('keeps an absolute path, normalised', () => {
    expect(localPathOf('/data/./models/m.onnx', '/jobs/a')).toBe('/data/models/m.onnx');
  });

  it('decodes a file:// URL: %20 is a space in the file name', () => {
    expect(localPathOf('file:///data/my%20model.onnx', '/jobs/a')).toBe('/data/my model.onnx');
    expect(localPathOf('FILE:///data/caf%C3%A9.onnx')).toBe('/data/café.onnx');
  });

  it('names no local file for a store URL', () => {
    expect(localPathOf('s3://bucket/models/m.onnx', '/jobs/a')).toBeUndefined();
  });

  it('refuses a file:// URL with a host by name', () => {
    expect(() => localPathOf('file://server/data/m.onnx')).toThrow(InvalidUrlError);
  });

  it('resolveModelPath refuses a store URL for a local run', () => {
    expect(() => resolveModelPath('s3://bucket/m.onnx', '/jobs/a')).toThrow(ModelNotLocalError);
    expect(resolveModelPath('file:///data/my%20model.onnx')).toBe('/data/my model.onnx');
  });
});

describe('tessera plan and tessera run read the model model.url names', () => {
  const encoded = (d: string) => pathToFileURL(join(d, 'my model.onnx')).href;

  it('plan --calibrate opens the file it checked (file:// with %20)', async () => {
    const { dir: d, path } = await job('my model.onnx', encoded);
    expect(encoded(d)).toMatch(/my%20model\.onnx$/);
    const r = await plan([path, '--calibrate', '--batch', '1']);
    expect(r.error).toBeUndefined();
    expect(r.code).toBe(0);
    expect(r.out).toContain('measured on this machine');
  });

  it('plan refuses, naming the decoded file, when only the encoded name exists', async () => {
    // The file on disk is literally "my%20model.onnx": not what the URL names.
    const { dir: d, path } = await job('my%20model.onnx', encoded);
    const r = await plan([path]);
    expect(r.error).toBeInstanceOf(ModelLoadError);
    expect(r.error?.message).toContain(`there is no file ${join(d, 'my model.onnx')}.`);
  });

  // A forked worker opens the path checkLocalModelSize resolved: the file plan checked.
  it('run works with a file:// model URL with %20 (the workers open what plan checked)', async () => {
    const { path } = await job('my model.onnx', encoded);
    const result = await runLocal(await loadManifest(path), { workers: 1 });
    expect(result.message).toBeUndefined();
    expect(result.status).toBe('SUCCEEDED');
  });

  it('plan --calibrate and run read a relative model path from the manifest directory', async () => {
    const { path } = await job('models dir/my model.onnx', () => 'models dir/my model.onnx');
    const r = await plan([path, '--calibrate', '--batch', '1']);
    expect(r.error).toBeUndefined();
    expect(r.out).toContain('measured on this machine');
    const result = await runLocal(await loadManifest(path), { workers: 1 });
    expect(result.message).toBeUndefined();
    expect(result.status).toBe('SUCCEEDED');
  });
});
