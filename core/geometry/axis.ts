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

/** One axis of a plan: the region's extent on it and the shapes along it. */
export interface AxisInput {
  start: number;
  stop: number;
  patch: number;
  overlap: number;
  chunk: number;
  block: number;
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
  /** Region blocks touched by two or more chunks' footprints, and Σ chunks per block. */
  private readonly seamBlocks: number;
  private readonly incidences: number;

  constructor(o: AxisInput & { margin?: number }) {
    this.start = o.start;
    this.stop = o.stop;
    this.patch = o.patch;
    this.overlap = o.overlap;
    const g = AxisPlan.grid(o);
    this.stride = g.stride;
    this.patchCount = g.patchCount;
    this.patchesPerChunk = g.patchesPerChunk;
    this.chunkCount = g.chunkCount;
    this.block = o.block;
    this.margin = o.margin ?? 0;
    this.firstBlock = g.firstBlock;
    this.blockCount = g.blockCount;

    // No per-chunk or per-block tables: memory stays constant per axis whatever shape a
    // zarr.json claims. The two block sums below are one pass over this axis's chunks, a
    // count the plan limits bound before any Plan is built (planSize, in plan.ts).
    // Footprints are sorted by start and by stop, so the chunks touching a block form a
    // contiguous run, and a block is a seam block iff two consecutive chunks both touch it:
    // the seam blocks are the union of the (sorted) ranges chunkBlocks(j) ∩ chunkBlocks(j+1).
    let seams = 0;
    let incidences = 0;
    let covered = Number.NEGATIVE_INFINITY;
    let prev: Interval | undefined;
    for (let j = 0; j < this.chunkCount; j++) {
      const r = this.chunkBlockRange(j);
      incidences += r.stop - r.start;
      if (prev) {
        const from = Math.max(r.start, covered);
        if (prev.stop > from) seams += prev.stop - from;
        covered = Math.max(covered, prev.stop);
      }
      prev = r;
    }
    this.seamBlocks = seams;
    this.incidences = incidences;
  }

  /**
   * The closed-form counts of an axis (patches, chunks, region blocks), without describing
   * it: what plan limits are checked against before a plan is built.
   */
  static grid(o: AxisInput): {
    stride: number;
    patchCount: number;
    patchesPerChunk: number;
    chunkCount: number;
    firstBlock: number;
    blockCount: number;
  } {
    const stride = o.patch - o.overlap;
    const n = o.stop - o.start;
    const patchCount = n <= o.patch ? 1 : Math.ceil((n - o.patch) / stride) + 1;
    // The largest k whose span P + (k-1)·S fits in the requested chunk extent, at least 1.
    const patchesPerChunk = Math.max(1, Math.floor((o.chunk - o.patch) / stride) + 1);
    const firstBlock = Math.floor(o.start / o.block);
    return {
      stride,
      patchCount,
      patchesPerChunk,
      chunkCount: Math.ceil(patchCount / patchesPerChunk),
      firstBlock,
      blockCount: Math.ceil(o.stop / o.block) - firstBlock,
    };
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
    const f = this.chunkFootprint(j);
    return { start: Math.floor(f.start / this.block), stop: Math.ceil(f.stop / this.block) };
  }

  /** Chunks whose footprint touches block q (absolute index); empty if q misses the region. */
  blockChunkRange(q: number): Interval {
    if (q < this.firstBlock || q >= this.firstBlock + this.blockCount) return { start: 0, stop: 0 };
    // Chunk j touches q iff its footprint starts before (q+1)·block and stops after q·block;
    // both ends are non-decreasing in j, so each bound is a binary search.
    const lo = this.firstChunk((j) => this.chunkFootprint(j).stop > q * this.block);
    const hi = this.firstChunk((j) => this.chunkFootprint(j).start >= (q + 1) * this.block);
    return { start: lo, stop: Math.max(lo, hi) };
  }

  /** Blocks along this axis touched by exactly one chunk. */
  singleOwnerBlockCount(): number {
    // Every region block is touched by at least one chunk: the footprints cover the region.
    return this.blockCount - this.seamBlocks;
  }

  /** Σ over blocks of the number of chunks touching each (block-chunk incidences). */
  blockChunkIncidences(): number {
    return this.incidences;
  }

  /** The first chunk index for which a monotone predicate holds (chunkCount if none). */
  private firstChunk(holds: (j: number) => boolean): number {
    let lo = 0;
    let hi = this.chunkCount;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (holds(mid)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
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
