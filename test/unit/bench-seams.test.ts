// The bench's seam figures (bench/seams.ts) count what the pipeline writes: checked here
// against counts worked out by hand for a small layout (the default ÷ 8), so a wrapper
// that misses or misfiles a write, or a pipeline that writes a block twice, shows.
//
//   patch 16, overlap 4, chunk 64, block 15 (the default 120 ÷ 8): stride 12, 5 patches
//   a chunk, pitch 60 = 4 blocks; 2 chunks an axis: volume 2 × 60 + 4 = 124 = 8.27 blocks
//   → 9 × 9 × 9 = 729 blocks.

import { describe, expect, it } from 'vitest';
import { seamsBench } from '../../bench/seams.ts';

describe('bench seams', () => {
  it('counts one PUT per output block, one completion per chunk, and names the sharded shape', async () => {
    const f = await seamsBench({ scale: 8, chunksPerAxis: 2, sharded: false });
    expect(f.volumeShape).toEqual([124, 124, 124]);
    expect(f.chunks).toBe(8);
    // Unsharded, one worker: every block is written once, final (729 blocks ÷ 8 chunks).
    expect(f.outputPutsPerChunk).toBe(729 / 8);
    expect(f.shardedWritten).toBe(false);
    expect(f.ledgerCalls.complete).toBe(8);
    // Claims: the 8 chunks, then one that finds nothing.
    expect(f.ledgerCalls.claim).toBe(9);
    expect(f.leftoverSeamBlocks).toBe(0);
    // Chunk 1_1_1 is claimed last and is the last contributor of all its seams: it writes
    // no partial; the others do, so some partial bytes are written, fewer than the output's.
    expect(f.middleChunk).toMatchObject({ id: '1_1_1', partialPuts: 0, partialBytes: 0 });
    expect(f.partialBytes).toBeGreaterThan(0);
    expect(f.partialRatio).toBeLessThan(1);
    // The pitch, 60, is 4 whole blocks: shards of one pitch.
    const sharded = await seamsBench({ scale: 8, chunksPerAxis: 2, sharded: true });
    expect(sharded.shardShape).toEqual([60, 60, 60]);
  });
});
