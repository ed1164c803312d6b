// tessera convert: HDF5 datasets (h5py-written) and TIFFs (tifffile-written, multipage and
// a stack directory) into OME-Zarr v3, read back with Tessera's own input reader and
// compared with what the writing script computed (test/fixtures/formats/expected.json);
// and a file far larger than a band converted in a child process whose peak memory
// growth stays a small fraction of the file.

import { execFile } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { main } from '../../cli/main.ts';
import {
  ConvertInputError,
  ConvertOutputExistsError,
  convertToOmeZarr,
  openConvertSource,
} from '../../core/convert/index.ts';
import { Box, type Vec3 } from '../../core/geometry/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { openInputVolume } from '../../core/volume/index.ts';
import { readJson } from '../../core/volume/json.ts';
import { expected, FORMATS_DIR, flatIndex, sha256 } from '../helpers/format-fixtures.ts';

const run = promisify(execFile);
const temp = mkdtempSync(join(tmpdir(), 'tessera-convert-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));
let outputs = 0;
const nextOutput = () => join(temp, `out-${++outputs}.zarr`);

async function convert(input: string, o: { dataset?: string; chunk?: Vec3 } = {}) {
  const out = nextOutput();
  const source = await openConvertSource(join(FORMATS_DIR, input), o.dataset);
  try {
    const result = await convertToOmeZarr(
      source,
      new LocalStore(out, { fsync: false }),
      o.chunk ? { chunk: o.chunk } : {},
    );
    return { out, result };
  } finally {
    await source.close();
  }
}

/** The converted image read back through Tessera's input reader: all channels, C order. */
async function readBack(out: string) {
  const v = await openInputVolume(new LocalStore(out));
  return { v, data: (await v.readBox(Box.ofShape(v.shape))).data };
}

describe('tessera convert', () => {
  it.each([
    ['an HDF5 [z, y, x] dataset', 'cremi.h5', '/volumes/raw', 'h5/volumes/raw', [4, 8, 8]],
    [
      'an HDF5 [c, z, y, x] dataset',
      'cremi.h5',
      'volumes/two_channels',
      'h5/volumes/two_channels',
      [4, 8, 8],
    ],
    [
      'a big-endian HDF5 dataset',
      'cremi.h5',
      '/volumes/big_endian',
      'h5/volumes/big_endian',
      [5, 7, 9],
    ],
    ['a multipage TIFF (zlib strips)', 'multipage.tif', undefined, 'tif/multipage', [3, 8, 16]],
    ['a TIFF stack, files in numeric name order', 'stack', undefined, 'tif/stack', [4, 5, 6]],
  ] as const)(
    'turns %s into OME-Zarr that Tessera reads back as written',
    async (_what, input, dataset, key, chunk) => {
      const want = expected(key);
      const { out, result } = await convert(input, {
        ...(dataset ? { dataset } : {}),
        chunk: [...chunk],
      });
      const { v, data } = await readBack(out);
      const spatial = want.shape.slice(-3);
      expect(v.shape).toEqual(spatial);
      expect(v.channels).toBe(want.shape.length === 4 ? want.shape[0] : 1);
      expect(v.dtype).toBe(want.dtype);
      expect(v.chunkShape).toEqual(chunk.map((c, a) => Math.min(c, spatial[a]!)));
      expect(sha256(data)).toBe(want.sha256);
      for (const [at, value] of want.samples) expect(data[flatIndex(want.shape, at)]).toBe(value);
      // Streaming: never more than one band (chunk depth x chunk height x the width) at once.
      const band = want.shape.length === 4 ? want.shape[0]! : 1;
      const bytes = data.BYTES_PER_ELEMENT;
      expect(result.bandBytes).toBe(
        band *
          Math.min(chunk[0], spatial[0]!) *
          Math.min(chunk[1], spatial[1]!) *
          spatial[2]! *
          bytes,
      );
    },
  );

  it.each([
    ['multipage.tif', undefined, 'tif/multipage', 2],
    ['cremi.h5', '/volumes/two_channels', 'h5/volumes/two_channels', 4],
  ] as const)(
    'splits a band too wide for maxBandBytes into whole chunks along x (%s)',
    async (input, dataset, key, bytes) => {
      const want = expected(key);
      const out = nextOutput();
      const source = await openConvertSource(join(FORMATS_DIR, input), dataset);
      const channels = want.shape.length === 4 ? want.shape[0]! : 1;
      const chunk: Vec3 = [3, 8, 7];
      let result: Awaited<ReturnType<typeof convertToOmeZarr>>;
      try {
        // Room for two chunks side by side, not three.
        const maxBandBytes = 2.5 * channels * 3 * 8 * 7 * bytes;
        result = await convertToOmeZarr(source, new LocalStore(out, { fsync: false }), {
          chunk,
          maxBandBytes,
        });
      } finally {
        await source.close();
      }
      expect(result.bandBytes).toBe(2 * channels * 3 * 8 * 7 * bytes);
      expect(sha256((await readBack(out)).data)).toBe(want.sha256);
    },
  );

  it('writes OME-Zarr 0.5 metadata with [c, z, y, x] axes and the voxel size HDF5 records', async () => {
    const { out } = await convert('cremi.h5', { dataset: '/volumes/raw' });
    const root = (await readJson(new LocalStore(out), '/zarr.json')) as {
      attributes: {
        ome: { version: string; multiscales: { axes: { name: string }[]; datasets: unknown[] }[] };
      };
    };
    expect(root.attributes.ome.version).toBe('0.5');
    expect(root.attributes.ome.multiscales[0]!.axes.map((a) => a.name)).toEqual([
      'c',
      'z',
      'y',
      'x',
    ]);
    const { v } = await readBack(out);
    // h5py wrote resolution [40, 4, 4] (CREMI's nm) on the dataset.
    expect(v.voxelSize).toEqual([40, 4, 4]);
  });

  it('takes the only dataset of a file without --dataset, and lists the datasets when there are several', async () => {
    const { out } = await convert('single.h5');
    expect(sha256((await readBack(out)).data)).toBe(expected('h5single/data').sha256);
    const several = await openConvertSource(join(FORMATS_DIR, 'cremi.h5')).catch((e: unknown) => e);
    expect(several).toBeInstanceOf(ConvertInputError);
    expect((several as ConvertInputError).reason).toBe('dataset');
    expect(String(several)).toContain(
      '4 datasets (/volumes/big_endian, /volumes/labels/neuron_ids, /volumes/raw, /volumes/two_channels)',
    );
    expect(String(several)).toContain('--dataset');
    const missing = await openConvertSource(join(FORMATS_DIR, 'cremi.h5'), '/volumes/nope').catch(
      (e: unknown) => e,
    );
    expect((missing as ConvertInputError).reason).toBe('dataset');
    const group = await openConvertSource(join(FORMATS_DIR, 'cremi.h5'), '/volumes').catch(
      (e: unknown) => e,
    );
    expect(String(group)).toMatch(/it has no dataset "\/volumes" \(that is a group\)/);
  });

  it('refuses what Tessera could not read after all: 64-bit labels, a --dataset for a TIFF, a file of another format', async () => {
    const labels = await openConvertSource(
      join(FORMATS_DIR, 'cremi.h5'),
      '/volumes/labels/neuron_ids',
    ).catch((e: unknown) => e);
    expect((labels as ConvertInputError).reason).toBe('data_type');
    expect(String(labels)).toContain('<Q');
    const tiff = await openConvertSource(join(FORMATS_DIR, 'multipage.tif'), '/x').catch(
      (e: unknown) => e,
    );
    expect((tiff as ConvertInputError).reason).toBe('option');
    const json = await openConvertSource(join(FORMATS_DIR, 'expected.json')).catch(
      (e: unknown) => e,
    );
    expect((json as ConvertInputError).reason).toBe('format');
    expect(String(json)).toMatch(/neither an HDF5 file nor a TIFF/);
  });

  it('never writes over an existing output', async () => {
    const { out } = await convert('single.h5');
    const source = await openConvertSource(join(FORMATS_DIR, 'single.h5'));
    try {
      await expect(convertToOmeZarr(source, new LocalStore(out))).rejects.toBeInstanceOf(
        ConvertOutputExistsError,
      );
    } finally {
      await source.close();
    }
  });

  it('runs as `tessera convert` with --dataset and --chunk, drawing progress and naming the result', async () => {
    const out = nextOutput();
    const written: string[] = [];
    const errors: string[] = [];
    const stdout = process.stdout.write.bind(process.stdout);
    const stderr = process.stderr.write.bind(process.stderr);
    process.stdout.write = ((s: string) => written.push(s) > 0) as typeof process.stdout.write;
    process.stderr.write = ((s: string) => errors.push(s) > 0) as typeof process.stderr.write;
    let code: number;
    let bad: number;
    try {
      code = await main([
        'convert',
        join(FORMATS_DIR, 'cremi.h5'),
        out,
        '--dataset',
        '/volumes/raw',
        '--chunk',
        '2,10,24',
      ]);
      bad = await main(['convert', join(FORMATS_DIR, 'cremi.h5'), nextOutput(), '--chunk', '2,10']);
    } finally {
      process.stdout.write = stdout;
      process.stderr.write = stderr;
    }
    expect(code).toBe(0);
    expect(written.join('')).toMatch(
      /Wrote .*out-\d+\.zarr: .*cremi\.h5:\/volumes\/raw as \[1, 6, 20, 24\] \(c, z, y, x\) uint8, chunks \[2, 10, 24\], 6 chunks/,
    );
    expect(errors.join('')).toContain('convert 6/6 chunks');
    expect((await readBack(out)).v.chunkShape).toEqual([2, 10, 24]);
    expect(bad).toBe(1);
    expect(errors.join('')).toContain('--chunk must be three positive integers');
  });
});

describe('tessera convert memory', () => {
  // 192 MiB of uint8, converted in bands of 8 x 64 x 1024 = 0.5 MiB. What is held beyond
  // a band is garbage not yet collected (30-50 MiB seen, whatever the file size).
  const Z = 192;
  const Y = 1024;
  const X = 1024;
  const value = (z: number, y: number, x: number) => (z * 7 + y * 3 + x + ((x * y) >> 5)) & 255;
  const plane = (z: number) => {
    const p = new Uint8Array(Y * X);
    for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) p[y * X + x] = value(z, y, x);
    return p;
  };

  /** A baseline uncompressed multipage TIFF, one strip per page, written page by page. */
  function writeTiff(path: string): void {
    const D = Y * X;
    const tags = 9;
    const I = 2 + 12 * tags + 4;
    const fd = openSync(path, 'w');
    try {
      const header = Buffer.alloc(8);
      header.write('II', 0, 'latin1');
      header.writeUInt16LE(42, 2);
      header.writeUInt32LE(8 + D, 4);
      writeSync(fd, header);
      for (let z = 0; z < Z; z++) {
        const dataAt = 8 + z * (D + I);
        writeSync(fd, plane(z));
        const ifd = Buffer.alloc(I);
        ifd.writeUInt16LE(tags, 0);
        const entries: [number, number, number][] = [
          [256, 4, X], // ImageWidth, LONG
          [257, 4, Y], // ImageLength
          [258, 3, 8], // BitsPerSample, SHORT
          [259, 3, 1], // Compression: none
          [262, 3, 1], // Photometric: black is zero
          [273, 4, dataAt], // StripOffsets
          [277, 3, 1], // SamplesPerPixel
          [278, 4, Y], // RowsPerStrip
          [279, 4, D], // StripByteCounts
        ];
        entries.forEach(([tag, type, v], i) => {
          const o = 2 + i * 12;
          ifd.writeUInt16LE(tag, o);
          ifd.writeUInt16LE(type, o + 2);
          ifd.writeUInt32LE(1, o + 4);
          if (type === 3) ifd.writeUInt16LE(v, o + 8);
          else ifd.writeUInt32LE(v, o + 8);
        });
        ifd.writeUInt32LE(z === Z - 1 ? 0 : 8 + (z + 1) * (D + I) + D, 2 + 12 * tags);
        writeSync(fd, ifd);
      }
    } finally {
      closeSync(fd);
    }
  }

  async function writeHdf5(path: string): Promise<void> {
    const h5 = await import('h5wasm/node');
    await h5.ready;
    const f = new h5.File(path, 'w');
    try {
      const slab = 8;
      const first = new Uint8Array(slab * Y * X);
      for (let z = 0; z < slab; z++) first.set(plane(z), z * Y * X);
      const ds = f.create_dataset({
        name: 'raw',
        data: first,
        shape: [slab, Y, X],
        dtype: '<B',
        maxshape: [null, Y, X],
        chunks: [8, 128, 128],
      });
      ds.resize([Z, Y, X]);
      for (let z0 = slab; z0 < Z; z0 += slab) {
        const part = new Uint8Array(slab * Y * X);
        for (let z = 0; z < slab; z++) part.set(plane(z0 + z), z * Y * X);
        ds.write_slice(
          [
            [z0, z0 + slab],
            [0, Y],
            [0, X],
          ],
          part,
        );
      }
    } finally {
      f.close();
    }
  }

  it.each([
    ['multipage TIFF', 'big.tif', writeTiff, undefined],
    ['HDF5', 'big.h5', writeHdf5, 'raw'],
  ] as const)(
    'converts a %s of 192 MiB with peak memory growth far below the file size',
    async (_what, name, write, dataset) => {
      const input = join(temp, name);
      await write(input);
      const size = statSync(input).size;
      expect(size).toBeGreaterThan(Z * Y * X);
      const out = nextOutput();
      const child = join(import.meta.dirname, '..', 'helpers', 'convert-memory-child.ts');
      const { stdout } = await run(
        process.execPath,
        [
          '--import',
          'tsx',
          '--expose-gc',
          child,
          input,
          out,
          '8,64,256',
          ...(dataset ? [dataset] : []),
        ],
        { cwd: join(import.meta.dirname, '..', '..'), maxBuffer: 1 << 20 },
      );
      const m = JSON.parse(stdout.trim().split('\n').pop()!) as {
        dataGrowth: number;
        rssBefore: number;
        rssPeak: number;
        bandBytes: number;
        chunks: number;
      };
      expect(m.bandBytes).toBe(8 * 64 * X);
      expect(m.chunks).toBe((Z / 8) * (Y / 64) * (X / 256));
      const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;
      console.log(
        `${name}: file ${mib(size)}, band ${mib(m.bandBytes)}, peak data growth ${mib(m.dataGrowth)}, RSS ${mib(m.rssBefore)} -> peak ${mib(m.rssPeak)}`,
      );
      // Bands, not the file: what the conversion holds (garbage not yet collected included)
      // stays well below the file's size.
      expect(m.dataGrowth).toBeLessThan(size / 2);
      // The result is the volume the writer wrote.
      const v = await openInputVolume(new LocalStore(out));
      for (const [z, y, x] of [
        [0, 0, 0],
        [191, 1023, 1023],
        [41, 517, 300],
        [8, 64, 256],
      ] as const) {
        const d = await v.readBox(new Box([z, y, x], [z + 1, y + 1, x + 1]));
        expect(d.data[0], `${z},${y},${x}`).toBe(value(z, y, x));
      }
    },
    120_000,
  );
});
