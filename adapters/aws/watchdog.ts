// The stall watchdog's step (an EventBridge schedule invokes it every few minutes): for
// each RUNNING execution (named after its job), read the ledger counts, remember in
// jobs/<jobId>/progress.json when the finished count last moved, decide with
// stalledJobs(), mark or unmark `stalled` in the job's status.json, and publish the
// number of stalled jobs as STALL_METRIC, which the "no progress" alarm watches.

import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { ENV, KEYS, STALL_METRIC } from '../../contracts/cloud.ts';
import { jobIdOfExecution } from '../../contracts/executions.ts';
import { readStatus, tryJson, writeStatus } from '../../core/cloud/index.ts';
import { JobNotFoundError, type Ledger } from '../../core/ledger/index.ts';
import type { Store } from '../../core/store/index.ts';
import { cloudClientsFromEnv } from './deps.ts';
import { readCloudEnv, requireEnv } from './env.ts';
import { WatchdogError } from './errors.ts';
import { S3Store } from './s3-store.ts';
import { listRunningExecutions, type RunningExecution } from './sfn-executions.ts';
import { type JobObservation, type Progress, type StallVerdict, stalledJobs } from './stall.ts';

export interface WatchdogDeps {
  bucketStore: Store;
  ledger: Ledger;
  /** The state machine's RUNNING executions. */
  runningExecutions(): Promise<RunningExecution[]>;
  /** No chunk finished for this long (while chunks are unfinished): stalled. */
  stallMs: number;
  /** Publishes STALL_METRIC = `count`. */
  publishStalled(count: number): void;
}

export interface WatchdogResult {
  /** Jobs whose ledger was read. */
  checked: number;
  /** Jobs with unfinished chunks and no chunk finished within the stall threshold. */
  stalled: number;
  stalledJobs: string[];
  /** Executions not named like a job (started by hand under another name), or not planned yet. */
  skipped: number;
}

export async function watchdogStep(deps: WatchdogDeps, o: { now: Date }): Promise<WatchdogResult> {
  const now = o.now.getTime();
  const clock = { bucketStore: deps.bucketStore, now: () => o.now };
  const failures: { jobId: string; error: Error }[] = [];
  const observations: JobObservation[] = [];
  let skipped = 0;
  for (const execution of await deps.runningExecutions()) {
    const jobId = jobIdOfExecution(execution.name);
    if (jobId === undefined) {
      skipped++;
      continue;
    }
    try {
      const c = await deps.ledger.counts(jobId);
      const last = await readProgress(deps.bucketStore, jobId);
      observations.push({
        jobId,
        startedAt: execution.startDate.getTime(),
        finished: c.DONE + c.SKIPPED,
        unfinished: c.PENDING + c.RUNNING,
        ...(last ? { last } : {}),
      });
    } catch (error) {
      // Its Plan task has not written the ledger rows yet: nothing to stall.
      if (error instanceof JobNotFoundError) {
        skipped++;
        continue;
      }
      if (!(error instanceof Error)) throw error;
      failures.push({ jobId, error });
    }
  }
  const verdicts = stalledJobs(observations, now, deps.stallMs);
  for (const [i, v] of verdicts.entries()) {
    try {
      const last = observations[i]?.last;
      if (last?.finished !== v.progress.finished || last.at !== v.progress.at)
        await writeProgress(deps.bucketStore, v.jobId, v.progress);
      await markStatus(clock, v);
    } catch (error) {
      if (!(error instanceof Error)) throw error;
      failures.push({ jobId: v.jobId, error });
    }
  }
  const stalled = verdicts.filter((v) => v.stalled).map((v) => v.jobId);
  // Published even when some jobs could not be checked: the alarm sees those that could.
  deps.publishStalled(stalled.length);
  if (failures.length > 0) throw new WatchdogError(failures);
  return { checked: observations.length, stalled: stalled.length, stalledJobs: stalled, skipped };
}

/** `stalled` into the job's status.json, or out of it once progress resumed. */
async function markStatus(deps: Parameters<typeof writeStatus>[0], v: StallVerdict): Promise<void> {
  const status = await readStatus(deps, v.jobId);
  // No status yet, or a job already ended (its execution is finishing): nothing to mark.
  if (!status || ['SUCCEEDED', 'FAILED', 'REJECTED'].includes(status.status)) return;
  const { stalled: was, updatedAt: _, ...rest } = status;
  if (v.stalled) {
    const stalled = { since: new Date(v.stalled.since).toISOString(), minutes: v.stalled.minutes };
    if (was?.since === stalled.since && was.minutes === stalled.minutes) return;
    await writeStatus(deps, { ...rest, stalled });
  } else if (was) {
    await writeStatus(deps, rest);
  }
}

interface ProgressDocument {
  jobId: string;
  finished: number;
  /** ISO time the finished count last moved. */
  at: string;
}

async function readProgress(store: Store, jobId: string): Promise<Progress | undefined> {
  const bytes = await store.get(`/${KEYS.progress(jobId)}`);
  if (!bytes) return undefined;
  const doc = tryJson(new TextDecoder().decode(bytes)) as Partial<ProgressDocument> | undefined;
  const at = typeof doc?.at === 'string' ? Date.parse(doc.at) : Number.NaN;
  // Unreadable (hand-edited, truncated): start over as if first seen; rewritten below.
  if (typeof doc?.finished !== 'number' || !Number.isFinite(at)) return undefined;
  return { finished: doc.finished, at };
}

async function writeProgress(store: Store, jobId: string, p: Progress): Promise<void> {
  const doc: ProgressDocument = { jobId, finished: p.finished, at: new Date(p.at).toISOString() };
  await store.set(`/${KEYS.progress(jobId)}`, new TextEncoder().encode(`${JSON.stringify(doc)}\n`));
}

/** publishStalled over Powertools Metrics (EMF on stdout): STALL_METRIC exactly. */
export function stallMetricPublisher(): (count: number) => void {
  const metrics = new Metrics({
    namespace: STALL_METRIC.namespace,
    serviceName: STALL_METRIC.dimensions.service,
  });
  return (count) => {
    metrics.addMetric(STALL_METRIC.name, MetricUnit.Count, count);
    metrics.publishStoredMetrics();
  };
}

/** The stall watchdog's dependencies: it needs the state machine (whose executions it lists). */
export function watchdogDepsFromEnv(env: NodeJS.ProcessEnv = process.env): WatchdogDeps {
  const e = readCloudEnv(env);
  const stateMachineArn = requireEnv(ENV.stateMachineArn, env);
  const clients = cloudClientsFromEnv(env, { ...e, stateMachineArn });
  const sfn = clients.sfn!;
  return {
    bucketStore: new S3Store({ client: clients.s3, bucket: e.bucket }),
    ledger: clients.ledger,
    runningExecutions: () => listRunningExecutions(sfn, stateMachineArn),
    stallMs: (e.stallMinutes ?? 60) * 60_000,
    publishStalled: stallMetricPublisher(),
  };
}
