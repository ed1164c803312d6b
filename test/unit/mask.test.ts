import { describe, expect, it } from 'vitest';
import { Box } from '../../core/geometry/index.ts';
import { ChunkMask, MaskMismatchError, maskBoxOf, maskFactor } from '../../core/volume/mask.ts';

describe('input.mask mapping', () => {
  it('maps an input box to mask voxels [floor(a/f), ceil(b/f)), clipped at the edges', () => {
    // Hand-computed: z [3, 9) / 4 -> [0, 3); y [-2, 5) / 4 -> [0, 2) (padding clipped);
    // x [30, 40) / 4 -> [7, 9) clipped to the mask's 9.
    const b = maskBoxOf(new Box([3, -2, 30], [9, 5, 40]), [4, 4, 4], [6, 8, 9]);
    expect([b.start, b.stop]).toEqual([
      [0, 0, 7],
      [3, 2, 9],
    ]);
  });
  it('a box wholly outside the volume maps to nothing', () => {
    expect(maskBoxOf(new Box([-8, 0, 0], [-1, 4, 4]), [4, 4, 4], [6, 8, 9]).size).toBe(0);
  });
  it('a patch is empty only when no voxel under it is above the threshold', () => {
    const values = new Uint8Array(2 * 2 * 2);
    values[7] = 5; // mask voxel [1, 1, 1], input voxels [2..4) per axis at factor 2
    const m = new ChunkMask(
      values,
      Box.ofShape([2, 2, 2]),
      { factor: [2, 2, 2], threshold: 0 },
      [2, 2, 2],
    );
    expect(m.empty(new Box([0, 0, 0], [2, 2, 2]))).toBe(true);
    expect(m.empty(new Box([1, 1, 1], [3, 3, 3]))).toBe(false);
    const high = new ChunkMask(
      values,
      Box.ofShape([2, 2, 2]),
      { factor: [2, 2, 2], threshold: 5 },
      [2, 2, 2],
    );
    expect(high.empty(new Box([1, 1, 1], [3, 3, 3]))).toBe(true);
  });
  it('refuses a mask that does not cover ceil(input / factor), naming input.mask.url', () => {
    const f = () =>
      maskFactor({ shape: [21, 30, 34] }, { shape: [6, 8, 8], channels: 1 }, [4, 4, 4]);
    expect(f).toThrow(MaskMismatchError);
    expect(f).toThrow(/input\.mask\.url.*\[6, 8, 9\]/);
  });
  it('derives the factor from voxel sizes, and refuses a non-integer ratio', () => {
    expect(
      maskFactor(
        { shape: [16, 16, 16], voxelSize: [40, 4, 4] },
        { shape: [1, 4, 4], voxelSize: [640, 16, 16], channels: 1 },
        undefined,
      ),
    ).toEqual([16, 4, 4]);
    expect(() =>
      maskFactor(
        { shape: [16, 16, 16], voxelSize: [4, 4, 4] },
        { shape: [8, 8, 8], voxelSize: [6, 8, 8], channels: 1 },
        undefined,
      ),
    ).toThrow(/input\.mask\.factor/);
  });
});
