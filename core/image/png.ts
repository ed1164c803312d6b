// A minimal PNG encoder: 8-bit grayscale, one IDAT, zlib from node:zlib. Enough for the
// previews finalize writes, without an image library (the container images stay small
// and the Lambda bundle has no native code).
//
//   signature | IHDR (w, h, depth 8, colour 0) | IDAT (deflate of filtered rows) | IEND
//   each chunk: length (4, BE) | type (4) | data | CRC-32 of type + data (4, BE)

import { deflateSync } from 'node:zlib';

const SIGNATURE = Uint8Array.of(0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309, as PNG and zlib's crc32 use it). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = ~crc >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return ~c >>> 0;
}

export interface GrayImage {
  readonly width: number;
  readonly height: number;
  /** Row-major, one byte per pixel, width × height. */
  readonly pixels: Uint8Array;
}

/** Encodes an 8-bit grayscale image as PNG. */
export function encodeGrayPng(img: GrayImage): Uint8Array {
  const { width, height, pixels } = img;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1)
    throw new RangeError(`a PNG needs a positive integer size, got ${width}×${height}`);
  if (pixels.length !== width * height)
    throw new RangeError(`${width}×${height} pixels expected, got ${pixels.length}`);
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, width);
  v.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 0; // colour type: grayscale
  // compression 0, filter method 0, no interlace
  const idat = deflateSync(filterRows(pixels, width, height), { level: 9 });
  return concat([
    SIGNATURE,
    chunk('IHDR', ihdr),
    chunk('IDAT', idat),
    chunk('IEND', new Uint8Array(0)),
  ]);
}

/**
 * Each row gets the filter (of PNG's five) with the smallest sum of absolute residuals,
 * the heuristic libpng recommends: smooth microscopy images then compress 2–4× better
 * than unfiltered rows.
 */
function filterRows(px: Uint8Array, width: number, height: number): Uint8Array {
  const out = new Uint8Array(height * (width + 1));
  const zero = new Uint8Array(width);
  const abs = (r: number): number => (r < 128 ? r : 256 - r);
  for (let y = 0; y < height; y++) {
    const at = y * width;
    const up = y > 0 ? px : zero;
    const ut = y > 0 ? at - width : 0;
    // The five costs in one pass over the row, then the winner's residuals in a second.
    let c0 = 0;
    let c1 = 0;
    let c2 = 0;
    let c3 = 0;
    let c4 = 0;
    for (let x = 0; x < width; x++) {
      const v = px[at + x]!;
      const a = x > 0 ? px[at + x - 1]! : 0;
      const b = up[ut + x]!;
      const c = x > 0 ? up[ut + x - 1]! : 0;
      c0 += abs(v);
      c1 += abs((v - a) & 0xff);
      c2 += abs((v - b) & 0xff);
      c3 += abs((v - ((a + b) >>> 1)) & 0xff);
      c4 += abs((v - paeth(a, b, c)) & 0xff);
    }
    // Ties go to the lower filter type, as when trying them in order.
    let type = 0;
    let best = c0;
    if (c1 < best) [type, best] = [1, c1];
    if (c2 < best) [type, best] = [2, c2];
    if (c3 < best) [type, best] = [3, c3];
    if (c4 < best) [type, best] = [4, c4];
    const o = y * (width + 1);
    out[o] = type;
    for (let x = 0; x < width; x++) {
      const v = px[at + x]!;
      const a = x > 0 ? px[at + x - 1]! : 0;
      const b = up[ut + x]!;
      const predicted =
        type === 0
          ? 0
          : type === 1
            ? a
            : type === 2
              ? b
              : type === 3
                ? (a + b) >>> 1
                : paeth(a, b, x > 0 ? up[ut + x - 1]! : 0);
      out[o + 1 + x] = (v - predicted) & 0xff;
    }
  }
  return out;
}

export function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}
