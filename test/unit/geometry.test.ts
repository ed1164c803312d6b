import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  Box,
  ChunkIdError,
  Plan,
  PlanError,
  planSize,
  points,
  type Vec3,
} from '../../core/geometry/index.ts';
import { patchStarts } from '../../core/reference/index.ts';

const vec = (lo: number, hi: number): fc.Arbitrary<Vec3> =>
  fc.tuple(
    fc.integer({ min: lo, max: hi }),
    fc.integer({ min: lo, max: hi }),
    fc.integer({ min: lo, max: hi }),
  );

/** Random valid plan inputs: odd sizes, regions, small patches, overlaps, chunks, blocks. */
const planInput = fc
  .record({
    vol: vec(1, 23),
    patch: vec(1, 7),
    ovFrac: vec(0, 100),
    chunkExtra: vec(0, 12),
    block: vec(1, 9),
    r0: vec(0, 100),
    r1: vec(0, 100),
  })
  .map(({ vol, patch, ovFrac, chunkExtra, block, r0, r1 }) => {
    const overlap = patch.map((p, a) =>
      Math.floor(((p - 1) * ovFrac[a]!) / 100),
    ) as unknown as Vec3;
    const stride = patch.map((p, a) => p - overlap[a]!);
    const chunkShape = stride.map((s, a) => s + chunkExtra[a]!) as unknown as Vec3;
    const start = vol.map((v, a) => Math.floor(((v - 1) * r0[a]!) / 100)) as unknown as Vec3;
    const stop = vol.map(
      (v, a) => start[a]! + 1 + Math.floor(((v - start[a]! - 1) * r1[a]!) / 100),
    ) as unknown as Vec3;
    return {
      volumeShape: vol,
      region: { start, stop },
      patchShape: patch,
      overlap,
      chunkShape,
      blockShape: block,
    };
  });

describe('Box', () => {
  it('is immutable and its operations return new values', () => {
    const a = new Box([0, 0, 0], [4, 5, 6]);
    const b = a.grow([1, 1, 1]);
    expect(a.toString()).toBe('[0, 0, 0]..[4, 5, 6]');
    expect(b.start).toEqual([-1, -1, -1]);
    expect(Object.isFrozen(a)).toBe(true);
    expect(() => {
      (a.start as unknown as number[])[0] = 9;
    }).toThrow();
  });

  it('intersect is commutative and contained in both', () => {
    const box = fc.tuple(vec(-5, 5), vec(0, 6)).map(([s, sh]) => Box.ofShape(sh, s));
    fc.assert(
      fc.property(box, box, (a, b) => {
        const i = a.intersect(b);
        expect(i.size).toBe(b.intersect(a).size);
        if (!i.isEmpty()) expect(a.contains(i) && b.contains(i)).toBe(true);
        expect(i.size).toBe([...points(a)].filter((p) => b.containsPoint(p)).length);
      }),
    );
  });
});

describe('patch grid', () => {
  it('matches the reference grid, and the last patch ends at the region edge', () => {
    fc.assert(
      fc.property(planInput, (input) => {
        const plan = new Plan(input);
        for (let a = 0; a < 3; a++) {
          const ax = plan.axes[a]!;
          const starts = [...Array(ax.patchCount).keys()].map((i) => ax.patchStart(i));
          expect(starts).toEqual(patchStarts(ax.start, ax.stop, ax.patch, ax.overlap));
          const last = starts[starts.length - 1]!;
          if (ax.stop - ax.start >= ax.patch) expect(last + ax.patch).toBe(ax.stop);
          else expect(starts).toEqual([ax.start]);
        }
      }),
      { numRuns: 300 },
    );
  });
});

describe('chunk plan', () => {
  it('every patch belongs to exactly one chunk, and counts equal the enumeration', () => {
    fc.assert(
      fc.property(planInput, (input) => {
        const plan = new Plan(input);
        const seen = new Map<string, number>();
        let chunks = 0;
        for (const c of plan.chunks()) {
          chunks++;
          let n = 0;
          for (const p of plan.patches(c)) {
            const k = p.toString();
            seen.set(k, (seen.get(k) ?? 0) + 1);
            n++;
            expect(c.readBox.contains(p)).toBe(true);
          }
          expect(n).toBe(c.patchCount);
        }
        expect(chunks).toBe(plan.counts.chunks);
        // All grid patches, enumerated independently of the chunking.
        const grid = [0, 1, 2].map((a) => {
          const ax = plan.axes[a]!;
          return patchStarts(ax.start, ax.stop, ax.patch, ax.overlap);
        });
        let total = 0;
        for (const z of grid[0]!)
          for (const y of grid[1]!)
            for (const x of grid[2]!) {
              total++;
              expect(seen.get(Box.ofShape(plan.patchShape, [z, y, x]).toString())).toBe(1);
            }
        expect(seen.size).toBe(total);
        expect(plan.counts.patches).toBe(total);
      }),
      { numRuns: 150 },
    );
  });

  it('footprints cover the region, and each voxel lies only in footprints whose patches reach it', () => {
    fc.assert(
      fc.property(planInput, (input) => {
        const plan = new Plan(input);
        const covered = new Set<string>();
        for (const c of plan.chunks()) {
          expect(plan.region.contains(c.footprint)).toBe(true);
          for (const p of points(c.footprint)) covered.add(p.join());
        }
        expect(covered.size).toBe(plan.region.size);
      }),
      { numRuns: 100 },
    );
  });

  it('owned and seam blocks partition the blocks in the region, and a block has one owner', () => {
    fc.assert(
      fc.property(planInput, (input) => {
        const plan = new Plan(input);
        const owners = new Map<string, number>();
        const seamTouch = new Map<string, Set<string>>();
        for (const c of plan.chunks()) {
          for (const b of plan.ownedBlocks(c)) owners.set(b.key, (owners.get(b.key) ?? 0) + 1);
          for (const b of plan.seamBlocks(c)) {
            const s = seamTouch.get(b.key) ?? new Set();
            s.add(c.id);
            seamTouch.set(b.key, s);
          }
        }
        const all = [...plan.blocks()];
        expect(all.length).toBe(plan.counts.blocks);
        for (const b of all) {
          expect(b.regionBox.isEmpty()).toBe(false);
          // Brute force: which footprints touch this block?
          const touching = [...plan.chunks()]
            .filter((c) => c.footprint.intersects(b.box))
            .map((c) => c.id);
          expect([...plan.contributors(b)].map((c) => c.id).sort()).toEqual(touching.sort());
          if (b.seam) {
            expect(owners.has(b.key)).toBe(false);
            expect([...(seamTouch.get(b.key) ?? [])].sort()).toEqual(touching.sort());
          } else {
            expect(owners.get(b.key)).toBe(1);
            expect(touching.length).toBe(1);
          }
        }
        expect(owners.size + seamTouch.size).toBe(all.length);
        expect(owners.size).toBe(plan.counts.ownedBlocks);
        expect(seamTouch.size).toBe(plan.counts.seamBlocks);
        let partials = 0;
        for (const s of seamTouch.values()) partials += s.size;
        expect(partials).toBe(plan.counts.seamPartials);
      }),
      { numRuns: 100 },
    );
  });

  it('chunk ids round-trip and malformed ids are rejected', () => {
    const plan = new Plan({
      volumeShape: [50, 60, 70],
      patchShape: [8, 8, 8],
      overlap: [2, 2, 2],
      chunkShape: [20, 20, 20],
    });
    for (const c of plan.chunks()) {
      expect(plan.describeChunk(c.id)).toEqual(c);
      expect(plan.chunkCoordAt(c.index)).toEqual(c.coord);
    }
    for (const bad of ['', '1_2', '01_0_0', '0_0_0_0', 'a_b_c', '-1_0_0', '0_0_99', ' 0_0_0']) {
      expect(() => plan.parseChunkId(bad)).toThrow(ChunkIdError);
    }
  });

  it('counts a million-chunk plan without enumerating it', () => {
    const plan = new Plan({
      volumeShape: [50_000, 50_000, 50_000],
      patchShape: [128, 128, 128],
      overlap: [32, 32, 32],
      chunkShape: [512, 512, 512],
    });
    expect(plan.counts.chunks).toBeGreaterThan(1e6);
    expect(plan.counts.patches).toBe(plan.patchGrid[0] * plan.patchGrid[1] * plan.patchGrid[2]);
    const last = plan.describeChunk(plan.chunkCoordAt(plan.counts.chunks - 1));
    expect(last.footprint.stop).toEqual([50_000, 50_000, 50_000]);
  });

  it("planSize equals the plan's counts, and measures a 2^40-voxel axis without building it", () => {
    fc.assert(
      fc.property(planInput, (input) => {
        const { chunks, patches, blocks, regionVoxels } = new Plan(input).counts;
        expect(planSize(input)).toEqual({ chunks, patches, blocks, regionVoxels });
      }),
      { numRuns: 200 },
    );
    const t0 = performance.now();
    const huge = planSize({
      volumeShape: [2 ** 40, 16, 16],
      patchShape: [8, 12, 12],
      overlap: [2, 4, 4],
      chunkShape: [16, 24, 24],
    });
    expect(huge.chunks).toBeGreaterThan(9e10);
    expect(huge.regionVoxels).toBe(2 ** 48);
    expect(performance.now() - t0).toBeLessThan(50);
    expect(() =>
      planSize({
        volumeShape: [8, 8, 8],
        patchShape: [4, 4, 4],
        overlap: [4, 0, 0],
        chunkShape: [8, 8, 8],
      }),
    ).toThrow(PlanError);
  });

  it('rejects bad shapes with a message naming the field', () => {
    const base = {
      volumeShape: [10, 10, 10] as Vec3,
      patchShape: [4, 4, 4] as Vec3,
      overlap: [1, 1, 1] as Vec3,
      chunkShape: [6, 6, 6] as Vec3,
    };
    expect(() => new Plan({ ...base, overlap: [4, 1, 1] })).toThrow(/overlap\[0\]/);
    expect(() => new Plan({ ...base, chunkShape: [6, 2, 6] })).toThrow(
      /chunkShape\[1\].*at least 3/,
    );
    expect(() => new Plan({ ...base, patchShape: [4, 0, 4] })).toThrow(PlanError);
    expect(() => new Plan({ ...base, region: { start: [0, 0, 0], stop: [11, 10, 10] } })).toThrow(
      /region/,
    );
  });

  it('infers no patch twice where margin cropping does', () => {
    const plan = new Plan({
      volumeShape: [256, 256, 256],
      patchShape: [64, 64, 64],
      overlap: [16, 16, 16],
      chunkShape: [128, 128, 128],
    });
    expect(plan.counts.patchVoxels).toBeLessThan(plan.counts.marginCroppingPatchVoxels);
  });
});

describe('the default block shape', () => {
  const plan = (o: Partial<ConstructorParameters<typeof Plan>[0]> = {}) =>
    new Plan({
      volumeShape: [4096, 4096, 4096],
      patchShape: [128, 128, 128],
      overlap: [32, 32, 32],
      chunkShape: [512, 512, 512],
      ...o,
    });

  it('divides the chunk pitch when the pitch is longer than 128: 480 → 120 at the defaults', () => {
    // stride 96, floor((512 − 128) / 96) + 1 = 5 patches a chunk: pitch 480 = 4 × 120.
    expect(plan().blockShape).toEqual([120, 120, 120]);
    // Footprints then start on block boundaries: chunk j's at 480·j − (the patch's margin 0).
    const p = plan();
    expect(p.describeChunk([0, 0, 1]).footprint.start[2]! % 120).toBe(0);
  });

  it('is the largest divisor above half the edge: pitch 224 → 112, pitch 512 → 128', () => {
    const p = plan({ patchShape: [32, 64, 64], overlap: [0, 0, 0], chunkShape: [224, 512, 512] });
    expect(p.blockShape).toEqual([112, 128, 128]);
  });

  it('stays 128 when no divisor lies in (64, 128], and follows smaller chunks as before', () => {
    // Pitch 131 · 1 (patch 131, overlap 0, chunk 200): 131 is prime.
    const prime = plan({
      patchShape: [131, 131, 131],
      overlap: [0, 0, 0],
      chunkShape: [200, 200, 200],
    });
    expect(prime.blockShape).toEqual([128, 128, 128]);
    const small = plan({ patchShape: [16, 16, 16], overlap: [4, 4, 4], chunkShape: [40, 60, 100] });
    expect(small.blockShape).toEqual([40, 60, 100]);
  });

  it('an explicit output.blockShape wins', () => {
    expect(plan({ blockShape: [128, 128, 128] }).blockShape).toEqual([128, 128, 128]);
  });
});
