// Inputs Tessera does not read are refused by what they are: the message names what was
// found (an HDF5 file by its signature, a TIFF file or stack, an N5 container without a
// dataset at the path), the formats Tessera reads, and tessera convert. Missing inputs
// and wrong array paths inside a Zarr store stay VolumeNotFoundError.

import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LocalStore } from '../../core/store/index.ts';
import {
  openInputVolume,
  UnsupportedInputError,
  VolumeNotFoundError,
} from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { FORMATS_DIR } from '../helpers/format-fixtures.ts';

const temp = mkdtempSync(join(tmpdir(), 'tessera-unsupported-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

async function refusal(root: string, path = ''): Promise<UnsupportedInputError> {
  const error = await openInputVolume(new LocalStore(root), path).catch((e: unknown) => e);
  expect(error, root).toBeInstanceOf(UnsupportedInputError);
  return error as UnsupportedInputError;
}

const READS = /Tessera reads Zarr v3 or v2 \(OME-Zarr included\), N5, and Neuroglancer precomputed/;

describe('unsupported inputs', () => {
  it('names an HDF5 file by its signature and points at tessera convert --dataset', async () => {
    const e = await refusal(join(FORMATS_DIR, 'cremi.h5'), 'volumes/raw');
    expect(e.found).toBe('an HDF5 file (signature \\x89HDF)');
    expect(e.message).toMatch(READS);
    expect(e.message).toContain('tessera convert <file.h5> <output.zarr> --dataset');
    expect(e.message).toContain('volumes/raw');
  });

  it('names a TIFF file and a TIFF stack directory', async () => {
    const file = await refusal(join(FORMATS_DIR, 'multipage.tif'));
    expect(file.found).toBe('a TIFF file (signature II*)');
    expect(file.message).toMatch(READS);
    expect(file.message).toContain('tessera convert');
    const stack = await refusal(join(FORMATS_DIR, 'stack'));
    expect(stack.found).toMatch(
      /^a directory of 11 TIFF file\(s\) \(a TIFF stack: slice_1\.tif, slice_2\.tif, slice_3\.tif, \.\.\.\)$/,
    );
    expect(stack.message).toContain('tessera convert');
  });

  it('names a big-endian TIFF and a file of no known format', async () => {
    const mm = join(temp, 'motorola.tif');
    writeFileSync(mm, Buffer.from([0x4d, 0x4d, 0x00, 0x2a, 0, 0, 0, 8]));
    expect((await refusal(mm)).found).toBe('a TIFF file (signature MM*)');
    const odd = join(temp, 'volume.raw');
    writeFileSync(odd, Buffer.from([1, 2, 3, 250, 0, 0, 0, 0, 9]));
    const e = await refusal(odd);
    expect(e.found).toMatch(
      /no format Tessera knows \(it starts with bytes 01 02 03 fa 00 00 00 00\)/,
    );
    expect(e.message).toMatch(READS);
  });

  it('tells a .n5 directory without attributes.json, and an N5 container whose path is no dataset', async () => {
    const empty = join(temp, 'scan.n5');
    mkdirSync(join(empty, 'raw', '0'), { recursive: true });
    writeFileSync(join(empty, 'raw', '0', '0'), new Uint8Array(8));
    const bare = await refusal(empty, 'raw');
    expect(bare.found).toMatch(
      /named like an N5 container \(\.n5\) but without an N5 attributes\.json/,
    );
    expect(bare.message).toMatch(READS);
    const group = await refusal(join(FORMATS_DIR, 'data.n5'), 'volumes');
    expect(group.found).toMatch(
      /^an N5 container \(version 2\.0\.0\) in which "volumes" is not a dataset/,
    );
    expect(group.message).toContain('Set input.array to the path of the dataset');
  });

  it('names a directory of HDF5 files, and one of other files', async () => {
    const h5dir = join(temp, 'h5s');
    mkdirSync(h5dir);
    copyFileSync(join(FORMATS_DIR, 'single.h5'), join(h5dir, 'sample_A.hdf5'));
    expect((await refusal(h5dir)).found).toBe('a directory holding HDF5 file(s) (sample_A.hdf5)');
    const other = join(temp, 'pngs');
    mkdirSync(other);
    writeFileSync(join(other, 'z0.png'), new Uint8Array(4));
    expect((await refusal(other)).found).toMatch(
      /no Zarr, N5 or precomputed metadata in it \(files such as z0\.png\)/,
    );
  });

  it('keeps VolumeNotFoundError for a missing input and a wrong array path inside a Zarr store', async () => {
    const missing = await openInputVolume(new LocalStore(join(temp, 'nothing-here'))).catch(
      (e: unknown) => e,
    );
    expect(missing).toBeInstanceOf(VolumeNotFoundError);
    const root = join(temp, 'store.zarr');
    await writeZarrArray(new LocalStore(root), {
      path: 'volumes/raw',
      data: new Uint8Array(8),
      shape: [2, 2, 2],
      chunkShape: [1, 2, 2],
    });
    const wrong = await openInputVolume(new LocalStore(root), 'volumes/rwa').catch(
      (e: unknown) => e,
    );
    expect(wrong).toBeInstanceOf(VolumeNotFoundError);
    expect(wrong).not.toBeInstanceOf(UnsupportedInputError);
    const chunkDir = await openInputVolume(new LocalStore(root), 'volumes').catch(
      (e: unknown) => e,
    );
    expect(chunkDir).not.toBeInstanceOf(UnsupportedInputError);
  });
});
