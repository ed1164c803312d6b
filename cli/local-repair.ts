// Checking and repairing the output of a finished local job: `tessera verify`, and the
// rerun of a SUCCEEDED job (runLocal calls repairOutput with its own worker rounds).
//
//   checkOutput ──► repairPlan ──► delete damaged zarr.json ──► ensureOutput
//        ──► rearm the chunks ──► run them (their owned blocks + seam partials)
//        ──► blend only the repaired seam blocks ──► finalize (pyramid only if damaged)
//        ──► checkOutput again
//
// The ledger's lock is held throughout (LocalLedger.open), so no run writes meanwhile.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { BlockDescriptor } from '../core/geometry/index.ts';
import { type Ledger, LocalLedger } from '../core/ledger/index.ts';
import { ModelRunner } from '../core/model/index.ts';
import {
  blendSeams,
  deleteSpentPartials,
  describeDamage,
  ensureOutput,
  finalizeJob,
  finishLeftovers,
  isBlended,
  type JobContext,
  leftoverUnits,
  openJob,
  partialKey,
  REPORT_KEY,
  type RunReport,
  verifyJob,
  type WorkerEvent,
} from '../core/pipeline/index.ts';
import { checkLocalModelSize } from '../core/pipeline/model-source.ts';
import {
  type CheckDepth,
  checkOutput,
  type DamagedObject,
  type OutputCheckResult,
} from '../core/pipeline/output-check.ts';
import { type RepairPlan, repairPlan } from '../core/pipeline/repair.ts';
import { runWorker } from '../core/pipeline/worker.ts';
import { type AbsolutePath, LocalStore, StoreCapabilityError } from '../core/store/index.ts';
import { isShardedOutput } from '../core/volume/index.ts';
import { checkOwner } from '../core/volume/output-owner.ts';
import { defaultStateDir, type LoadedManifest, resolveJobId } from './job-files.ts';

/** The job cannot be verified from this state directory (not run, or not finished). */
export class VerifyStateError extends Error {
  override readonly name = 'VerifyStateError';
  constructor(
    message: string,
    readonly jobId: string,
    readonly stateDir: string,
  ) {
    super(message);
  }
}

export interface RepairOutputOptions {
  readonly ctx: JobContext;
  /** The job's ledger, COMPLETE; its rearm moves the chunks to re-run back to PENDING. */
  readonly ledger: Ledger;
  readonly damaged: readonly DamagedObject[];
  /**
   * Runs every PENDING chunk of the job to completion (runLocal: its worker rounds;
   * verify: one worker in this process). The workers blend the seam blocks they are the
   * last contributor of, as in any run.
   */
  readonly runChunks: () => Promise<void>;
  /** The depth the damage was found at; the check after the repair uses it too. */
  readonly depth?: CheckDepth;
  readonly log?: (line: string) => void;
  readonly workers?: number;
  readonly device?: string;
}

export interface RepairOutcome {
  readonly status: 'REPAIRED' | 'FAILED';
  readonly plan: RepairPlan;
  readonly rearmed: number;
  /** Seam blocks blended again. */
  readonly blended: number;
  readonly report?: RunReport;
  /** What the check after the repair still found (empty when REPAIRED). */
  readonly remaining: readonly DamagedObject[];
  readonly message?: string;
}

/** Re-makes the damaged objects of a finished job's output (see the module header). */
export async function repairOutput(o: RepairOutputOptions): Promise<RepairOutcome> {
  const { ctx, ledger } = o;
  const log = o.log ?? (() => {});
  const startedAt = new Date();
  const plan = await clearDamagedMetadata(ctx, o.damaged);
  // Writes level 0's zarr.json and the root group again where they were deleted.
  const output = await ensureOutput(ctx);
  let rearmed = 0;
  let blended = 0;
  if (plan.chunkIds.length > 0) {
    rearmed = (await ledger.rearm(ctx.jobId, { chunkIds: plan.chunkIds })).rearmed;
    log(
      `repair: re-running ${plan.chunkIds.length} chunk(s) (${rearmed} re-armed) for ${o.damaged.filter((d) => d.kind === 'block' && d.level === 0).length} damaged level-0 block(s)`,
    );
    // Damaged seam blocks go first, so that one still missing after the run is one no
    // last contributor blended (every contributor of each runs again).
    await deleteDamagedSeamBlocks(ctx, o.damaged);
    await o.runChunks();
    const verify = await verifyJob(ledger, ctx.jobId);
    if (verify.status !== 'COMPLETE')
      return {
        status: 'FAILED',
        plan,
        rearmed,
        blended,
        remaining: o.damaged,
        message: `job ${ctx.jobId}: the repair left ${verify.counts.PENDING + verify.counts.RUNNING} chunk(s) unfinished and ${verify.counts.FAILED} FAILED; run \`tessera verify\` again to retry`,
      };
    if (isShardedOutput(output)) {
      // Every contributor of a damaged shard ran again: what no last one assembled is left.
      blended = await finishLeftovers(ctx, output, await leftoverUnits(ctx, output));
    } else {
      const rest: BlockDescriptor[] = [];
      for (const key of plan.seamBlocks) {
        const block = ctx.plan.describeBlock(key);
        if (!(await output.blockExists(block.coord))) rest.push(block);
      }
      blended = plan.seamBlocks.length - rest.length;
      blended += await blendSeams(ctx, output, { blocks: rest });
    }
    await deletePartials(ctx, plan.chunkIds);
  }
  if (plan.pyramid) log('repair: rebuilding the pyramid from level 0');
  const report = await finalizeJob(ctx, {
    ledger,
    verify: await verifyJob(ledger, ctx.jobId),
    startedAt,
    timings: {},
    fleetSize: o.workers ?? 1,
    device: o.device ?? ctx.manifest.compute.device,
    rebuildPyramid: plan.pyramid,
    log,
  });
  const after = await checkOutput(ctx, { depth: o.depth ?? 'frames' });
  return {
    status: after.damaged.length === 0 ? 'REPAIRED' : 'FAILED',
    plan,
    rearmed,
    blended,
    report,
    remaining: after.damaged,
    ...(after.damaged.length === 0
      ? {}
      : {
          message: `job ${ctx.jobId}: ${after.damaged.length} object(s) still damaged after the repair (first: ${after.damaged[0]!.key.slice(1)}: ${after.damaged[0]!.detail})`,
        }),
  };
}

/**
 * The first step of a repair, safe to take twice: refuses another job's output, then
 * deletes the damaged zarr.json documents so that ensureOutput (level 0, the root group),
 * the pyramid rebuild and finalize write them again. runLocal takes it before its plan
 * step, whose ensureOutput would refuse a level-0 zarr.json that is not valid JSON.
 */
/** Deletes the damaged level-0 seam blocks (their contributors re-run and blend them). */
async function deleteDamagedSeamBlocks(
  ctx: JobContext,
  damaged: readonly DamagedObject[],
): Promise<void> {
  for (const d of damaged) {
    if (d.kind !== 'block' || d.level !== 0 || !ctx.plan.describeBlock(d.coord).seam) continue;
    if (!ctx.outputStore.delete) throw new StoreCapabilityError(ctx.outputStore, 'delete');
    await ctx.outputStore.delete(d.key);
  }
}

export async function clearDamagedMetadata(
  ctx: JobContext,
  damaged: readonly DamagedObject[],
): Promise<RepairPlan> {
  const plan = repairPlan(ctx.plan, damaged);
  await refuseForeignOutput(ctx);
  for (const key of plan.metadata) {
    if (!ctx.outputStore.delete) throw new StoreCapabilityError(ctx.outputStore, 'delete');
    await ctx.outputStore.delete(key);
  }
  return plan;
}

/**
 * An output recorded for another job is never repaired into. Read leniently: a zarr.json
 * that is damaged is what the repair rewrites, so only documents that parse are asked.
 */
async function refuseForeignOutput(ctx: JobContext): Promise<void> {
  const doc = async (key: AbsolutePath): Promise<unknown> => {
    const bytes = await ctx.outputStore.get(key);
    if (bytes === undefined) return undefined;
    try {
      return JSON.parse(new TextDecoder().decode(bytes));
    } catch (error) {
      if (!(error instanceof SyntaxError)) throw error;
      return undefined;
    }
  };
  checkOwner(ctx.outputStore.location ?? 'the output', ctx.jobId, {
    root: await doc('/zarr.json'),
    array: await doc('/0/zarr.json'),
  });
}

/** The partials the re-run chunks wrote: every seam block they touch, repaired or not. */
async function deletePartials(ctx: JobContext, chunkIds: readonly string[]): Promise<void> {
  const { plan, work } = ctx;
  if (!work.delete) return; // a store that cannot delete keeps them; they are never read again
  for (const id of chunkIds)
    for (const block of plan.seamBlocks(plan.describeChunk(id)))
      await work.delete(partialKey(block.key, id));
}

// --- a rerun of a job an earlier run finished ----------------------------------------------

/** What an earlier run left of a job, as `tessera run` finds it. */
export type EarlierRun =
  /** Not blended yet: the run goes on from the ledger. */
  | { readonly kind: 'unfinished' }
  /** SUCCEEDED, and its output checks intact: nothing to do. */
  | { readonly kind: 'intact'; readonly report: RunReport }
  /** SUCCEEDED, but these output objects are damaged or missing: repair them. */
  | { readonly kind: 'damaged'; readonly damaged: DamagedObject[] }
  /** Blended, but stopped before finalize finished: finalize again. */
  | { readonly kind: 'blended' };

/**
 * Whether an earlier run finished the job (the blended marker; releases before it was
 * kept in the work store wrote it beside it), and if it succeeded whether its output is
 * intact. A finished job whose output is gone is refused, naming what to do.
 */
export async function earlierRun(
  ctx: JobContext,
  o: { stateDir: string; log: (line: string) => void },
): Promise<EarlierRun> {
  const legacyMarker = join(o.stateDir, 'work', `${ctx.jobId}.blended`);
  if (!(await isBlended(ctx.work)) && !existsSync(legacyMarker)) return { kind: 'unfinished' };
  const output = ctx.manifest.output.url;
  const previous = await previousReport(ctx);
  if (previous) {
    const check = await checkOutput(ctx);
    if (check.damaged.length === 0) {
      o.log(
        `${ctx.jobId} already SUCCEEDED; its output is ${output} (${check.checked} objects checked intact)`,
      );
      return { kind: 'intact', report: previous };
    }
    o.log(
      `${ctx.jobId} already SUCCEEDED, but ${check.damaged.length} output object(s) are damaged; repairing them:\n${describeDamage(check.damaged)}`,
    );
    // A damaged level-0 zarr.json would make ensureOutput refuse the output as not ours.
    await clearDamagedMetadata(ctx, check.damaged);
    return { kind: 'damaged', damaged: check.damaged };
  }
  if (!(await ctx.outputStore.get('/zarr.json')))
    throw new Error(
      `job ${ctx.jobId} finished earlier, but its output ${output} is gone; to compute it again, delete the state directory ${o.stateDir} and run again`,
    );
  // Otherwise it stopped during finalize: the ownership check, then finalize again.
  return { kind: 'blended' };
}

/** The output's report.json when it records this job's success, else undefined. */
async function previousReport(ctx: JobContext): Promise<RunReport | undefined> {
  const bytes = await ctx.outputStore.get(REPORT_KEY);
  if (!bytes) return undefined;
  try {
    const report = JSON.parse(new TextDecoder().decode(bytes)) as RunReport;
    return report.jobId === ctx.jobId && report.status === 'SUCCEEDED' ? report : undefined;
  } catch (error) {
    // An unreadable report records no success: the job is finalized again.
    if (!(error instanceof SyntaxError)) throw error;
    return undefined;
  }
}

// --- tessera verify on a local job ----------------------------------------------------------

export interface VerifyLocalOptions {
  readonly stateDir?: string;
  readonly depth?: CheckDepth;
  /** Report the damage, repair nothing. */
  readonly checkOnly?: boolean;
  readonly log?: (line: string) => void;
  readonly onProgress?: (checked: number, total: number) => void;
  /** Intra-op threads of the repair's model (default: every core). */
  readonly threads?: number;
  /** Test hook: each event of the repair's worker. */
  readonly onWorkerEvent?: (e: WorkerEvent) => void;
}

export interface VerifyLocalResult {
  readonly jobId: string;
  readonly check: OutputCheckResult;
  readonly repair?: RepairOutcome;
}

/** `tessera verify`: checks a finished local job's output and, unless checkOnly, repairs it. */
export async function verifyLocal(
  loaded: LoadedManifest,
  o: VerifyLocalOptions = {},
): Promise<VerifyLocalResult> {
  const stateDir = o.stateDir ?? defaultStateDir(loaded);
  const m: LoadedManifest = { ...loaded, jobId: await resolveJobId(loaded, stateDir) };
  const ledgerDir = join(stateDir, 'ledger');
  if (!existsSync(ledgerDir))
    throw new VerifyStateError(
      `job ${m.jobId} has no state in ${stateDir}: run \`tessera run\` on this manifest first (or pass --state DIR if it ran with one)`,
      m.jobId,
      stateDir,
    );
  const ledger = await LocalLedger.open(ledgerDir);
  try {
    if ((await ledger.getJob(m.jobId)) === undefined)
      throw new VerifyStateError(
        `job ${m.jobId} is not in the ledger in ${stateDir}: the manifest changed since it ran, or it never ran; run \`tessera run\` first`,
        m.jobId,
        stateDir,
      );
    const verify = await verifyJob(ledger, m.jobId);
    if (verify.status !== 'COMPLETE')
      throw new VerifyStateError(
        `job ${m.jobId} has not succeeded (${verify.counts.DONE + verify.counts.SKIPPED} of ${Object.values(verify.counts).reduce((a, b) => a + b, 0)} chunks done, ${verify.counts.FAILED} FAILED): verify checks a finished output; \`tessera run\` finishes the job`,
        m.jobId,
        stateDir,
      );
    const workDir = join(stateDir, 'work', m.jobId);
    const ctx = await openJob(m.manifest, {
      jobId: m.jobId,
      work: new LocalStore(workDir, { fsync: false }),
      baseDir: m.baseDir,
    });
    const depth = o.depth ?? 'frames';
    const check = await checkOutput(ctx, {
      depth,
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
    });
    if (check.damaged.length === 0 || o.checkOnly) return { jobId: m.jobId, check };
    const repair = await repairOutput({
      ctx,
      ledger,
      damaged: check.damaged,
      depth,
      runChunks: () => runInProcess(m, ctx, ledger, o),
      ...(o.log ? { log: o.log } : {}),
    });
    if (repair.status === 'REPAIRED') await deleteSpentPartials(ctx.work, { keepTiles: false });
    return { jobId: m.jobId, check, repair };
  } finally {
    await ledger.close();
  }
}

/** One worker in this process: a repair re-runs a few chunks, not worth forking for. */
async function runInProcess(
  m: LoadedManifest,
  ctx: JobContext,
  ledger: Ledger,
  o: VerifyLocalOptions,
): Promise<void> {
  const path = await checkLocalModelSize(m.manifest.model.url, { baseDir: m.baseDir });
  const model = await ModelRunner.open(
    { path },
    {
      ...(m.manifest.model.sha256 ? { sha256: m.manifest.model.sha256 } : {}),
      device: m.manifest.compute.device,
      ...(o.threads ? { intraOpThreads: o.threads } : {}),
    },
  );
  try {
    const output = await ensureOutput(ctx);
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: `verify-${process.pid}`,
      model,
      idlePollMs: 0,
      onEvent: (e) => {
        o.onWorkerEvent?.(e);
        if (e.type === 'failed')
          o.log?.(
            `chunk ${e.chunkId} failed${e.poison ? ' for the last time (poison)' : ', will retry'}: ${e.error}`,
          );
      },
    });
    if (stats.hung) o.log?.(`chunk ${stats.hung.chunkId}: inference hung; the repair stops`);
  } finally {
    await model.close();
  }
}
