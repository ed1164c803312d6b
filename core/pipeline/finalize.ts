// Finalize: make the output viewer-ready and say what the run did. Safe to re-run
// (every file is rewritten whole, the pyramid byte-identically).
//
//   COMPLETE only: pyramid levels 1..L (when output.pyramid asks) → OME-Zarr metadata
//                  listing every level, with the input's voxel size and placement
//                  → preview.png
//   always:        report.json, report.html
//
// Everything reads the output block by block or slice by slice: memory stays a few
// blocks whatever the volume size.

import type { Vec3 } from '../geometry/index.ts';
import type { Ledger } from '../ledger/index.ts';
import {
  InvalidStoreUrlError,
  openStoreForUrl,
  type Store,
  UnsupportedStoreSchemeError,
} from '../store/index.ts';
import { checkOutputOwner, writeOmeMetadata } from '../volume/index.ts';
import { parentGroupAttributes, placementOf, type SpaceUnit } from '../volume/ome.ts';
import {
  nanometres,
  outputFormat,
  setPrecomputedResolution,
} from '../volume/precomputed/output.ts';
import { buildPyramid, type PyramidLevel, pyramidLevels } from '../volume/pyramid.ts';
import type { JobContext } from './context.ts';
import { isLabelOutput } from './convert.ts';
import { type InputPanels, PREVIEW_KEY, type Preview, renderPreview } from './preview.ts';
import {
  type ChunkTiming,
  histogram,
  type RunReport,
  summariseTimings,
  timeline,
  ttaSection,
} from './report.ts';
import { REPORT_HTML_KEY, reportHtml } from './report-html.ts';
import type { VerifyResult } from './verify.ts';
import { neuroglancerLink } from './viewer.ts';

export const REPORT_KEY = '/report.json';

export interface FinalizeOptions {
  ledger: Ledger;
  verify: VerifyResult;
  startedAt: Date;
  /**
   * Seconds per step, as the driver measured them (a local run). Absent (the cloud, whose
   * steps are separate Lambdas): `work` from the ledger, job creation to the last chunk
   * finished. Either way finalize adds its own, measured on `now`.
   */
  timings?: Record<string, number>;
  chunkTimings?: ChunkTiming[];
  /**
   * The fleet's size, reported only when no chunk records who finished it. The report's
   * worker count is the distinct owners of the chunks that finished (both drivers).
   */
  fleetSize?: number;
  device: string;
  /** The clock finalize measures itself on (epoch ms); default Date.now. */
  now?: () => number;
  /** Skip preview.png (tests of other parts; a huge job finalized by a short-lived Lambda). */
  preview?: boolean;
  /**
   * Build the pyramid levels (default true). A repair whose pyramid is intact passes
   * false: the levels are listed in the metadata as they are. A rebuild is of the whole
   * pyramid, from level 0: about one read of the output and 1/7 of it written.
   */
  rebuildPyramid?: boolean;
  /** The preview's input column, drawn ahead (see renderInputPanels). */
  inputPanels?: Promise<InputPanels | undefined>;
  log?: (line: string) => void;
}

export async function finalizeJob(ctx: JobContext, o: FinalizeOptions): Promise<RunReport> {
  const { plan, manifest } = ctx;
  const now = o.now ?? Date.now;
  const began = now();
  // Everything below rewrites files of the output: never another job's.
  await checkOutputOwner(ctx.outputStore, ctx.jobId);
  const log = o.log ?? (() => {});
  const enc = new TextEncoder();
  let levels: PyramidLevel[] | undefined;
  let preview: Preview | undefined;
  if (o.verify.status === 'COMPLETE') {
    const voxelSize = ctx.input.voxelSize;
    const wanted = manifest.output.pyramid ?? 0;
    levels =
      wanted > 0 && o.rebuildPyramid !== false
        ? await buildPyramid(ctx.outputStore, {
            levels: wanted,
            ...(voxelSize ? { voxelSize } : {}),
            ...(isLabelOutput(manifest.output.transform) ? { sampling: 'nearest' as const } : {}),
            onLevel: (l, s) =>
              log(`pyramid level ${l.path}: ${l.shape.join('×')} in ${s.toFixed(1)}s`),
          })
        : pyramidLevels(plan.volumeShape, wanted, voxelSize);
    // The output spans the whole input volume (voxels outside the region stay 0), so
    // it sits exactly where the input does: same voxel size, same translation.
    const placement = await inputPlacement(ctx);
    // A precomputed output has its info file instead: the voxel size goes there, in nm.
    if (outputFormat(manifest.output) === 'precomputed') {
      if (voxelSize)
        await setPrecomputedResolution(ctx.outputStore, nanometres(voxelSize, placement.unit));
    } else
      await writeOmeMetadata(ctx.outputStore, {
        name: manifest.name,
        channels: storedChannelNames(manifest),
        ...(voxelSize ? { voxelSize } : {}),
        ...placement,
        datasets: levels.map((l) => ({ path: l.path, factor: l.factor })),
        ...(isLabelOutput(manifest.output.transform)
          ? {
              imageLabel:
                manifest.output.transform === 'argmax' ? { names: channelNames(manifest) } : {},
            }
          : {}),
      });
    if (o.preview !== false) {
      preview = await renderPreview(ctx.input, ctx.outputStore, plan.region, levels, {
        ...(ctx.previewTiles ? { tiles: ctx.work } : {}),
        ...(o.inputPanels ? { inputPanels: o.inputPanels } : {}),
        channelNames: storedChannelNames(manifest),
      });
      await ctx.outputStore.set(PREVIEW_KEY, preview.png);
    }
  }
  let attempts = 0;
  let retried = 0;
  let maxPer = 0;
  let inferred = 0;
  const finishedTimes: number[] = [];
  const owners = new Set<string>();
  for await (const row of o.ledger.list(ctx.jobId)) {
    attempts += row.attempts;
    if (row.attempts > 1) retried++;
    maxPer = Math.max(maxPer, row.attempts);
    if (row.status === 'DONE') inferred += plan.describeChunk(row.chunkId).patchCount;
    if (row.status === 'DONE' || row.status === 'SKIPPED') {
      finishedTimes.push(row.updatedAt);
      if (row.owner !== undefined) owners.add(row.owner);
    }
  }
  const finishedAt = new Date(now());
  const timings = {
    ...(o.timings ?? ledgerTimings(o.startedAt.getTime(), finishedTimes)),
    finalize: Math.round(finishedAt.getTime() - began) / 1000,
  };
  const seconds = (finishedAt.getTime() - o.startedAt.getTime()) / 1000;
  const chunkHistogram = histogram((o.chunkTimings ?? []).map((t) => t.read + t.infer + t.write));
  const done = timeline(finishedTimes, o.startedAt.getTime());
  const link = neuroglancerLink({
    name: manifest.name,
    outputUrl: manifest.output.url,
    inputUrl: manifest.input.url,
    dtype: manifest.output.dtype,
    outputFormat: outputFormat(manifest.output),
    ...(manifest.input.array ? { inputArray: manifest.input.array } : {}),
  });
  const report: RunReport = {
    version: 1,
    jobId: ctx.jobId,
    name: manifest.name,
    status: o.verify.status === 'COMPLETE' ? 'SUCCEEDED' : 'FAILED',
    output: manifest.output.url,
    startedAt: o.startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    chunks: { ...o.verify.counts, total: plan.counts.chunks },
    patches: {
      inferred,
      total: plan.counts.patches,
      marginCroppingWouldInfer: Math.round(
        plan.counts.marginCroppingPatchVoxels /
          (plan.patchShape[0] * plan.patchShape[1] * plan.patchShape[2]),
      ),
    },
    voxels: {
      region: plan.counts.regionVoxels,
      patchVoxels: plan.counts.patchVoxels,
      perSecond: seconds > 0 ? Math.round(plan.counts.regionVoxels / seconds) : 0,
    },
    ...ttaSection(manifest.model, plan.counts.patchVoxels),
    blocks: {
      total: plan.counts.blocks,
      owned: plan.counts.ownedBlocks,
      seam: plan.counts.seamBlocks,
    },
    attempts: { total: attempts, retriedChunks: retried, maxPerChunk: maxPer },
    timings,
    chunkMs: summariseTimings(o.chunkTimings ?? []),
    failures: o.verify.poison,
    workers: owners.size > 0 ? owners.size : (o.fleetSize ?? 0),
    device: o.device,
    channels: channelNames(manifest),
    normalization: ctx.description.normalization,
    ...(chunkHistogram ? { chunkHistogram } : {}),
    ...(done ? { timeline: done } : {}),
    ...(levels ? { levels: levels.map((l) => ({ ...l })) } : {}),
    files: {
      ...(preview ? { preview: PREVIEW_KEY.slice(1) } : {}),
      html: REPORT_HTML_KEY.slice(1),
    },
    ...(link ? { viewer: { neuroglancer: link } } : {}),
  };
  await ctx.outputStore.set(REPORT_KEY, enc.encode(`${JSON.stringify(report, null, 2)}\n`));
  await ctx.outputStore.set(REPORT_HTML_KEY, enc.encode(reportHtml(report, preview)));
  return report;
}

/** model.channelNames, or the default "channel 0", "channel 1", ... */
export function channelNames(manifest: JobContext['manifest']): string[] {
  const names = manifest.model.channelNames;
  return names
    ? [...names]
    : Array.from({ length: manifest.model.outputChannels }, (_, i) => `channel ${i}`);
}

/** The stored channels' names: "label" for argmax's one channel, else channelNames. */
export function storedChannelNames(manifest: JobContext['manifest']): string[] {
  return manifest.output.transform === 'argmax' ? ['label'] : channelNames(manifest);
}

/** Work seconds from the ledger: the job's creation to its last chunk finished. */
export function ledgerTimings(
  createdAt: number,
  finishedTimes: readonly number[],
): Record<string, number> {
  if (finishedTimes.length === 0) return {};
  const last = finishedTimes.reduce((a, b) => Math.max(a, b), -Infinity);
  return { work: Math.max(0, Math.round(last - createdAt)) / 1000 };
}

/** Translation and unit from the input's OME-Zarr metadata, when it has any. */
async function inputPlacement(ctx: JobContext): Promise<{ translation?: Vec3; unit?: SpaceUnit }> {
  let store: Store;
  try {
    // The input's own location: a local directory, or s3://bucket/prefix in the cloud.
    store = openStoreForUrl(ctx.input.location);
  } catch (error) {
    // A store this process cannot reopen by location costs only the placement.
    if (error instanceof UnsupportedStoreSchemeError || error instanceof InvalidStoreUrlError)
      return {};
    throw error;
  }
  const attrs = await parentGroupAttributes(store, ctx.input.arrayPath);
  return attrs ? placementOf(attrs.attributes, attrs.name) : {};
}
