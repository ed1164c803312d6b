// Why a Work round's Batch workers failed, read from AWS Batch: Verify's `workFailures`
// port. The job the Work task returned is described first; an array job's failed
// children are listed (ListJobs arrayJobId + jobStatus FAILED, paginated) and described
// (DescribeJobs, at most 100 ids per call), a single job is its own only worker. Only
// the first `limit` children are described: status.json keeps a bounded list, and a
// round whose 10,000 children all failed on one image pull says so with one example.

import {
  BatchClient,
  DescribeJobsCommand,
  type JobDetail,
  ListJobsCommand,
} from '@aws-sdk/client-batch';
import type { WorkFailures } from '../../core/cloud/index.ts';
import { BatchJobNotFoundError, BatchReadError } from './errors.ts';

/** DescribeJobs takes at most 100 job ids per call. */
export const DESCRIBE_BATCH = 100;

/** A Batch client from `env`: endpoint AWS_ENDPOINT_URL_BATCH, else AWS_ENDPOINT_URL. */
export function makeBatchClient(env: NodeJS.ProcessEnv = process.env): BatchClient {
  const endpoint = env.AWS_ENDPOINT_URL_BATCH ?? env.AWS_ENDPOINT_URL;
  return new BatchClient(endpoint ? { endpoint } : {});
}

/** The `workFailures` port over a real Batch client. */
export function batchWorkFailures(
  client: BatchClient,
): (batchJobId: string, o: { limit: number }) => Promise<WorkFailures> {
  return (batchJobId, o) => readWorkFailures(client, batchJobId, o.limit);
}

async function readWorkFailures(
  client: BatchClient,
  batchJobId: string,
  limit: number,
): Promise<WorkFailures> {
  const [job] = await describe(client, batchJobId, [batchJobId]);
  if (!job) throw new BatchJobNotFoundError(batchJobId);
  if (job.arrayProperties?.size === undefined) {
    // A non-array job (arraySize 1): the job is the worker.
    return job.status === 'FAILED'
      ? { failed: 1, described: [failureOf(job, batchJobId)] }
      : { failed: 0, described: [] };
  }
  const summarised = job.arrayProperties.statusSummary?.FAILED;
  const ids: string[] = [];
  let listed = 0;
  let nextToken: string | undefined;
  do {
    const page = await send('ListJobs', batchJobId, () =>
      client.send(
        new ListJobsCommand({
          arrayJobId: batchJobId,
          jobStatus: 'FAILED',
          ...(nextToken ? { nextToken } : {}),
        }),
      ),
    );
    for (const s of page.jobSummaryList ?? []) {
      listed++;
      if (s.jobId && ids.length < limit) ids.push(s.jobId);
    }
    nextToken = page.nextToken;
    // The parent's status summary already counts the failures: list only what is described.
  } while (nextToken && (summarised === undefined || ids.length < limit));
  const described: WorkFailures['described'] = [];
  for (let i = 0; i < ids.length; i += DESCRIBE_BATCH) {
    const jobs = await describe(client, batchJobId, ids.slice(i, i + DESCRIBE_BATCH));
    for (const d of jobs) described.push(failureOf(d, batchJobId));
  }
  described.sort((a, b) => (a.index ?? 0) - (b.index ?? 0));
  return { failed: Math.max(summarised ?? listed, described.length), described };
}

function describe(client: BatchClient, batchJobId: string, jobs: string[]): Promise<JobDetail[]> {
  return send('DescribeJobs', batchJobId, () =>
    client.send(new DescribeJobsCommand({ jobs })),
  ).then((r) => r.jobs ?? []);
}

async function send<T>(
  action: 'ListJobs' | 'DescribeJobs',
  batchJobId: string,
  call: () => Promise<T>,
): Promise<T> {
  try {
    return await call();
  } catch (cause) {
    // Every SDK or network failure: Verify records it and the ledger still decides.
    throw new BatchReadError(action, batchJobId, { cause });
  }
}

/** A failed job's detail: its own container, else its last attempt's. */
function failureOf(d: JobDetail, fallbackId: string): WorkFailures['described'][number] {
  const attempt = d.attempts?.at(-1);
  const container = d.container ?? attempt?.container;
  const index = d.arrayProperties?.index;
  const exitCode = container?.exitCode;
  const reason = container?.reason;
  const logStream = container?.logStreamName;
  return {
    batchJobId: d.jobId ?? fallbackId,
    ...(index !== undefined ? { index } : {}),
    statusReason: d.statusReason ?? attempt?.statusReason ?? 'no status reason given',
    ...(exitCode !== undefined ? { exitCode } : {}),
    ...(reason ? { reason } : {}),
    ...(logStream ? { logStream } : {}),
  };
}
