// Judges a finished job chunk by chunk: its ledger row and the output voxels of its
// footprint against the whole-volume reference.
//
//   lost       the chunk is not DONE/SKIPPED, or it is but its footprint holds only the
//              fill value where the reference does not (its writes never landed)
//   divergent  its footprint differs from the reference by more than 1e-5
//   ok         otherwise
//
// Blend weights are strictly positive and the test models end in a sigmoid, so a
// computed voxel is never exactly 0: an all-zero footprint means unwritten.

import type { Plan } from '../core/geometry/index.ts';
import type { ChunkRow } from '../core/ledger/index.ts';

export const TOLERANCE = 1e-5;

export interface ChunkVerdict {
  chunkId: string;
  status: string;
  claims: number;
  verdict: 'ok' | 'lost' | 'divergent';
  maxDiff: number;
}

export function compareChunks(o: {
  plan: Plan;
  rows: readonly ChunkRow[];
  /** [C][z][y][x] over the whole volume. */
  got: Float32Array;
  expected: Float32Array;
  channels: number;
  /** Chunks expected to end FAILED (poison): not lost when they do. */
  expectFailed?: ReadonlySet<string>;
}): ChunkVerdict[] {
  const { plan } = o;
  sameLength(o.got, o.expected);
  const [Z, Y, X] = plan.volumeShape;
  const byId = new Map(o.rows.map((r) => [r.chunkId, r]));
  const out: ChunkVerdict[] = [];
  for (const chunk of plan.chunks()) {
    const row = byId.get(chunk.id);
    const status = row?.status ?? 'MISSING';
    const claims = row?.token ?? 0;
    if (o.expectFailed?.has(chunk.id)) {
      out.push({
        chunkId: chunk.id,
        status,
        claims,
        verdict: status === 'FAILED' ? 'ok' : 'divergent',
        maxDiff: 0,
      });
      continue;
    }
    const f = chunk.footprint;
    let maxDiff = 0;
    let written = false;
    for (let c = 0; c < o.channels; c++)
      for (let z = f.start[0]; z < f.stop[0]; z++)
        for (let y = f.start[1]; y < f.stop[1]; y++)
          for (let x = f.start[2]; x < f.stop[2]; x++) {
            const i = ((c * Z + z) * Y + y) * X + x;
            const g = o.got[i]!;
            if (g !== 0) written = true;
            const d = Math.abs(g - o.expected[i]!);
            if (!(d <= maxDiff)) maxDiff = Number.isNaN(d) ? Number.POSITIVE_INFINITY : d;
          }
    const done = status === 'DONE' || status === 'SKIPPED';
    const verdict = !done || !written ? 'lost' : maxDiff > TOLERANCE ? 'divergent' : 'ok';
    out.push({ chunkId: chunk.id, status, claims, verdict, maxDiff });
  }
  return out;
}

/** The volume's voxel count check: got and expected must both cover [C, Z, Y, X]. */
export function sameLength(a: ArrayLike<number>, b: ArrayLike<number>): void {
  if (a.length !== b.length)
    throw new Error(`output has ${a.length} values, reference ${b.length}`);
}
