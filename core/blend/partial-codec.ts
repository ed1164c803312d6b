// Binary encoding of a seam partial (Σw·f per channel over a box; Σw is not stored, it
// is known from geometry). Internal format, little-endian:
//
//   "TSP2" | u32 channels | i32 start[3] | i32 stop[3] | f32 num[C·n]
//
// ("TSP1", which also carried Σw per voxel, is refused: re-run the chunk that wrote it.)
//
// A fixed header instead of JSON keeps decoding allocation-free apart from the copy out
// of the (possibly unaligned) object buffer, and lets a truncated object be detected.

import { copyBox } from '../array/dense.ts';
import { Box } from '../geometry/index.ts';
import { PartialSum } from './accumulator.ts';
import type { WeightSums } from './weight-sums.ts';

const MAGIC = 0x32505354; // "TSP2"
/** Bytes of a partial's header: what each partial object costs beyond its values. */
export const PARTIAL_HEADER_BYTES = 32;
const HEADER = PARTIAL_HEADER_BYTES;

export class PartialDecodeError extends Error {
  override readonly name = 'PartialDecodeError';
  constructor(
    message: string,
    readonly key: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Encodes `p` restricted to `box` (default all of it) straight from its rows: no copy in
 * between. `scratch`, when large enough, holds the result (a view of its start is
 * returned): a writer that stores one partial at a time reuses one buffer for all.
 */
export function encodePartial(p: PartialSum, box: Box = p.box, scratch?: Uint8Array): Uint8Array {
  const b = box.intersect(p.box);
  const n = b.size;
  const size = HEADER + 4 * n * p.channels;
  const out =
    scratch && scratch.byteLength >= size && scratch.byteOffset === 0
      ? scratch.subarray(0, size)
      : new Uint8Array(size);
  const view = new DataView(out.buffer);
  view.setUint32(0, MAGIC, true);
  view.setUint32(4, p.channels, true);
  for (let a = 0; a < 3; a++) {
    view.setInt32(8 + 4 * a, b.start[a]!, true);
    view.setInt32(20 + 4 * a, b.stop[a]!, true);
  }
  const floats = new Float32Array(out.buffer, HEADER, n * p.channels);
  copyBox(p.num, { box: b, channels: p.channels, data: floats }, b);
  return out;
}

export function decodePartial(bytes: Uint8Array, key: string, sums: WeightSums): PartialSum {
  const fail = (why: string): never => {
    throw new PartialDecodeError(
      `seam partial ${key} is unreadable (${why}); re-run the chunk that wrote it (tessera run resumes and rewrites it)`,
      key,
    );
  };
  if (bytes.byteLength < HEADER) fail('shorter than its header');
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) fail('bad magic');
  const channels = view.getUint32(4, true);
  const start = [0, 1, 2].map((a) => view.getInt32(8 + 4 * a, true));
  const stop = [0, 1, 2].map((a) => view.getInt32(20 + 4 * a, true));
  const box = new Box(
    start as unknown as [number, number, number],
    stop as unknown as [number, number, number],
  );
  const n = box.size;
  if (bytes.byteLength !== HEADER + 4 * n * channels)
    fail(`expected ${HEADER + 4 * n * channels} bytes, got ${bytes.byteLength}`);
  // A view when the bytes are 4-byte aligned (whole-file reads are); else one aligned copy.
  const at = bytes.byteOffset + HEADER;
  const floats =
    at % 4 === 0
      ? new Float32Array(bytes.buffer as ArrayBuffer, at, n * channels)
      : new Float32Array(bytes.slice(HEADER).buffer);
  return new PartialSum(box, channels, sums, floats, true);
}
