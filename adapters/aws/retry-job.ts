// The way back for a FAILED cloud job, once the cause is fixed: its FAILED chunks are
// re-armed in the ledger (PENDING, attempts from 0; every DONE chunk kept) and the state
// machine runs the job again as execution `<jobId>_r<n>` with the manifest version it
// was planned from. Plan finds the job already planned (same manifest version, same job
// id), so the new execution goes straight to the work rounds over the chunks left.

import type { JobStatusDocument, PipelineInput } from '../../contracts/cloud.ts';
import { executionName } from '../../contracts/executions.ts';
import { readStatus, writeStatus } from '../../core/cloud/index.ts';
import type { Ledger } from '../../core/ledger/index.ts';
import type { Store } from '../../core/store/index.ts';

export interface RetryDeps {
  bucketStore: Store;
  ledger: Ledger;
  startExecution(
    name: string,
    input: PipelineInput,
  ): Promise<{ executionArn?: string; alreadyExists: boolean }>;
  now?: () => Date;
}

export interface RetryOutcome {
  jobId: string;
  rearmed: number;
  execution: string;
  executionArn?: string;
}

/** The job cannot be retried as it stands (not FAILED, or unknown); says what to do. */
export class RetryRefusedError extends Error {
  override readonly name = 'RetryRefusedError';
  constructor(
    readonly jobId: string,
    readonly status: JobStatusDocument['status'] | undefined,
    message: string,
  ) {
    super(message);
  }
}

/** How many retries a job may be run with (execution names `<jobId>_r1` … `_r99`). */
const MAX_RETRIES = 99;

export async function retryFailedJob(deps: RetryDeps, jobId: string): Promise<RetryOutcome> {
  const status = await readStatus(deps, jobId);
  if (status === undefined)
    throw new RetryRefusedError(
      jobId,
      undefined,
      `job ${jobId} has no status in the stack's bucket: check the job id (tessera submit printed it)`,
    );
  if (status.status !== 'FAILED')
    throw new RetryRefusedError(
      jobId,
      status.status,
      status.status === 'SUCCEEDED'
        ? `job ${jobId} SUCCEEDED: there is nothing to retry`
        : `job ${jobId} is ${status.status}, not FAILED: only a FAILED job is retried (watch it with tessera status ${jobId} --cloud)`,
    );
  const { rearmed } = await deps.ledger.rearm(jobId, { status: 'FAILED' });
  const input: PipelineInput = { manifest: status.manifest };
  for (let retry = 1; retry <= MAX_RETRIES; retry++) {
    const name = executionName(jobId, retry);
    const started = await deps.startExecution(name, input);
    if (started.alreadyExists) continue; // an earlier retry holds the name
    await writeStatus(deps, {
      jobId,
      status: 'RUNNING',
      manifest: status.manifest,
      ...(status.output ? { output: status.output } : {}),
      ...(started.executionArn ? { executionArn: started.executionArn } : {}),
      ...(status.workerFailures ? { workerFailures: status.workerFailures } : {}),
    });
    return {
      jobId,
      rearmed,
      execution: name,
      ...(started.executionArn ? { executionArn: started.executionArn } : {}),
    };
  }
  throw new RetryRefusedError(
    jobId,
    status.status,
    `job ${jobId} was retried ${MAX_RETRIES} times already; submit the manifest again as a new job`,
  );
}
