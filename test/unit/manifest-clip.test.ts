// Messages about a manifest quote its values clipped: a 10 MB field must not print 10 MB,
// and the message must still name the field and the cause.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { ManifestError, parseManifest } from '../../core/manifest/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'tessera-clip-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const TEN_MB = 10 * 1024 * 1024;
const base = {
  version: 1,
  name: 'cells',
  input: { url: 'input.zarr' },
  output: { url: 'out.zarr', dtype: 'float32' },
  model: { url: 'm.onnx', patchShape: [8, 8, 8], outputChannels: 1 },
  overlap: [2, 2, 2],
  chunkShape: [16, 16, 16],
};

function manifestErrorOf(doc: unknown): ManifestError {
  try {
    parseManifest(doc, 'manifest.json');
  } catch (error) {
    if (error instanceof ManifestError) return error;
    throw error;
  }
  throw new Error('the manifest was accepted');
}

describe('values quoted in manifest errors are clipped', () => {
  it('a 10 MB input.url in a manifest file: under 1 KB, names input.url and the cause', async () => {
    const path = join(dir, 'big-url.json');
    writeFileSync(path, JSON.stringify({ ...base, input: { url: 'a'.repeat(TEN_MB) } }));
    const error = await loadManifest(path).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ManifestError);
    const message = (error as ManifestError).message;
    expect(message.length).toBeLessThan(1024);
    expect(message).toContain(`input.url: is ${TEN_MB} bytes long, over the 4096 bytes`);
    expect((error as ManifestError).issues.map((i) => i.path)).toEqual(['input.url']);
  });

  it('an over-long S3 bucket name is quoted clipped, with its length', () => {
    const bucket = 'b'.repeat(3000);
    const error = manifestErrorOf({ ...base, input: { url: `s3://${bucket}/raw.zarr` } });
    expect(error.message.length).toBeLessThan(1024);
    expect(error.message).toContain('input.url: bucket name "bbbb');
    expect(error.message).toContain('… (3000 characters) must be 3 to 63 characters long');
  });

  it('a file name over the filesystem limit is refused at validation, not by the store', () => {
    const name = `${'n'.repeat(300)}.zarr`;
    const error = manifestErrorOf({ ...base, input: { url: `data/${name}` } });
    expect(error.message.length).toBeLessThan(1024);
    expect(error.message).toContain('input.url: has a file name of 305 bytes');
    expect(error.message).toContain('… (305 characters)), over the 255-byte limit');
  });

  it('a 10 MB unknown key: under 1 KB, says it is an unknown field', () => {
    const error = manifestErrorOf({ ...base, ['k'.repeat(TEN_MB)]: 1 });
    expect(error.message.length).toBeLessThan(1024);
    expect(error.message).toContain(`unknown field "kkkk`);
    expect(error.message).toContain(`… (${TEN_MB} characters); allowed here: $schema`);
  });

  it('a 10 MB enum value: under 1 KB, names the field, the allowed values and the length', () => {
    const error = manifestErrorOf({ ...base, blend: 'x'.repeat(TEN_MB) });
    expect(error.message.length).toBeLessThan(1024);
    expect(error.message).toContain(
      'blend: must be one of "bump", "gaussian", "constant"; got "xxx',
    );
    expect(error.message).toContain(`… (${TEN_MB} characters)`);
  });
});
