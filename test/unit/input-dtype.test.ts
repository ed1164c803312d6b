// An input whose metadata misdescribes its chunks (zarr.json says float32 over uint8 bytes)
// is named as such, and fails the job once when it is opened, before any chunk is claimed,
// instead of failing every chunk as "corrupt". Chunks are written by zarrita (an
// independent writer) or by hand; the lying metadata is written by hand.

import { mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import * as zarr from 'zarrita';
import { Box } from '../../core/geometry/index.ts';
import { parseManifest } from '../../core/manifest/index.ts';
import { openJob } from '../../core/pipeline/index.ts';
import { LocalStore, MemoryStore } from '../../core/store/index.ts';
import { openInputVolume, VolumeFormatError, VolumeReadError } from '../../core/volume/index.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-dtype-'));
  dirs.push(d);
  return d;
};

/** A [16, 16, 16] array written by zarrita as `real`, then described by hand as `claimed`. */
async function lyingArray(o: {
  real: 'uint8' | 'float32';
  claimed: string;
  chunks: [number, number, number];
}): Promise<string> {
  const dir = tmp();
  const store = new LocalStore(dir, { fsync: false });
  const shape = [16, 16, 16];
  const array = await zarr.create(zarr.root(store), { shape, chunkShape: o.chunks, dtype: o.real });
  const n = 16 ** 3;
  const data =
    o.real === 'uint8'
      ? Uint8Array.from({ length: n }, (_, i) => 1 + (i % 250))
      : Float32Array.from({ length: n }, (_, i) => i / 7);
  await zarr.set(array, null, { data, shape, stride: [256, 16, 1] });
  writeFileSync(
    join(dir, 'zarr.json'),
    JSON.stringify({
      zarr_format: 3,
      node_type: 'array',
      shape,
      data_type: o.claimed,
      chunk_grid: { name: 'regular', configuration: { chunk_shape: o.chunks } },
      chunk_key_encoding: { name: 'default', configuration: { separator: '/' } },
      fill_value: 0,
      codecs: [{ name: 'bytes', configuration: { endian: 'little' } }],
      attributes: {},
    }),
  );
  return dir;
}

const manifestFor = (inputDir: string) =>
  parseManifest({
    version: 1,
    name: 'cells',
    input: { url: inputDir },
    output: { url: join(inputDir, '..', 'never-written.zarr'), dtype: 'float32' },
    model: { url: 'm.onnx', patchShape: [8, 8, 8], outputChannels: 1 },
    overlap: [0, 0, 0],
    chunkShape: [16, 16, 16],
  });

describe('a data_type that does not match the stored chunks', () => {
  it('fails openJob once, naming the chunk, both sizes and zarr.json, before any chunk is claimed', async () => {
    const dir = await lyingArray({ real: 'uint8', claimed: 'float32', chunks: [8, 8, 8] });
    const error = await openJob(manifestFor(dir), { jobId: 'cells-1', work: new MemoryStore() })
      .then(() => undefined)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect(error).toMatchObject({ field: 'data_type' });
    const message = (error as Error).message;
    expect(message).toContain(
      `input chunk c/0/0/0 holds 512 bytes where zarr.json's data_type "float32" and ` +
        'chunk_shape [8, 8, 8] mean 2048 bytes (as many as data_type "uint8" or "int8" would hold)',
    );
    expect(message).toContain(`is probably wrong - check ${join(dir, 'zarr.json')}`);
    expect(message).not.toContain('re-create');
  });

  it('a read names the metadata, not the chunk, as the cause', async () => {
    const dir = await lyingArray({ real: 'uint8', claimed: 'float32', chunks: [8, 8, 8] });
    const input = await openInputVolume(new LocalStore(dir));
    const error = await input.readBox(new Box([8, 0, 0], [12, 4, 4])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeReadError);
    // Still the chunk's read failing deterministically (never an I/O retry).
    expect(error).toMatchObject({ reason: 'corrupt-chunk' });
    const message = (error as Error).message;
    expect(message).toContain('input chunk c/1/0/0 holds 512 bytes');
    expect(message).toContain(
      `zarr.json's data_type (or its chunk_shape or codecs) is probably wrong`,
    );
    expect(message).toContain('Re-creating the chunk will not help while the metadata is wrong.');
    expect(message).not.toContain('The chunk bytes are damaged');
  });

  it('names the types that fit: float32 data described as uint8', async () => {
    const dir = await lyingArray({ real: 'float32', claimed: 'uint8', chunks: [8, 8, 8] });
    const error = await (await openInputVolume(new LocalStore(dir)))
      .checkStoredChunk()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect((error as Error).message).toContain(
      `input chunk c/0/0/0 holds 2048 bytes where zarr.json's data_type "uint8" and chunk_shape ` +
        '[8, 8, 8] mean 512 bytes (as many as data_type "uint32" or "int32" or "float32" would hold)',
    );
  });

  it('counts bytes exactly when they are not a whole number of the claimed elements', async () => {
    // 7 × 9 × 11 = 693 uint8 bytes; as float32 they would decode to 173.25 elements.
    const dir = await lyingArray({ real: 'uint8', claimed: 'float32', chunks: [7, 9, 11] });
    const error = await (await openInputVolume(new LocalStore(dir)))
      .checkStoredChunk()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect((error as Error).message).toContain(
      `input chunk c/0/0/0 holds 693 bytes where zarr.json's data_type "float32" and chunk_shape ` +
        '[7, 9, 11] mean 2772 bytes',
    );
  });

  it('names a v2 array by its .zarray and its chunk key', async () => {
    const dir = tmp();
    // Written by hand: an uncompressed v2 chunk is its bytes, C order.
    writeFileSync(
      join(dir, '0.0.0'),
      Uint8Array.from({ length: 64 }, (_, i) => i),
    );
    writeFileSync(
      join(dir, '.zarray'),
      JSON.stringify({
        zarr_format: 2,
        shape: [4, 4, 4],
        chunks: [4, 4, 4],
        dtype: '<u2',
        compressor: null,
        fill_value: 0,
        order: 'C',
        filters: null,
      }),
    );
    const error = await (await openInputVolume(new LocalStore(dir)))
      .checkStoredChunk()
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeFormatError);
    expect((error as Error).message).toContain(
      `input chunk 0.0.0 holds 64 bytes where .zarray's dtype "uint16" and chunks [4, 4, 4] mean 128 bytes`,
    );
    expect((error as Error).message).toContain(`check ${join(dir, '.zarray')}`);
  });
});

describe('a chunk damaged on its own', () => {
  it('does not fail the open, and its read says it is cut short', async () => {
    const dir = await lyingArray({ real: 'uint8', claimed: 'uint8', chunks: [8, 8, 8] });
    truncateSync(join(dir, 'c', '0', '0', '0'), 100);
    const input = await openInputVolume(new LocalStore(dir));
    await expect(input.checkStoredChunk()).resolves.toBeUndefined();
    const error = await input.readBox(new Box([0, 0, 0], [4, 4, 4])).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(VolumeReadError);
    expect((error as Error).message).toContain(
      `input chunk c/0/0/0 decodes to 100 bytes where zarr.json's data_type "uint8" and ` +
        'chunk_shape [8, 8, 8] mean 512 bytes: the chunk is cut short or padded',
    );
    expect((error as Error).message).toContain('re-create or re-upload that chunk');
  });

  it('a first chunk cut to a size another type would fit is cleared by the next one', async () => {
    const dir = await lyingArray({ real: 'float32', claimed: 'float32', chunks: [8, 8, 8] });
    // Half a float32 chunk is as many bytes as uint16 data would hold.
    truncateSync(join(dir, 'c', '0', '0', '0'), 1024);
    const input = await openInputVolume(new LocalStore(dir));
    await expect(input.checkStoredChunk()).resolves.toBeUndefined();
  });
});
