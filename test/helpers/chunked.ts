// Runs the real pipeline in memory, for invariance tests: a Zarr input in a MemoryStore,
// the job opened by openJob (manifest → plan), planned into a MemoryLedger, inferred by
// one or more runWorker loops (which write owned blocks final and seam partials through
// the partial codec), seam blocks blended by the EagerBlender and/or blendSeams, and the
// output read back from its Zarr array. Nothing here re-assembles what the pipeline does.

import type { Vec3 } from '../../core/geometry/index.ts';
import type { PatchModel } from '../../core/infer/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { parseManifest } from '../../core/manifest/parse.ts';
import {
  blendSeams,
  EagerBlender,
  ensureOutput,
  type JobContext,
  openJob,
  planJob,
  runWorker,
  type WorkerStats,
} from '../../core/pipeline/index.ts';
import { MemoryStore, registerStoreScheme, unregisterStoreScheme } from '../../core/store/index.ts';
import type { OutputVolume } from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';

export interface PipelineJob {
  /** Raw input, [C][z][y][x], stored as a float32 Zarr array ([z, y, x] when C = 1). */
  volume: Float32Array;
  volumeShape: Vec3;
  inputChannels: number;
  /** Storage chunks of the input array. */
  inputChunks?: Vec3;
  region?: { start: Vec3; stop: Vec3 } | undefined;
  /** The model's input patch. */
  patchShape: Vec3;
  outputPatchShape?: Vec3 | undefined;
  overlap: Vec3;
  chunkShape: Vec3;
  blockShape?: Vec3 | undefined;
  blend: 'bump' | 'gaussian' | 'constant';
  outputChannels: number;
  scale?: number | undefined;
  offset?: number | undefined;
  model: PatchModel;
  /** Concurrent runWorker loops over one ledger, each starting at its own shard. */
  workers?: number;
  batchSize?: number;
  /** Blend seam blocks as their contributors finish (EagerBlender), then the rest. */
  eager?: boolean;
  /**
   * The first N seam-block writes of the eager blender fail as a full disk does (ENOSPC);
   * the final pass must then blend every block the eager one did not.
   */
  eagerWriteFailures?: number;
}

export interface PipelineResult {
  /** The output over the region, float32 [Cout][rz][ry][rx]. */
  output: Float32Array;
  ctx: JobContext;
  stats: WorkerStats[];
  /** Seam blocks blended by the final pass (the rest were blended eagerly). */
  finalPassBlocks: number;
}

let runs = 0;

/** `output`, whose first `n` writeBlock calls fail with ENOSPC (as a full disk's would). */
function failingWrites(output: OutputVolume, n: number): OutputVolume {
  let left = n;
  return new Proxy(output, {
    get(target, prop) {
      if (prop === 'writeBlock')
        return async (...args: Parameters<OutputVolume['writeBlock']>) => {
          if (left-- > 0)
            throw Object.assign(new Error('ENOSPC: no space left on device, write'), {
              code: 'ENOSPC',
            });
          return target.writeBlock(...args);
        };
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

export async function pipelineInference(o: PipelineJob): Promise<PipelineResult> {
  // s3:// URLs pass the manifest's URL checks; the scheme is served from memory here.
  const bucket = `invariance-${++runs}`;
  const stores = new Map<string, MemoryStore>();
  registerStoreScheme('s3', (url) => {
    const store = stores.get(url) ?? new MemoryStore(url);
    stores.set(url, store);
    return store;
  });
  try {
    const inputUrl = `s3://${bucket}/input.zarr`;
    const input = new MemoryStore(inputUrl);
    stores.set(inputUrl, input);
    const shape = o.inputChannels === 1 ? [...o.volumeShape] : [o.inputChannels, ...o.volumeShape];
    const chunks = o.inputChunks ?? [5, 6, 7];
    await writeZarrArray(input, {
      data: o.volume,
      shape,
      chunkShape: o.inputChannels === 1 ? [...chunks] : [1, ...chunks],
    });
    const manifest = parseManifest({
      version: 1,
      name: 'invariance',
      input: {
        url: inputUrl,
        ...(o.scale === undefined ? {} : { scale: o.scale }),
        ...(o.offset === undefined ? {} : { offset: o.offset }),
      },
      output: {
        url: `s3://${bucket}/outputs/out.zarr`,
        dtype: 'float32',
        ...(o.blockShape ? { blockShape: o.blockShape } : {}),
      },
      model: {
        url: `s3://${bucket}/model.onnx`,
        patchShape: o.patchShape,
        ...(o.outputPatchShape ? { outputPatchShape: o.outputPatchShape } : {}),
        outputChannels: o.outputChannels,
      },
      overlap: o.overlap,
      blend: o.blend,
      chunkShape: o.chunkShape,
      ...(o.region ? { region: o.region } : {}),
    });
    const ctx = await openJob(manifest, { jobId: `invariance-${runs}`, work: new MemoryStore() });
    const ledger = new MemoryLedger();
    await planJob(ctx, ledger);
    const output = await ensureOutput(ctx);
    const eager = o.eager
      ? new EagerBlender(ctx, failingWrites(output, o.eagerWriteFailures ?? 0))
      : undefined;
    const workers = o.workers ?? 1;
    const stats = await Promise.all(
      Array.from({ length: workers }, (_, i) =>
        runWorker({
          ctx,
          ledger,
          output,
          owner: `w${i}`,
          model: o.model,
          startIndex: Math.floor((i * ctx.plan.counts.chunks) / workers),
          batchSize: o.batchSize ?? 3,
          idlePollMs: 0,
          onEvent: (e) => {
            if (e.type === 'done') eager?.chunkFinished(e.chunkId);
          },
        }),
      ),
    );
    const rest = eager ? await eager.drain() : [...ctx.plan.seamBlockList()];
    const finalPassBlocks = await blendSeams(ctx, output, { blocks: rest });
    const out = await output.readBox(ctx.plan.region);
    return { output: Float32Array.from(out.data), ctx, stats, finalPassBlocks };
  } finally {
    unregisterStoreScheme('s3');
  }
}
