// Plan: claim the job's output location, then create the job's chunk rows (both
// idempotent). The output array is created by the writers (ensureOutput, idempotent), so
// the planner needs no write access to outputs.

import { type JobSpec, type Ledger, OutputClaimedError } from '../ledger/index.ts';
import { outputPresence } from '../volume/index.ts';
import type { JobContext } from './context.ts';

export interface PlanJobOptions {
  leaseMs?: number;
  now?: number;
  /**
   * Whether a job is over (succeeded, or failed for good): only such a job's output claim
   * may be taken over, and only once its output is gone. Default: the ledger has no
   * PENDING or RUNNING chunk of it (or no such job).
   */
  isJobOver?: (jobId: string) => Promise<boolean>;
}

export const DEFAULT_LEASE_MS = 60_000;

export async function planJob(
  ctx: JobContext,
  ledger: Ledger,
  o: PlanJobOptions = {},
): Promise<{ created: boolean; job: JobSpec }> {
  const { plan } = ctx;
  await claimJobOutput(ctx, ledger, o.isJobOver ?? ((id) => ledgerSaysOver(ledger, id)));
  const spec: JobSpec = {
    jobId: ctx.jobId,
    chunkCount: plan.counts.chunks,
    maxAttempts: ctx.manifest.maxAttempts,
    leaseMs: o.leaseMs ?? DEFAULT_LEASE_MS,
    createdAt: o.now ?? Date.now(),
    attributes: { name: ctx.manifest.name, output: ctx.manifest.output.url },
  };
  const chunks = (function* () {
    for (let i = 0; i < plan.counts.chunks; i++)
      yield { chunkId: plan.chunkId(plan.chunkCoordAt(i)), index: i };
  })();
  const { created, job } = await ledger.createJob(spec, chunks);
  return { created, job };
}

/**
 * Claims output.url for the job in the ledger: two jobs never write one output. Another
 * job's claim is taken over only when that job is over and its output is gone (deleted,
 * or never written; or already this job's, as a local run creates it before planning);
 * otherwise the holder's OutputClaimedError stands, naming it and what to do.
 */
async function claimJobOutput(
  ctx: JobContext,
  ledger: Ledger,
  isJobOver: (jobId: string) => Promise<boolean>,
): Promise<void> {
  try {
    await ledger.claimOutput(ctx.outputUrl, ctx.jobId);
  } catch (error) {
    if (!(error instanceof OutputClaimedError)) throw error;
    const there = await outputPresence(ctx.outputStore);
    if (there.exists && there.owner !== ctx.jobId) throw error;
    if (!(await isJobOver(error.holder))) throw error;
    await ledger.claimOutput(ctx.outputUrl, ctx.jobId, { replacing: error.holder });
  }
}

async function ledgerSaysOver(ledger: Ledger, jobId: string): Promise<boolean> {
  if ((await ledger.getJob(jobId)) === undefined) return true;
  const c = await ledger.counts(jobId);
  return c.PENDING + c.RUNNING === 0;
}
