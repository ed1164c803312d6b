// The stall decision by hand-computed cases, the ListExecutions adapter against the real
// @aws-sdk/client-sfn with aws-sdk-client-mock (no local Step Functions endpoint answers
// ListExecutions), and the EMF line the metric publisher writes.

import { ListExecutionsCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it, vi } from 'vitest';
import { listRunningExecutions } from '../../adapters/aws/sfn-executions.ts';
import { stalledJobs } from '../../adapters/aws/stall.ts';
import { stallMetricPublisher } from '../../adapters/aws/watchdog.ts';
import { STALL_METRIC } from '../../contracts/cloud.ts';

const MIN = 60_000;
const T0 = Date.UTC(2025, 0, 1, 12, 0, 0);
const STALL = 60 * MIN;

describe('stalledJobs', () => {
  it('nothing finished yet: the clock runs from the execution start', () => {
    const [fresh, stuck] = stalledJobs(
      [
        { jobId: 'a', startedAt: T0 - 59 * MIN, finished: 0, unfinished: 8 },
        { jobId: 'b', startedAt: T0 - 60 * MIN, finished: 0, unfinished: 8 },
      ],
      T0,
      STALL,
    );
    expect(fresh).toEqual({ jobId: 'a', progress: { finished: 0, at: T0 - 59 * MIN } });
    // Exactly the threshold counts as stalled (≥).
    expect(stuck).toEqual({
      jobId: 'b',
      progress: { finished: 0, at: T0 - 60 * MIN },
      stalled: { since: T0 - 60 * MIN, minutes: 60 },
    });
  });

  it('the finished count moved since the last look: progress restarts now', () => {
    const [v] = stalledJobs(
      [
        {
          jobId: 'c',
          startedAt: T0 - 300 * MIN,
          finished: 5,
          unfinished: 3,
          last: { finished: 4, at: T0 - 200 * MIN },
        },
      ],
      T0,
      STALL,
    );
    expect(v).toEqual({ jobId: 'c', progress: { finished: 5, at: T0 } });
  });

  it('unchanged since the last move 75.5 minutes ago: stalled for 75 whole minutes', () => {
    const at = T0 - 75.5 * MIN;
    const [v] = stalledJobs(
      [
        {
          jobId: 'd',
          startedAt: T0 - 300 * MIN,
          finished: 5,
          unfinished: 3,
          last: { finished: 5, at },
        },
      ],
      T0,
      STALL,
    );
    expect(v).toEqual({
      jobId: 'd',
      progress: { finished: 5, at },
      stalled: { since: at, minutes: 75 },
    });
  });

  it('no unfinished chunks (blending, finalizing, or failed chunks only) is never stalled', () => {
    const [v] = stalledJobs(
      [
        {
          jobId: 'e',
          startedAt: T0 - 900 * MIN,
          finished: 8,
          unfinished: 0,
          last: { finished: 8, at: T0 - 800 * MIN },
        },
      ],
      T0,
      STALL,
    );
    expect(v?.stalled).toBeUndefined();
    expect(v?.progress).toEqual({ finished: 8, at: T0 - 800 * MIN });
  });

  it('first look at a job that has finished chunks: counted from now, not from its start', () => {
    const [v] = stalledJobs(
      [{ jobId: 'f', startedAt: T0 - 900 * MIN, finished: 2, unfinished: 6 }],
      T0,
      STALL,
    );
    expect(v).toEqual({ jobId: 'f', progress: { finished: 2, at: T0 } });
  });

  it('a progress record older than this execution does not count against it', () => {
    const [v] = stalledJobs(
      [
        {
          jobId: 'g',
          startedAt: T0 - 10 * MIN,
          finished: 0,
          unfinished: 4,
          last: { finished: 0, at: T0 - 500 * MIN },
        },
      ],
      T0,
      STALL,
    );
    expect(v).toEqual({ jobId: 'g', progress: { finished: 0, at: T0 - 10 * MIN } });
  });
});

describe('listRunningExecutions', () => {
  it('pages through RUNNING executions of the state machine', async () => {
    const sfn = new SFNClient({ region: 'us-east-1' });
    const mock = mockClient(sfn);
    const arn = 'arn:aws:states:us-east-1:111122223333:stateMachine:tessera';
    const exec = (name: string, start: number) => ({
      executionArn: `${arn}:${name}`,
      stateMachineArn: arn,
      name,
      status: 'RUNNING' as const,
      startDate: new Date(start),
    });
    mock
      .on(ListExecutionsCommand)
      .resolvesOnce({ executions: [exec('cells-0123456789', T0)], nextToken: 'p2' })
      .resolvesOnce({ executions: [exec('tissue-abcdef0123', T0 + 1)] });
    expect(await listRunningExecutions(sfn, arn)).toEqual([
      { name: 'cells-0123456789', startDate: new Date(T0) },
      { name: 'tissue-abcdef0123', startDate: new Date(T0 + 1) },
    ]);
    expect(mock.commandCalls(ListExecutionsCommand).map((c) => c.args[0].input)).toEqual([
      { stateMachineArn: arn, statusFilter: 'RUNNING', maxResults: 1000 },
      { stateMachineArn: arn, statusFilter: 'RUNNING', maxResults: 1000, nextToken: 'p2' },
    ]);
  });
});

describe('stallMetricPublisher', () => {
  it('writes one EMF line: STALL_METRIC namespace, name and service dimension', () => {
    const lines: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    try {
      stallMetricPublisher()(2);
    } finally {
      spy.mockRestore();
    }
    const emf = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(emf).toHaveLength(1);
    const doc = emf[0] as {
      _aws: {
        CloudWatchMetrics: {
          Namespace: string;
          Dimensions: string[][];
          Metrics: { Name: string; Unit: string }[];
        }[];
      };
      [k: string]: unknown;
    };
    expect(doc._aws.CloudWatchMetrics).toEqual([
      {
        Namespace: 'Tessera',
        Dimensions: [['service']],
        Metrics: [{ Name: 'StalledJobs', Unit: 'Count' }],
      },
    ]);
    expect(doc.StalledJobs).toBe(2);
    expect(doc.service).toBe('tessera');
    // The constant the alarm is built from says the same.
    expect(STALL_METRIC).toEqual({
      namespace: 'Tessera',
      name: 'StalledJobs',
      dimensions: { service: 'tessera' },
    });
  });
});
