// One axis of the plan. Everything in a 3D plan is a product of three independent axes
// (patch grid, chunk grid, block grid), so each question is answered per axis here and
// multiplied out in plan.ts. That is what keeps counts closed-form.
//
//   region   |s.............................................e|
//   patches  [P0----)                                    (last patch shifted back to end at e)
//                [P1----)
//                    [P2----)              ...      [Pn-1---)
//   chunks   [ k patches ][ k patches ]  ...  [ rest ]
//   seams          ^^ overlap between the last patch of chunk j and the first of j+1
//
// A region shorter than the patch gets one patch starting at s; it reaches past e and
// the part outside the volume is read as zeros (the output is cropped to the region).

export interface Interval {
  readonly start: number;
  readonly stop: number;
}

export class AxisPlan {
  readonly start: number;
  readonly stop: number;
  readonly patch: number;
  readonly overlap: number;
  readonly stride: number;
  readonly patchCount: number;
  /** Patches per chunk along this axis (the last chunk may hold fewer). */
  readonly patchesPerChunk: number;
  readonly chunkCount: number;
  readonly block: number;
  /** Input context read beyond each output patch (valid-convolution models); 0 otherwise. */
  readonly margin: number;
  /** Output blocks along this axis that intersect the region: [firstBlock, firstBlock + blockCount). */
  readonly firstBlock: number;
  readonly blockCount: number;
  /** For each block touching the region (relative index), the chunks whose footprint touches it. */
  private readonly blockChunks: Interval[];
  /** For each chunk, the range of blocks (absolute indices) its footprint touches. */
  private readonly chunkBlocks: Interval[];

  constructor(o: {
    start: number;
    stop: number;
    patch: number;
    overlap: number;
    chunk: number;
    block: number;
    margin?: number;
  }) {
    this.start = o.start;
    this.stop = o.stop;
    this.patch = o.patch;
    this.overlap = o.overlap;
    this.stride = o.patch - o.overlap;
    const n = o.stop - o.start;
    this.patchCount = n <= o.patch ? 1 : Math.ceil((n - o.patch) / this.stride) + 1;
    // The largest k whose span P + (k-1)·S fits in the requested chunk extent, at least 1.
    this.patchesPerChunk = Math.max(1, Math.floor((o.chunk - o.patch) / this.stride) + 1);
    this.chunkCount = Math.ceil(this.patchCount / this.patchesPerChunk);
    this.block = o.block;
    this.margin = o.margin ?? 0;
    this.firstBlock = Math.floor(o.start / o.block);
    this.blockCount = Math.ceil(o.stop / o.block) - this.firstBlock;

    // Per-axis tables are O(chunks + blocks along one axis): thousands at most, even for a
    // petavoxel volume, so they are precomputed once.
    this.chunkBlocks = [];
    for (let j = 0; j < this.chunkCount; j++) {
      const f = this.chunkFootprint(j);
      this.chunkBlocks.push({
        start: Math.floor(f.start / o.block),
        stop: Math.ceil(f.stop / o.block),
      });
    }
    this.blockChunks = [];
    let lo = 0;
    for (let q = this.firstBlock; q < this.firstBlock + this.blockCount; q++) {
      // Footprints are sorted by start and by stop, so touching chunks form a contiguous run.
      while (lo < this.chunkCount && this.chunkBlocks[lo]!.stop <= q) lo++;
      let hi = lo;
      while (hi < this.chunkCount && this.chunkBlocks[hi]!.start <= q) hi++;
      this.blockChunks.push({ start: lo, stop: hi });
    }
  }

  patchStart(i: number): number {
    const n = this.stop - this.start;
    return this.start + (n <= this.patch ? 0 : Math.min(i * this.stride, n - this.patch));
  }

  /** Patch indices [start, stop) of chunk j. */
  chunkPatches(j: number): Interval {
    const start = j * this.patchesPerChunk;
    return { start, stop: Math.min(this.patchCount, start + this.patchesPerChunk) };
  }

  /** Voxels the chunk's (output) patches cover. */
  chunkOutput(j: number): Interval {
    const p = this.chunkPatches(j);
    return { start: this.patchStart(p.start), stop: this.patchStart(p.stop - 1) + this.patch };
  }

  /** Voxels the chunk's patches read: their output plus the input margin (may extend past the volume). */
  chunkRead(j: number): Interval {
    const o = this.chunkOutput(j);
    return { start: o.start - this.margin, stop: o.stop + this.margin };
  }

  /** Voxels of the region the chunk's patches write to. */
  chunkFootprint(j: number): Interval {
    const r = this.chunkOutput(j);
    return { start: Math.max(r.start, this.start), stop: Math.min(r.stop, this.stop) };
  }

  /** Blocks (absolute indices) touched by chunk j's footprint. */
  chunkBlockRange(j: number): Interval {
    return this.chunkBlocks[j]!;
  }

  /** Chunks whose footprint touches block q (absolute index); empty if q misses the region. */
  blockChunkRange(q: number): Interval {
    return this.blockChunks[q - this.firstBlock] ?? { start: 0, stop: 0 };
  }

  /** Blocks along this axis touched by exactly one chunk. */
  singleOwnerBlockCount(): number {
    return this.blockChunks.filter((c) => c.stop - c.start === 1).length;
  }

  /** Σ over blocks of the number of chunks touching each (block-chunk incidences). */
  blockChunkIncidences(): number {
    return this.blockChunks.reduce((sum, c) => sum + c.stop - c.start, 0);
  }

  /** Voxels inferred along this axis by chunkflow-style margin cropping with chunk core `chunk`. */
  static marginCroppingPatches(o: {
    n: number;
    patch: number;
    overlap: number;
    chunk: number;
  }): number {
    const stride = o.patch - o.overlap;
    const perChunk = (extent: number): number =>
      extent <= o.patch ? 1 : Math.ceil((extent - o.patch) / stride) + 1;
    // Each chunk is inferred over its core plus a margin of `overlap` on both sides.
    const full = Math.floor(o.n / o.chunk);
    const rest = o.n - full * o.chunk;
    const margin = o.overlap;
    return full * perChunk(o.chunk + 2 * margin) + (rest > 0 ? perChunk(rest + 2 * margin) : 0);
  }
}
