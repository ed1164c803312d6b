// Chunk ids of sharded precomputed volumes: the "compressed Morton code" of a chunk's
// grid cell, and the hash that maps an id to its shard and minishard (sharded.md).
//
//   bit i of x, y, z interleaved from bit 0, x first; an axis whose grid needs fewer
//   bits (ceil(log2(grid))) drops out once its bits are spent:
//   grid [x 4, y 3, z 2] → bits x0 y0 z0 x1 y1   (z needs 1 bit, x and y 2)

import type { Vec3 } from '../../geometry/index.ts';

/** The compressed Morton code of grid cell `cell` in a grid of `grid` cells, both (x, y, z). */
export function compressedMortonCode(cell: Vec3, grid: Vec3): bigint {
  const bits = grid.map((g) => bitWidth(g - 1));
  const most = Math.max(...bits);
  let code = 0n;
  let j = 0n;
  for (let i = 0; i < most; i++)
    for (let dim = 0; dim < 3; dim++)
      if (i < bits[dim]!) {
        code |= BigInt((Math.floor(cell[dim]! / 2 ** i) & 1) as number) << j;
        j++;
      }
  return code;
}

/** Bits needed to write `v` (0 for 0): ceil(log2(v + 1)). */
const bitWidth = (v: number): number => (v <= 0 ? 0 : Math.floor(Math.log2(v)) + 1);

const M64 = (1n << 64n) - 1n;

/** The id `hash(chunkId >> preshift)` that chooses shard and minishard. */
export function hashedChunkId(
  id: bigint,
  preshiftBits: number,
  hash: 'identity' | 'murmurhash3_x86_128',
): bigint {
  const shifted = (id >> BigInt(preshiftBits)) & M64;
  return hash === 'identity' ? shifted : murmurLow64(shifted);
}

/** The low 8 bytes (little endian) of MurmurHash3_x86_128, seed 0, of `value` as uint64le. */
export function murmurLow64(value: bigint): bigint {
  const key = new Uint8Array(8);
  new DataView(key.buffer).setBigUint64(0, value, true);
  const [h1, h2] = murmurhash3x86x128(key, 0);
  return (BigInt(h2) << 32n) | BigInt(h1);
}

const C1 = 0x239b961b;
const C2 = 0xab0e9789;
const C3 = 0x38b34ae5;
const C4 = 0xa1e38b93;

const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;
const mul = (a: number, b: number): number => Math.imul(a, b) >>> 0;

function fmix(h: number): number {
  let k = h;
  k ^= k >>> 16;
  k = mul(k, 0x85ebca6b);
  k ^= k >>> 13;
  k = mul(k, 0xc2b2ae35);
  k ^= k >>> 16;
  return k >>> 0;
}

/** MurmurHash3_x86_128 (Austin Appleby): the four 32-bit words of the 16-byte result. */
export function murmurhash3x86x128(
  data: Uint8Array,
  seed: number,
): [number, number, number, number] {
  let h1 = seed >>> 0;
  let h2 = seed >>> 0;
  let h3 = seed >>> 0;
  let h4 = seed >>> 0;
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const blocks = Math.floor(data.length / 16);
  for (let i = 0; i < blocks; i++) {
    let k1 = view.getUint32(i * 16, true);
    let k2 = view.getUint32(i * 16 + 4, true);
    let k3 = view.getUint32(i * 16 + 8, true);
    let k4 = view.getUint32(i * 16 + 12, true);
    k1 = mul(rotl(mul(k1, C1), 15), C2);
    h1 = (((rotl((h1 ^ k1) >>> 0, 19) + h2) >>> 0) * 5 + 0x561ccd1b) >>> 0;
    k2 = mul(rotl(mul(k2, C2), 16), C3);
    h2 = (((rotl((h2 ^ k2) >>> 0, 17) + h3) >>> 0) * 5 + 0x0bcaa747) >>> 0;
    k3 = mul(rotl(mul(k3, C3), 17), C4);
    h3 = (((rotl((h3 ^ k3) >>> 0, 15) + h4) >>> 0) * 5 + 0x96cd1c35) >>> 0;
    k4 = mul(rotl(mul(k4, C4), 18), C1);
    h4 = (((rotl((h4 ^ k4) >>> 0, 13) + h1) >>> 0) * 5 + 0x32ac3b17) >>> 0;
  }
  const tail = data.subarray(blocks * 16);
  const k = [0, 0, 0, 0];
  for (let i = 0; i < tail.length; i++) k[i >> 2]! |= tail[i]! << (8 * (i & 3));
  const n = tail.length;
  if (n > 12) h4 = (h4 ^ mul(rotl(mul(k[3]! >>> 0, C4), 18), C1)) >>> 0;
  if (n > 8) h3 = (h3 ^ mul(rotl(mul(k[2]! >>> 0, C3), 17), C4)) >>> 0;
  if (n > 4) h2 = (h2 ^ mul(rotl(mul(k[1]! >>> 0, C2), 16), C3)) >>> 0;
  if (n > 0) h1 = (h1 ^ mul(rotl(mul(k[0]! >>> 0, C1), 15), C2)) >>> 0;
  const len = data.length;
  h1 = (h1 ^ len) >>> 0;
  h2 = (h2 ^ len) >>> 0;
  h3 = (h3 ^ len) >>> 0;
  h4 = (h4 ^ len) >>> 0;
  h1 = (h1 + h2 + h3 + h4) >>> 0;
  h2 = (h2 + h1) >>> 0;
  h3 = (h3 + h1) >>> 0;
  h4 = (h4 + h1) >>> 0;
  h1 = fmix(h1);
  h2 = fmix(h2);
  h3 = fmix(h3);
  h4 = fmix(h4);
  h1 = (h1 + h2 + h3 + h4) >>> 0;
  h2 = (h2 + h1) >>> 0;
  h3 = (h3 + h1) >>> 0;
  h4 = (h4 + h1) >>> 0;
  return [h1, h2, h3, h4];
}
