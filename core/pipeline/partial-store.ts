// Seam partials in the job's work store: the partial codec's bytes (TSP2, cropped to the
// band of the block the chunk touches), zstd-compressed at level 1. A partial written
// uncompressed by an earlier release (it starts with the codec's magic, not zstd's) is
// read as it is. Shard pieces (shard-piece.ts) carry partials compressed the same way.
//
//   <work>/partials/<block key>/<chunk id>   zstd(TSP2 header | f32 Σw·f over the band)

import { PartialDecodeError } from '../blend/index.ts';
import type { Store } from '../store/index.ts';
import { FastZstd } from '../volume/zstd.ts';

const zstd = new FastZstd(1);
/** zstd's frame magic, little-endian (RFC 8878 §3.1.1). */
const ZSTD_MAGIC = 0xfd2fb528;

/** A partial's codec bytes, compressed (the input may be a reused scratch view). */
export function compressPartial(encoded: Uint8Array): Promise<Uint8Array> {
  return zstd.encode(encoded);
}

/** A stored partial's codec bytes: decompressed, or as they are when stored raw. */
export async function decompressPartial(stored: Uint8Array, key: string): Promise<Uint8Array> {
  const isZstd =
    stored.byteLength >= 4 &&
    new DataView(stored.buffer, stored.byteOffset, 4).getUint32(0, true) === ZSTD_MAGIC;
  if (!isZstd) return stored;
  try {
    return await zstd.decode(stored);
  } catch (error) {
    if (!(error instanceof Error)) throw error;
    throw new PartialDecodeError(
      `seam partial ${key} is unreadable (zstd: ${error.message}); re-run the chunk that wrote it (tessera run resumes and rewrites it)`,
      key,
      { cause: error },
    );
  }
}

/** Compresses and stores a partial; returns the stored size. */
export async function writePartial(
  work: Store,
  key: `/${string}`,
  encoded: Uint8Array,
): Promise<number> {
  const bytes = await compressPartial(encoded);
  await work.set(key, bytes);
  return bytes.byteLength;
}

/** The partial's codec bytes, or undefined when it is not there. */
export async function readPartial(work: Store, key: `/${string}`): Promise<Uint8Array | undefined> {
  const stored = await work.get(key);
  return stored === undefined ? undefined : decompressPartial(stored, key);
}
