// What `tessera convert` reads from: a volume it can hand over band by band, so that
// memory holds one band (chunk depth × chunk height × the full width, or a run of whole
// chunks along x when the full width would be too much) and never the file.
//
//   z ─┬─ band (z0..z1, y0..y1, x0..x1)  ← one readBand
//      ├─ ...
//   shape [z, y, x], `channels` planes each, C order [c][z][y][x] within a band

import type { NumericArray } from '../array/dense.ts';
import type { Vec3 } from '../geometry/index.ts';
import type { VolumeDtype } from '../volume/index.ts';

export interface ConvertSource {
  /** What is read, for messages and the progress line ('cremi.h5:/volumes/raw'). */
  readonly description: string;
  readonly shape: Vec3;
  readonly channels: number;
  readonly dtype: VolumeDtype;
  /** Physical voxel size (z, y, x) when the input records one (HDF5 "resolution"/"element_size_um"). */
  readonly voxelSize?: Vec3;
  /**
   * The voxels of z in [z0, z1), y in [y0, y1), x in [x0, x1), every channel: [c][z][y][x].
   * The array may be reused by the next readBand (so that garbage does not pile up band
   * after band): use it up before asking for the next.
   */
  readBand(
    z0: number,
    z1: number,
    y0: number,
    y1: number,
    x0: number,
    x1: number,
  ): Promise<NumericArray>;
  close(): Promise<void>;
}
