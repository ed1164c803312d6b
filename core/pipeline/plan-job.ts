// Plan: create the job's chunk rows (idempotently). The output array is created by the
// writers (ensureOutput, idempotent), so the planner needs no write access to outputs.

import type { JobSpec, Ledger } from '../ledger/index.ts';
import type { JobContext } from './context.ts';

export interface PlanJobOptions {
  leaseMs?: number;
  now?: number;
}

export const DEFAULT_LEASE_MS = 60_000;

export async function planJob(
  ctx: JobContext,
  ledger: Ledger,
  o: PlanJobOptions = {},
): Promise<{ created: boolean; job: JobSpec }> {
  const { plan } = ctx;
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
