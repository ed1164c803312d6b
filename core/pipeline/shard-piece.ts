// A chunk's piece of a shard it does not assemble itself: for each block of the shard the
// chunk touches, the block's final encoded bytes (a block only this chunk touches) or its
// seam partial (the band it touches, the partial codec's bytes, zstd-compressed). One
// object per chunk and shard, so a chunk writes as many pieces as shards it touches, and
// the shard's last contributor reads one object per other contributor.
//
//   <work>/partials/shards/<shard key>/<chunk id>.bin
//   "TPC1" | u32 n | n × ( i32 block[3] | u8 kind (0 final, 1 partial) | u32 length | bytes )

import { PartialDecodeError } from '../blend/index.ts';
import type { Vec3 } from '../geometry/index.ts';

const MAGIC = 0x31435054; // "TPC1"
const ENTRY_HEADER = 17;

export type PieceEntry = { kind: 'final' | 'partial'; bytes: Uint8Array };

/** Under partials/ like the unsharded partials: the same grants, lifecycle tag and cleanup. */
export const piecePrefix = (shardKey: string): `/${string}` => `/partials/shards/${shardKey}/`;
export const pieceKey = (shardKey: string, chunkId: string): `/${string}` =>
  `${piecePrefix(shardKey)}${chunkId}.bin`;

export function encodePiece(
  entries: ReadonlyMap<string, PieceEntry & { coord: Vec3 }>,
): Uint8Array {
  let size = 8;
  for (const e of entries.values()) size += ENTRY_HEADER + e.bytes.byteLength;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, entries.size, true);
  let at = 8;
  for (const e of entries.values()) {
    for (let a = 0; a < 3; a++) view.setInt32(at + 4 * a, e.coord[a]!, true);
    view.setUint8(at + 12, e.kind === 'final' ? 0 : 1);
    view.setUint32(at + 13, e.bytes.byteLength, true);
    out.set(e.bytes, at + ENTRY_HEADER);
    at += ENTRY_HEADER + e.bytes.byteLength;
  }
  return out;
}

/** The entries by block key (`z_y_x`); a damaged piece is a PartialDecodeError naming it. */
export function decodePiece(bytes: Uint8Array, key: string): Map<string, PieceEntry> {
  const fail = (why: string): never => {
    throw new PartialDecodeError(
      `shard piece ${key} is unreadable (${why}); re-run the chunk that wrote it (tessera run resumes and rewrites it)`,
      key,
    );
  };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.byteLength < 8 || view.getUint32(0, true) !== MAGIC) fail('bad magic');
  const n = view.getUint32(4, true);
  const out = new Map<string, PieceEntry>();
  let at = 8;
  for (let i = 0; i < n; i++) {
    if (at + ENTRY_HEADER > bytes.byteLength) fail(`entry ${i} is cut short`);
    const coord = [0, 1, 2].map((a) => view.getInt32(at + 4 * a, true));
    const kind = view.getUint8(at + 12);
    const length = view.getUint32(at + 13, true);
    const start = at + ENTRY_HEADER;
    if (kind > 1 || start + length > bytes.byteLength) fail(`entry ${i} is damaged`);
    out.set(coord.join('_'), {
      kind: kind === 0 ? 'final' : 'partial',
      bytes: bytes.subarray(start, start + length),
    });
    at = start + length;
  }
  if (at !== bytes.byteLength) fail('trailing bytes');
  return out;
}
