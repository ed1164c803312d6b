// Runs the real pipeline in memory, for invariance tests: a Zarr input in a MemoryStore,
// the job opened by openJob (manifest → plan), planned into a MemoryLedger, inferred by
// one or more runWorker loops (which write owned blocks final, seam partials through the
// partial codec and the compressed partial store, and blend the seam blocks they are the
// last contributor of), what they left blended by blendSeams over unblendedSeamBlocks (the
// Blend step), and the output read back from its Zarr array. Nothing here re-assembles
// what the pipeline does.

import type { Vec3 } from '../../core/geometry/index.ts';
import type { PatchModel } from '../../core/infer/index.ts';
import { type Ledger, MemoryLedger } from '../../core/ledger/index.ts';
import { parseManifest } from '../../core/manifest/parse.ts';
import {
  ensureOutput,
  finishLeftovers,
  type JobContext,
  leftoverUnits,
  openJob,
  planJob,
  runWorker,
  type WorkerStats,
} from '../../core/pipeline/index.ts';
import { MemoryStore, registerStoreScheme, unregisterStoreScheme } from '../../core/store/index.ts';
import { isShardedOutput, type OutputVolume, type ShardedOutput } from '../../core/volume/index.ts';
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
  /** output.shardShape: a sharded output, shards assembled by their last contributor. */
  shardShape?: Vec3 | undefined;
  blend: 'bump' | 'gaussian' | 'constant';
  outputChannels: number;
  scale?: number | undefined;
  offset?: number | undefined;
  model: PatchModel;
  /** model.tta in the manifest (the workers apply it; the model given is the bare one). */
  tta?: boolean | ('flips' | 'rot90' | { flip?: ('z' | 'y' | 'x')[]; rot90?: number })[];
  /** Concurrent runWorker loops over one ledger, each starting at its own shard. */
  workers?: number;
  /** output.dtype (default float32) and output.transform. */
  dtype?: 'float32' | 'uint8';
  transform?: 'argmax' | 'sigmoid' | 'softmax' | { threshold: number };
  batchSize?: number;
  /**
   * Workers blend the seam blocks they are the last contributor of (default true); false:
   * they write every partial and the final pass (the Blend step) blends every seam block.
   */
  handoff?: boolean;
  /**
   * The first N completions "die" between completing and blending (the test hook throws
   * there): the blocks they were last for are left to the final pass.
   */
  diesAfterComplete?: number;
  /**
   * Workers finishing at once, each "last" for the seams they share: each worker takes one
   * chunk (workers = chunks), every completion waits until all workers are completing (so
   * each checks before completing while the others still run, and writes its partial), and
   * each check after completing waits until every chunk is DONE (so all of them blend).
   */
  allLastAtOnce?: boolean;
}

export interface PipelineResult {
  /** The output over the region, float32 [Cout][rz][ry][rx]. */
  output: Float32Array;
  ctx: JobContext;
  stats: WorkerStats[];
  /** Seam blocks blended by the final pass (the rest were blended by their last contributor). */
  finalPassBlocks: number;
  /** Blocks the workers wrote more than once, and how many of those got different values. */
  rewrites: { blocks: number; differing: number };
}

let runs = 0;

/** `output`, recording what each writeBlock (writeShard) stored, to compare a unit written twice. */
function recordingWrites(output: OutputVolume): {
  output: OutputVolume;
  rewrites: () => { blocks: number; differing: number };
} {
  const writes = new Map<string, Uint8Array[]>();
  const recorded = new Proxy(output, {
    get(target, prop) {
      if (prop === 'writeBlock')
        return async (...args: Parameters<OutputVolume['writeBlock']>) => {
          const [coord, data] = args;
          const key = coord.join('_');
          const bytes = new Uint8Array(
            data.data.buffer,
            data.data.byteOffset,
            data.data.byteLength,
          );
          writes.set(key, [...(writes.get(key) ?? []), bytes.slice()]);
          return target.writeBlock(...args);
        };
      if (prop === 'writeShard' && isShardedOutput(target))
        return async (...args: Parameters<ShardedOutput['writeShard']>) => {
          const [shard, given, options] = args;
          const blocks = [...given];
          const parts = blocks.map((b) =>
            b.data instanceof Uint8Array
              ? b.data
              : new Uint8Array(b.data.data.buffer, b.data.data.byteOffset, b.data.data.byteLength),
          );
          const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
          let at = 0;
          for (const p of parts) {
            all.set(p, at);
            at += p.length;
          }
          const key = `shard ${shard.join('_')}`;
          writes.set(key, [...(writes.get(key) ?? []), all]);
          return target.writeShard(shard, blocks, options);
        };
      const value = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const same = (a: Uint8Array, b: Uint8Array): boolean =>
    a.length === b.length && a.every((v, i) => v === b[i]);
  return {
    output: recorded,
    rewrites: () => {
      const twice = [...writes.values()].filter((w) => w.length > 1);
      return {
        blocks: twice.length,
        differing: twice.filter((w) => w.some((x) => !same(x, w[0]!))).length,
      };
    },
  };
}

/** See PipelineJob.allLastAtOnce. */
function oneChunkEachCompletingTogether(ledger: Ledger, workers: number): Ledger {
  const holders = new Set<string>();
  let completing = 0;
  let together: () => void = () => {};
  const allCompleting = new Promise<void>((resolve) => {
    together = resolve;
  });
  return new Proxy(ledger, {
    get(target, prop) {
      if (prop === 'claim')
        return async (...args: Parameters<Ledger['claim']>) => {
          if (holders.has(args[1])) return undefined;
          const claim = await target.claim(...args);
          if (claim) holders.add(args[1]);
          return claim;
        };
      if (prop === 'complete')
        return async (...args: Parameters<Ledger['complete']>) => {
          if (++completing === workers) together();
          await allCompleting;
          return target.complete(...args);
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
        dtype: o.dtype ?? 'float32',
        ...(o.transform ? { transform: o.transform } : {}),
        ...(o.blockShape ? { blockShape: o.blockShape } : {}),
        ...(o.shardShape ? { shardShape: o.shardShape } : {}),
      },
      model: {
        url: `s3://${bucket}/model.onnx`,
        patchShape: o.patchShape,
        ...(o.outputPatchShape ? { outputPatchShape: o.outputPatchShape } : {}),
        outputChannels: o.outputChannels,
        ...(o.tta === undefined ? {} : { tta: o.tta }),
      },
      overlap: o.overlap,
      blend: o.blend,
      chunkShape: o.chunkShape,
      ...(o.region ? { region: o.region } : {}),
    });
    const ctx = await openJob(manifest, { jobId: `invariance-${runs}`, work: new MemoryStore() });
    const memory = new MemoryLedger();
    await planJob(ctx, memory);
    const ledger = o.allLastAtOnce
      ? oneChunkEachCompletingTogether(memory, o.workers ?? 1)
      : memory;
    const output = await ensureOutput(ctx);
    const recorded = recordingWrites(output);
    const workers = o.workers ?? 1;
    let deaths = o.diesAfterComplete ?? 0;
    const afterComplete = async (): Promise<void> => {
      if (deaths-- > 0) throw new Error('killed between completing and blending (test)');
      if (!o.allLastAtOnce) return;
      for (;;) {
        const c = await ledger.counts(ctx.jobId);
        if (c.DONE + c.SKIPPED === ctx.plan.counts.chunks) return;
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const stats = await Promise.all(
      Array.from({ length: workers }, (_, i) =>
        runWorker({
          ctx,
          ledger,
          output: recorded.output,
          owner: `w${i}`,
          model: o.model,
          startIndex: Math.floor((i * ctx.plan.counts.chunks) / workers),
          batchSize: o.batchSize ?? 3,
          idlePollMs: 0,
          blendSeams: o.handoff !== false,
          afterComplete,
        }),
      ),
    );
    const finalPassBlocks = await finishLeftovers(ctx, output, await leftoverUnits(ctx, output));
    const out = await output.readBox(ctx.plan.region);
    return {
      output: Float32Array.from(out.data),
      ctx,
      stats,
      finalPassBlocks,
      rewrites: recorded.rewrites(),
    };
  } finally {
    unregisterStoreScheme('s3');
  }
}
