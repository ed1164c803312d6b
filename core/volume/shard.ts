// One shard of a Zarr v3 `sharding_indexed` array, as bytes: inner chunks one after
// another, then the index, with the index's CRC-32C last (index_codecs bytes + crc32c,
// index_location "end"; spec: zarr-specs docs/v3/codecs/sharding-indexed/v1.0.rst):
//
//   | chunk 0 | chunk 1 | ... | offset₀ nbytes₀ | offset₁ nbytes₁ | ... | crc32c |
//   '----- data -----'        '-- n × 2 uint64 little-endian, C order --'  uint32 LE
//
// Entry i locates inner chunk i (C order over the shard's grid of inner chunks); an
// empty inner chunk takes no bytes and its entry is (2^64 − 1, 2^64 − 1). Tessera writes
// the chunks in index order, back to back, so the same chunk bytes always give the same
// shard bytes. Readers take the index with one suffix range read and each inner chunk
// with one range read; the index is trusted only once its checksum and its entries pass.

import type { AbsolutePath, Store } from '../store/index.ts';
import type { CodecSpec } from './block-codec.ts';
import { crc32c } from './crc32c.ts';
import { ShardIndexError } from './errors.ts';

/** The index codecs Tessera writes (and the only ones it reads). */
export const SHARD_INDEX_CODECS: readonly CodecSpec[] = [
  { name: 'bytes', configuration: { endian: 'little' } },
  { name: 'crc32c' },
];

const EMPTY = 0xffff_ffff_ffff_ffffn;
const ENTRY_BYTES = 16;
const CHECKSUM_BYTES = 4;

/** Bytes of the stored index (entries + checksum) of a shard of `innerCount` inner chunks. */
export const indexByteLength = (innerCount: number): number =>
  innerCount * ENTRY_BYTES + CHECKSUM_BYTES;

/** Where one inner chunk's bytes are in its shard. */
export interface InnerRange {
  readonly offset: number;
  readonly length: number;
}

/** The shard's bytes from its inner chunks in index order; undefined = empty inner chunk. */
export function encodeShard(chunks: readonly (Uint8Array | undefined)[]): Uint8Array {
  const dataBytes = chunks.reduce((sum, c) => sum + (c?.length ?? 0), 0);
  const out = new Uint8Array(dataBytes + indexByteLength(chunks.length));
  const index = new DataView(out.buffer, dataBytes, chunks.length * ENTRY_BYTES);
  let offset = 0;
  chunks.forEach((chunk, i) => {
    const at = i * ENTRY_BYTES;
    if (chunk === undefined) {
      index.setBigUint64(at, EMPTY, true);
      index.setBigUint64(at + 8, EMPTY, true);
      return;
    }
    out.set(chunk, offset);
    index.setBigUint64(at, BigInt(offset), true);
    index.setBigUint64(at + 8, BigInt(chunk.length), true);
    offset += chunk.length;
  });
  const entries = out.subarray(dataBytes, dataBytes + chunks.length * ENTRY_BYTES);
  new DataView(out.buffer).setUint32(out.length - CHECKSUM_BYTES, crc32c(entries), true);
  return out;
}

/** A decoded, checked shard index. */
export class ShardIndex {
  constructor(private readonly entries: readonly (InnerRange | undefined)[]) {}

  get count(): number {
    return this.entries.length;
  }

  /** Where inner chunk `i` is, or undefined when it is empty (reads as the fill value). */
  range(i: number): InnerRange | undefined {
    if (!(Number.isInteger(i) && i >= 0 && i < this.entries.length))
      throw new RangeError(`inner chunk ${i} is outside a shard of ${this.entries.length}`);
    return this.entries[i];
  }

  /** How many inner chunks are stored (not empty). */
  get stored(): number {
    return this.entries.reduce((n, e) => n + (e === undefined ? 0 : 1), 0);
  }
}

/** Names the shard in errors: the output's location and the shard's key. */
export interface ShardRef {
  readonly location: string;
  readonly key: AbsolutePath;
}

/**
 * Decodes the stored index (the last indexByteLength(innerCount) bytes of the shard).
 * Throws ShardIndexError when it is cut short, fails its checksum, or holds an entry no
 * writer produces (half empty, past 2^53, or, when the shard's size is known, past its
 * data).
 */
export function decodeShardIndex(
  bytes: Uint8Array,
  innerCount: number,
  ref: ShardRef,
  shardBytes?: number,
): ShardIndex {
  const fail = (problem: 'length' | 'checksum' | 'entry', detail: string) =>
    new ShardIndexError(ref.location, ref.key, problem, detail);
  const expected = indexByteLength(innerCount);
  if (bytes.length !== expected)
    throw fail(
      'length',
      `the shard ends after ${bytes.length} bytes, its index alone takes ${expected} (${innerCount} inner chunks)`,
    );
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const entriesBytes = bytes.subarray(0, expected - CHECKSUM_BYTES);
  const stored = view.getUint32(expected - CHECKSUM_BYTES, true);
  const computed = crc32c(entriesBytes);
  if (stored !== computed)
    throw fail(
      'checksum',
      `its CRC-32C is ${hex(computed)} but ${hex(stored)} is stored (the shard was cut short, overwritten or damaged)`,
    );
  const dataEnd = shardBytes === undefined ? undefined : shardBytes - expected;
  const entries: (InnerRange | undefined)[] = [];
  for (let i = 0; i < innerCount; i++) {
    const offset = view.getBigUint64(i * ENTRY_BYTES, true);
    const length = view.getBigUint64(i * ENTRY_BYTES + 8, true);
    if (offset === EMPTY && length === EMPTY) {
      entries.push(undefined);
      continue;
    }
    const end = offset + length;
    if (offset === EMPTY || length === EMPTY || end > BigInt(Number.MAX_SAFE_INTEGER))
      throw fail('entry', `inner chunk ${i} has the entry (offset ${offset}, nbytes ${length})`);
    if (dataEnd !== undefined && end > BigInt(dataEnd))
      throw fail(
        'entry',
        `inner chunk ${i} ends at byte ${end}, past the shard's ${dataEnd} bytes of chunk data`,
      );
    entries.push({ offset: Number(offset), length: Number(length) });
  }
  return new ShardIndex(entries);
}

/**
 * The index of the shard at `ref.key`, read with one suffix range request; undefined
 * when the shard does not exist (every inner chunk reads as the fill value).
 */
export async function readShardIndex(
  store: Store,
  ref: ShardRef,
  innerCount: number,
): Promise<ShardIndex | undefined> {
  const length = indexByteLength(innerCount);
  if (store.getRange === undefined) {
    const whole = await store.get(ref.key);
    if (whole === undefined) return undefined;
    return decodeShardIndex(
      whole.subarray(Math.max(0, whole.length - length)),
      innerCount,
      ref,
      whole.length,
    );
  }
  const tail = await store.getRange(ref.key, { suffixLength: length });
  return tail === undefined ? undefined : decodeShardIndex(tail, innerCount, ref);
}

/**
 * The stored bytes of inner chunk `i` (still encoded with the inner codecs), undefined
 * when the index marks it empty or the shard has gone. A range that comes back short
 * means the index points past the shard's end: ShardIndexError.
 */
export async function readInnerChunk(
  store: Store,
  ref: ShardRef,
  index: ShardIndex,
  i: number,
): Promise<Uint8Array | undefined> {
  const range = index.range(i);
  if (range === undefined) return undefined;
  const bytes =
    store.getRange === undefined
      ? (await store.get(ref.key))?.subarray(range.offset, range.offset + range.length)
      : await store.getRange(ref.key, range);
  if (bytes === undefined) return undefined;
  if (bytes.length !== range.length)
    throw new ShardIndexError(
      ref.location,
      ref.key,
      'entry',
      `inner chunk ${i} is indexed at bytes ${range.offset}..${range.offset + range.length}, but only ${bytes.length} of them exist`,
    );
  return bytes;
}

const hex = (v: number): string => `0x${v.toString(16).toUpperCase().padStart(8, '0')}`;
