// The output check (output-check.ts) for a precomputed output: the info file and every
// block file the finished job wrote, each whole. Same scopes and depths as for Zarr:
//
//   out/info                    present, JSON, Tessera's layout          (both scopes)
//   out/0/<x0>-<x1>_<y0>-…      every block meeting the region ('owned': the blocks
//                               workers write final; 'seams': the blended ones), raw:
//                               exactly C × voxels × dtype
//                               bytes (edge blocks are cut to the volume, not padded)
//
//   'listing'  one listing of out/0/ with sizes: missing, empty and wrong-size files
//   'frames'   reads each block: its size (a raw block has no frame to walk)
//   'decode'   the same (raw bytes are their own decoding)
//
// Expected keys and sizes come from the plan and the manifest, never from the info on
// disk, so a damaged info does not hide the blocks.

import type { Vec3 } from '../geometry/index.ts';
import type { AbsolutePath, Store } from '../store/index.ts';
import { readJson } from '../volume/json.ts';
import { PRECOMPUTED_SCALE_KEY, precomputedBlockKey } from '../volume/precomputed/output.ts';
import { storedOutput } from './convert.ts';
import type {
  CheckDepth,
  DamagedObject,
  OutputCheckContext,
  OutputCheckOptions,
  OutputCheckResult,
} from './output-check.ts';

const INFO: AbsolutePath = '/info';

export async function checkPrecomputedOutput(
  ctx: OutputCheckContext,
  o: OutputCheckOptions = {},
): Promise<OutputCheckResult> {
  const depth: CheckDepth = o.full ? 'decode' : (o.depth ?? 'frames');
  // A string: scopes other modules add ('seams': the blocks left to blend) are read here too.
  const scope: string = o.scope ?? 'all';
  const { plan, manifest } = ctx;
  const store = ctx.outputStore;
  const damaged: DamagedObject[] = [];
  const channels = storedOutput(manifest).channels;
  const bytesPerVoxel = channels * (manifest.output.dtype === 'float32' ? 4 : 1);
  const total =
    1 +
    (scope === 'owned'
      ? plan.counts.ownedBlocks
      : scope === 'seams'
        ? plan.counts.seamBlocks
        : plan.counts.blocks);
  let checked = 0;
  const tick = (): void => {
    checked++;
    o.onProgress?.(checked, total);
  };

  const info = await infoProblem(store, ctx);
  if (info) damaged.push({ kind: 'metadata', level: 0, key: INFO, ...info });
  tick();

  // One listing per x-slab of blocks (the names start with the x range): memory stays at
  // one slab's keys whatever the volume.
  const first = plan.regionBlockAt(0);
  const last = plan.regionBlockAt(plan.counts.blocks - 1);
  for (let bx = first[2]; bx <= last[2]; bx++) {
    const x0 = bx * plan.blockShape[2];
    const x1 = Math.min(x0 + plan.blockShape[2], plan.volumeShape[2]);
    const listed = await listSizes(store, `/${PRECOMPUTED_SCALE_KEY}/${x0}-${x1}_`);
    const coords = (function* (): Generator<Vec3> {
      for (let bz = first[0]; bz <= last[0]; bz++)
        for (let by = first[1]; by <= last[1]; by++) {
          const c: Vec3 = [bz, by, bx];
          const seam = plan.describeBlock(c).seam;
          if ((scope === 'owned' && seam) || (scope === 'seams' && !seam)) continue;
          yield c;
        }
    })();
    const lane = async (): Promise<void> => {
      for (let r = coords.next(); !r.done; r = coords.next()) {
        const found = await checkBlock(r.value, listed);
        if (found) damaged.push(found);
        tick();
      }
    };
    await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 8) }, lane));
  }
  damaged.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  return { checked, damaged, depth };

  async function checkBlock(
    coord: Vec3,
    listed: Map<AbsolutePath, number> | undefined,
  ): Promise<DamagedObject | undefined> {
    const box = plan.describeBlock(coord).box;
    const key = precomputedBlockKey(box);
    const want = box.size * bytesPerVoxel;
    let size: number | undefined;
    if (listed !== undefined && !listed.has(key)) size = undefined;
    else if (listed !== undefined && depth === 'listing') size = listed.get(key);
    else if (depth === 'listing' && store.getRange) {
      const probe = await store.getRange(key, { offset: 0, length: 1 });
      size = probe === undefined ? undefined : want; // a store that cannot list: presence only
    } else size = (await store.get(key))?.length;
    if (size === undefined)
      return {
        kind: 'block',
        level: 0,
        coord,
        key,
        problem: 'missing',
        detail: 'no object at this key',
      };
    if (size !== want)
      return {
        kind: 'block',
        level: 0,
        coord,
        key,
        problem: size < want ? 'truncated' : 'wrong-size',
        detail: `${size} bytes; a raw block of ${channels} channel(s) × ${box.size} voxels is ${want}`,
      };
    return undefined;
  }
}

async function infoProblem(
  store: Store,
  ctx: OutputCheckContext,
): Promise<{ problem: 'missing' | 'undecodable' | 'wrong-size'; detail: string } | undefined> {
  let doc: unknown;
  try {
    doc = await readJson(store, INFO);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    return { problem: 'undecodable', detail: `not valid JSON (${error.message})` };
  }
  if (doc === undefined) return { problem: 'missing', detail: 'no object at this key' };
  const d = doc as Record<string, unknown>;
  const scale = Array.isArray(d.scales) ? (d.scales[0] as Record<string, unknown>) : undefined;
  const [z, y, x] = ctx.plan.volumeShape;
  const [bz, by, bx] = ctx.plan.blockShape;
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const wrong =
    d.data_type !== ctx.manifest.output.dtype
      ? 'data_type'
      : d.num_channels !== storedOutput(ctx.manifest).channels
        ? 'num_channels'
        : !same(scale?.size, [x, y, z])
          ? 'scales[0].size'
          : !same(scale?.chunk_sizes, [[bx, by, bz]])
            ? 'scales[0].chunk_sizes'
            : scale?.encoding !== 'raw'
              ? 'scales[0].encoding'
              : undefined;
  return wrong === undefined
    ? undefined
    : { problem: 'wrong-size', detail: `its ${wrong} is not the layout this job writes` };
}

async function listSizes(
  store: Store,
  prefix: string,
): Promise<Map<AbsolutePath, number> | undefined> {
  if (!store.listWithSizes) return undefined;
  const out = new Map<AbsolutePath, number>();
  for await (const o of store.listWithSizes(prefix)) out.set(o.key, o.size);
  return out;
}
