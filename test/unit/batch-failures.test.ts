// The Batch adapter behind Verify's workFailures port, against the real
// @aws-sdk/client-batch with aws-sdk-client-mock: no Batch emulator exists (neither
// DynamoDB Local nor s3rver has a counterpart), so the requests it builds and the
// responses it reads are checked here, command by command.

import {
  BatchClient,
  DescribeJobsCommand,
  type JobDetail,
  ListJobsCommand,
} from '@aws-sdk/client-batch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { batchWorkFailures, makeBatchClient } from '../../adapters/aws/batch-failures.ts';
import { BatchJobNotFoundError, BatchReadError } from '../../adapters/aws/errors.ts';

const client = new BatchClient({ region: 'us-east-1' });
const batch = mockClient(client);
afterEach(() => batch.reset());
const read = batchWorkFailures(client);

const parent = (id: string, failed?: number): JobDetail =>
  ({
    jobId: id,
    jobName: 'tessera-work',
    jobQueue: 'q',
    jobDefinition: 'd',
    status: 'FAILED',
    startedAt: 0,
    arrayProperties: {
      size: 500,
      ...(failed === undefined
        ? {}
        : { statusSummary: { SUCCEEDED: 500 - failed, FAILED: failed } }),
    },
  }) as JobDetail;

const child = (parentId: string, index: number): JobDetail =>
  ({
    jobId: `${parentId}:${index}`,
    jobName: 'tessera-work',
    jobQueue: 'q',
    jobDefinition: 'd',
    status: 'FAILED',
    startedAt: 0,
    statusReason: 'Essential container in task exited',
    arrayProperties: { index },
    container: {
      exitCode: 137,
      reason: 'OutOfMemoryError: Container killed due to memory usage',
      logStreamName: `worker/default/${index}`,
    },
  }) as JobDetail;

/** DescribeJobs answers for whatever ids it is asked, like Batch. */
function describeFrom(jobs: Map<string, JobDetail>): void {
  batch.on(DescribeJobsCommand).callsFake((input: { jobs: string[] }) => {
    if (input.jobs.length > 100) throw new Error(`DescribeJobs with ${input.jobs.length} ids`);
    return { jobs: input.jobs.flatMap((id) => (jobs.has(id) ? [jobs.get(id)!] : [])) };
  });
}

describe('batchWorkFailures', () => {
  it("lists an array job's FAILED children page by page and describes them", async () => {
    const jobs = new Map([['arr', parent('arr', 3)]]);
    for (const i of [4, 17, 230]) jobs.set(`arr:${i}`, child('arr', i));
    describeFrom(jobs);
    batch
      .on(ListJobsCommand, { arrayJobId: 'arr', jobStatus: 'FAILED' })
      .resolvesOnce({ jobSummaryList: [{ jobId: 'arr:230', jobName: 'x' }], nextToken: 't1' })
      .resolvesOnce({
        jobSummaryList: [
          { jobId: 'arr:4', jobName: 'x' },
          { jobId: 'arr:17', jobName: 'x' },
        ],
      });
    const r = await read('arr', { limit: 20 });
    expect(r.failed).toBe(3);
    expect(r.described).toEqual(
      [4, 17, 230].map((index) => ({
        batchJobId: `arr:${index}`,
        index,
        statusReason: 'Essential container in task exited',
        exitCode: 137,
        reason: 'OutOfMemoryError: Container killed due to memory usage',
        logStream: `worker/default/${index}`,
      })),
    );
    const lists = batch.commandCalls(ListJobsCommand).map((c) => c.args[0].input);
    expect(lists).toEqual([
      { arrayJobId: 'arr', jobStatus: 'FAILED' },
      { arrayJobId: 'arr', jobStatus: 'FAILED', nextToken: 't1' },
    ]);
  });

  it('describes at most `limit` children, 100 ids per DescribeJobs call, and counts the rest', async () => {
    const jobs = new Map([['big', parent('big', 250)]]);
    const ids = Array.from({ length: 250 }, (_, i) => `big:${i}`);
    for (let i = 0; i < 250; i++) jobs.set(`big:${i}`, child('big', i));
    describeFrom(jobs);
    batch
      .on(ListJobsCommand)
      .resolvesOnce({
        jobSummaryList: ids.slice(0, 100).map((jobId) => ({ jobId, jobName: 'x' })),
        nextToken: 'a',
      })
      .resolvesOnce({
        jobSummaryList: ids.slice(100, 200).map((jobId) => ({ jobId, jobName: 'x' })),
        nextToken: 'b',
      })
      .resolvesOnce({ jobSummaryList: ids.slice(200).map((jobId) => ({ jobId, jobName: 'x' })) });
    const r = await read('big', { limit: 150 });
    expect(r.failed).toBe(250);
    expect(r.described).toHaveLength(150);
    // The parent's summary has the count: listing stops once `limit` ids are in hand.
    expect(batch.commandCalls(ListJobsCommand)).toHaveLength(2);
    const describes = batch.commandCalls(DescribeJobsCommand).map((c) => c.args[0].input.jobs);
    expect(describes.map((d) => d?.length)).toEqual([1, 100, 50]);
  });

  it('without a status summary on the parent, the listing is paged to the end to count', async () => {
    const jobs = new Map([['nosum', parent('nosum')]]);
    jobs.set('nosum:0', child('nosum', 0));
    describeFrom(jobs);
    batch
      .on(ListJobsCommand)
      .resolvesOnce({ jobSummaryList: [{ jobId: 'nosum:0', jobName: 'x' }], nextToken: 'n' })
      .resolvesOnce({ jobSummaryList: [{ jobId: 'nosum:1', jobName: 'x' }] });
    const r = await read('nosum', { limit: 1 });
    expect(r.failed).toBe(2);
    expect(r.described.map((d) => d.batchJobId)).toEqual(['nosum:0']);
  });

  it('a non-array job is its own worker: described itself, from its last attempt when needed', async () => {
    const single = {
      ...child('x', 0),
      jobId: 'single',
      arrayProperties: undefined,
      statusReason: undefined,
      container: undefined,
      attempts: [
        { statusReason: 'Host EC2 (instance i-1) terminated.', container: { exitCode: 75 } },
        {
          statusReason: 'CannotPullContainerError: pull access denied',
          container: { logStreamName: 'worker/default/s' },
        },
      ],
    } as JobDetail;
    describeFrom(new Map([['single', single]]));
    expect(await read('single', { limit: 20 })).toEqual({
      failed: 1,
      described: [
        {
          batchJobId: 'single',
          statusReason: 'CannotPullContainerError: pull access denied',
          logStream: 'worker/default/s',
        },
      ],
    });
    expect(batch.commandCalls(ListJobsCommand)).toHaveLength(0);
    describeFrom(new Map([['ok', { ...single, jobId: 'ok', status: 'SUCCEEDED' } as JobDetail]]));
    expect(await read('ok', { limit: 20 })).toEqual({ failed: 0, described: [] });
  });

  it('Batch errors become BatchReadError naming the action; an unknown job BatchJobNotFoundError', async () => {
    describeFrom(new Map([['arr', parent('arr', 1)]]));
    batch.on(ListJobsCommand).rejects(
      Object.assign(new Error('User is not authorized to perform: batch:ListJobs'), {
        name: 'AccessDeniedException',
        $metadata: { httpStatusCode: 403 },
      }),
    );
    const e = await read('arr', { limit: 20 }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(BatchReadError);
    expect((e as BatchReadError).action).toBe('ListJobs');
    expect((e as Error).message).toMatch(
      /^Batch ListJobs for job arr failed \(AccessDeniedException, HTTP 403, .*\)\. The verify function's role needs batch:ListJobs/,
    );
    expect((e as Error).cause).toBeInstanceOf(Error);
    await expect(read('gone', { limit: 20 })).rejects.toBeInstanceOf(BatchJobNotFoundError);
  });
});

describe('makeBatchClient', () => {
  it('takes AWS_ENDPOINT_URL_BATCH, else AWS_ENDPOINT_URL', async () => {
    const at = async (env: NodeJS.ProcessEnv) => {
      const c = makeBatchClient({ AWS_REGION: 'us-east-1', ...env });
      const ep = await c.config.endpoint?.();
      return ep ? `${ep.protocol}//${ep.hostname}:${ep.port}` : undefined;
    };
    expect(
      await at({
        AWS_ENDPOINT_URL_BATCH: 'http://127.0.0.1:4001',
        AWS_ENDPOINT_URL: 'http://127.0.0.1:4000',
      }),
    ).toBe('http://127.0.0.1:4001');
    expect(await at({ AWS_ENDPOINT_URL: 'http://127.0.0.1:4000' })).toBe('http://127.0.0.1:4000');
  });
});
