// The PNG encoder, checked by an independent decoder written here: chunk layout and
// CRCs (against node:zlib's crc32), IHDR fields, and pixels after inflating and undoing
// every row filter.

import { inflateSync, crc32 as zlibCrc32 } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { crc32, encodeGrayPng } from '../../core/image/png.ts';

interface Decoded {
  width: number;
  height: number;
  depth: number;
  colour: number;
  pixels: Uint8Array;
  chunks: string[];
  filters: Set<number>;
}

function decode(png: Uint8Array): Decoded {
  expect(Array.from(png.subarray(0, 8))).toEqual([137, 80, 78, 71, 13, 10, 26, 10]);
  const v = new DataView(png.buffer, png.byteOffset, png.byteLength);
  const chunks: string[] = [];
  const idat: Uint8Array[] = [];
  let width = 0;
  let height = 0;
  let depth = 0;
  let colour = 0;
  for (let at = 8; at < png.length; ) {
    const len = v.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + len);
    const crc = v.getUint32(at + 8 + len);
    expect(crc, `CRC of ${type}`).toBe(zlibCrc32(png.subarray(at + 4, at + 8 + len)));
    chunks.push(type);
    if (type === 'IHDR') {
      const h = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = h.getUint32(0);
      height = h.getUint32(4);
      depth = data[8]!;
      colour = data[9]!;
      expect(Array.from(data.subarray(10))).toEqual([0, 0, 0]);
    }
    if (type === 'IDAT') idat.push(data);
    at += 12 + len;
  }
  const raw = inflateSync(Buffer.concat(idat));
  expect(raw.length).toBe(height * (width + 1));
  const pixels = new Uint8Array(width * height);
  const filters = new Set<number>();
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (width + 1)]!;
    filters.add(filter);
    expect(filter).toBeLessThanOrEqual(4);
    for (let x = 0; x < width; x++) {
      const a = x > 0 ? pixels[y * width + x - 1]! : 0;
      const b = y > 0 ? pixels[(y - 1) * width + x]! : 0;
      const c = x > 0 && y > 0 ? pixels[(y - 1) * width + x - 1]! : 0;
      const p = a + b - c;
      const pa = Math.abs(p - a);
      const pb = Math.abs(p - b);
      const pc = Math.abs(p - c);
      const predictor = [0, a, b, (a + b) >> 1, pa <= pb && pa <= pc ? a : pb <= pc ? b : c][
        filter
      ]!;
      pixels[y * width + x] = (raw[y * (width + 1) + 1 + x]! + predictor) & 0xff;
    }
  }
  return { width, height, depth, colour, pixels, chunks, filters };
}

describe('PNG encoder', () => {
  it('crc32 matches zlib', () => {
    const bytes = new TextEncoder().encode('IEND');
    expect(crc32(bytes)).toBe(0xae426082);
    expect(crc32(new Uint8Array(0))).toBe(0);
    const random = Uint8Array.from({ length: 1000 }, (_, i) => (i * 7919) & 0xff);
    expect(crc32(random)).toBe(zlibCrc32(random));
  });

  it('round-trips gradients, noise and edges through a decoder, filtering rows adaptively', () => {
    const width = 67;
    const height = 41;
    const pixels = new Uint8Array(width * height);
    for (let y = 0; y < height; y++)
      for (let x = 0; x < width; x++) {
        // Bands that favour different filters: flat, horizontal ramp, vertical ramp, noise.
        const band = Math.floor(y / 11);
        pixels[y * width + x] =
          band === 0
            ? 200
            : band === 1
              ? x * 3
              : band === 2
                ? y * 5
                : (x * 7919 + y * 104729) & 0xff;
      }
    const d = decode(encodeGrayPng({ width, height, pixels }));
    expect(d).toMatchObject({ width, height, depth: 8, colour: 0 });
    expect(d.chunks).toEqual(['IHDR', 'IDAT', 'IEND']);
    expect(Array.from(d.pixels)).toEqual(Array.from(pixels));
    expect(d.filters.size).toBeGreaterThan(1);
  });

  it('round-trips any image (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 24 }),
        fc.integer({ min: 1, max: 24 }),
        fc.infiniteStream(fc.integer({ min: 0, max: 255 })),
        (width, height, stream) => {
          const pixels = Uint8Array.from(stream.take(width * height));
          const d = decode(encodeGrayPng({ width, height, pixels }));
          expect(Array.from(d.pixels)).toEqual(Array.from(pixels));
        },
      ),
      { numRuns: 60 },
    );
  });

  it('rejects sizes that do not match the pixels', () => {
    expect(() => encodeGrayPng({ width: 3, height: 2, pixels: new Uint8Array(5) })).toThrow(
      /3×2 pixels expected/,
    );
    expect(() => encodeGrayPng({ width: 0, height: 2, pixels: new Uint8Array(0) })).toThrow(
      RangeError,
    );
  });
});
