// The pipeline state machine (standard). Input: PipelineInput {manifest:{bucket,key,versionId?}}.
//
//   Plan ─► PlanInRanges? ─┬─ rangeRows > 0 ─► RangeStarts ─► PlanRanges (Map) ─► CompletePlan ─┐
//           └──────────────┴─ 0 (Plan wrote the rows) ───────────────────────────────────────────┤
//   ┌──────────────────────────────────────────────────────────────────────────────────────────────────┘
//   └► StartRounds ─► ChooseQueue ─┬─ gpu ─► GpuArrayOrSingle ─► WorkGpuArray | WorkGpu ─┐
//                               ▲       └─ cpu ─► CpuArrayOrSingle ─► WorkCpuArray | WorkCpu ─┤
//                               │                                                            ▼
//                               │   (a failed Batch job goes on too: the ledger decides) CountRound
//                               │                                                            ▼
//                           NextRound ◄──── INCOMPLETE, redrive ◄──────── Verified? ◄──── Verify
//                                                                            │
//        FAILED / rounds used up ─► Unfinished ─► MarkFailed ─► Failed       │ COMPLETE
//        any task error ─► PlanFailed | StepFailed ─┘                        ▼
//                                          HasSeams? ─► Blend (Distributed Map) ─► Pyramid ─► Finalize ─► Succeeded
//                                              └────────────────────────────────────┘ (no seams left)
//
// State data: $.manifest (input), $.plan, $.work {round, arraySize}, $.batch, $.verify,
// $.error, $.failure, $.result, and the pyramid's $.pyramidNext {level} and $.pyramid
// (PyramidLevel's result: its tasks' first blocks, ≤ 500 numbers). A round's fleet is
// $.work.arraySize: the plan's for the first round, then what Verify asks for (at most the
// unfinished chunks), set by NextRound.
// The Batch task keeps only {JobId, Status} of its job description (which can exceed the
// 256 KiB state limit), or on failure {Error, Cause}: Verify looks up the failed children.
// The blend Map's child results go to S3 (ResultWriter), not into the state. The
// execution times out after `jobTimeout`; Step Functions then cancels the running Batch job.

import { Duration, Stack, Token } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as tasks from 'aws-cdk-lib/aws-stepfunctions-tasks';
import { Construct } from 'constructs';
import { KEYS, PLAN_RANGES_IN_FLIGHT } from '../../contracts/cloud.ts';
import { BLEND_CONCURRENCY, PYRAMID_CONCURRENCY } from '../../contracts/stack-sizing.ts';
import { acknowledgeFindings } from '../nag.ts';
import type { FunctionName } from './functions.ts';
import type { Storage } from './storage.ts';

/** State names: stable, because local runs map tasks to handlers by name. */
export const STATES = {
  plan: 'Plan',
  planInRanges: 'PlanInRanges?',
  rangeStarts: 'RangeStarts',
  planRanges: 'PlanRanges',
  planRange: 'PlanRange',
  completePlan: 'CompletePlan',
  startRounds: 'StartRounds',
  nextRound: 'NextRound',
  chooseQueue: 'ChooseQueue',
  gpuArrayOrSingle: 'GpuArrayOrSingle',
  cpuArrayOrSingle: 'CpuArrayOrSingle',
  workGpuArray: 'WorkGpuArray',
  workGpu: 'WorkGpu',
  workCpuArray: 'WorkCpuArray',
  workCpu: 'WorkCpu',
  countRound: 'CountRound',
  verify: 'Verify',
  verified: 'Verified?',
  hasSeams: 'HasSeams?',
  blend: 'Blend',
  blendRange: 'BlendRange',
  startPyramid: 'StartPyramid',
  pyramidLevel: 'PyramidLevel',
  pyramidDone: 'PyramidDone?',
  pyramidTasks: 'PyramidTasks',
  pyramidRange: 'PyramidRange',
  nextPyramidLevel: 'NextPyramidLevel',
  finalize: 'Finalize',
  succeeded: 'Succeeded',
  unfinished: 'Unfinished',
  unexplained: 'UnfinishedUnexplained',
  planFailed: 'PlanFailed',
  stepFailed: 'StepFailed',
  markFailed: 'MarkFailed',
  failed: 'Failed',
  describeUnrecorded: 'DescribeUnrecorded',
  failedUnrecorded: 'FailedUnrecorded',
} as const;

/** Error name of the Fail states (what a calling pipeline sees). */
export const PIPELINE_ERROR = 'TesseraJobFailed';

export interface WorkTarget {
  readonly queueArn: string;
  readonly jobDefinitionArn: string;
}

export interface PipelineProps {
  readonly stateMachineName: string;
  readonly storage: Storage;
  readonly fns: Record<FunctionName, lambda.IFunction>;
  readonly gpu: WorkTarget;
  readonly cpu: WorkTarget;
  /** Blend Lambdas running at once (each sums ~64 seam blocks). */
  readonly blendConcurrency?: number;
  /** Longest a job may run before its execution times out. */
  readonly jobTimeout: Duration;
}

// Lambda throttling is not among the service errors LambdaInvoke retries by default,
// and a wide Distributed Map can hit the account's concurrency limit.
const THROTTLED = {
  errors: ['Lambda.TooManyRequestsException'],
  interval: Duration.seconds(5),
  maxAttempts: 8,
  backoffRate: 2,
};

export class Pipeline extends Construct {
  readonly stateMachine: sfn.StateMachine;
  readonly logGroup: logs.LogGroup;

  constructor(scope: Construct, id: string, props: PipelineProps) {
    super(scope, id);
    const { fns, storage } = props;

    // --- failure paths -------------------------------------------------------------
    const failed = new sfn.Fail(this, STATES.failed, {
      error: PIPELINE_ERROR,
      causePath: '$.failed.reason',
    });
    // MarkFailed itself failed: the execution still fails with what it was recording.
    // (A Pass renders it: Fail's CausePath takes intrinsics on AWS, not in local runs.)
    const failedUnrecorded = new sfn.Pass(this, STATES.describeUnrecorded, {
      parameters: { cause: sfn.JsonPath.jsonToString(sfn.JsonPath.objectAt('$.failure')) },
      resultPath: '$.unrecorded',
    }).next(
      new sfn.Fail(this, STATES.failedUnrecorded, {
        error: PIPELINE_ERROR,
        causePath: '$.unrecorded.cause',
      }),
    );
    const markFailed = lambdaTask(this, STATES.markFailed, fns.markFailed, {
      inputPath: '$.failure',
      resultPath: '$.failed',
    });
    markFailed.addCatch(failedUnrecorded, { resultPath: '$.markFailedError' });
    markFailed.next(failed);

    // Before the plan there is no job id; afterwards every failure names it.
    const planFailed = new sfn.Pass(this, STATES.planFailed, {
      parameters: {
        manifest: sfn.JsonPath.objectAt('$.manifest'),
        error: sfn.JsonPath.objectAt('$.error'),
      },
      resultPath: '$.failure',
    }).next(markFailed);
    const stepFailed = new sfn.Pass(this, STATES.stepFailed, {
      parameters: {
        jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
        manifest: sfn.JsonPath.objectAt('$.manifest'),
        error: sfn.JsonPath.objectAt('$.error'),
      },
      resultPath: '$.failure',
    }).next(markFailed);
    // Verify names poison chunks in `reason`; should it ever leave it out, say what it said.
    const unfinished = new sfn.Pass(this, STATES.unfinished, {
      parameters: {
        jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
        manifest: sfn.JsonPath.objectAt('$.manifest'),
        reason: sfn.JsonPath.stringAt('$.verify.reason'),
      },
      resultPath: '$.failure',
    }).next(markFailed);
    const unexplained = new sfn.Pass(this, STATES.unexplained, {
      parameters: {
        jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
        manifest: sfn.JsonPath.objectAt('$.manifest'),
        reason: sfn.JsonPath.format(
          'verify returned {} with {} chunk(s) unfinished after round {}',
          sfn.JsonPath.stringAt('$.verify.status'),
          sfn.JsonPath.stringAt('$.verify.remaining'),
          sfn.JsonPath.stringAt('$.verify.round'),
        ),
      },
      resultPath: '$.failure',
    }).next(markFailed);
    const catchTo = <T extends sfn.TaskStateBase | sfn.DistributedMap>(
      state: T,
      handler: sfn.IChainable,
    ): T => {
      state.addCatch(handler, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
      return state;
    };

    // --- plan ----------------------------------------------------------------------
    const plan = catchTo(
      lambdaTask(this, STATES.plan, fns.planner, {
        payload: sfn.TaskInput.fromObject({ manifest: sfn.JsonPath.objectAt('$.manifest') }),
        resultSelector: {
          jobId: sfn.JsonPath.stringAt('$.jobId'),
          arraySize: sfn.JsonPath.numberAt('$.arraySize'),
          chunks: sfn.JsonPath.numberAt('$.chunks'),
          seamBlocks: sfn.JsonPath.numberAt('$.seamBlocks'),
          blendItemsKey: sfn.JsonPath.stringAt('$.blendItemsKey'),
          blendItemCount: sfn.JsonPath.numberAt('$.blendItemCount'),
          device: sfn.JsonPath.stringAt('$.device'),
          // Rows per PlanRange task, 0 when Plan wrote the rows: the Plan task decides.
          rangeRows: sfn.JsonPath.numberAt('$.rangeRows'),
          // The blend Map reads its items from here (ItemReader's bucket path).
          bucket: storage.bucket.bucketName,
          // ...and writes its children's results under here (ResultWriter's prefix).
          blendResultsPrefix: sfn.JsonPath.format(
            KEYS.blendResults('{}'),
            sfn.JsonPath.stringAt('$.jobId'),
          ),
        },
        resultPath: '$.plan',
      }),
      planFailed,
    );
    const startRounds = new sfn.Pass(this, STATES.startRounds, {
      parameters: { round: 0, arraySize: sfn.JsonPath.numberAt('$.plan.arraySize') },
      resultPath: '$.work',
    });

    // --- work ----------------------------------------------------------------------
    const countRound = new sfn.Pass(this, STATES.countRound, {
      parameters: {
        round: sfn.JsonPath.mathAdd(sfn.JsonPath.numberAt('$.work.round'), 1),
        arraySize: sfn.JsonPath.numberAt('$.work.arraySize'),
      },
      resultPath: '$.work',
    });
    // A re-drive starts only as many workers as chunks are left (Verify's arraySize).
    const nextRound = new sfn.Pass(this, STATES.nextRound, {
      parameters: {
        round: sfn.JsonPath.numberAt('$.work.round'),
        arraySize: sfn.JsonPath.numberAt('$.verify.arraySize'),
      },
      resultPath: '$.work',
    });
    const submit = (name: string, target: WorkTarget, array: boolean): tasks.BatchSubmitJob => {
      const task = new tasks.BatchSubmitJob(this, name, {
        integrationPattern: sfn.IntegrationPattern.RUN_JOB,
        jobName: sfn.JsonPath.format('tessera-{}', sfn.JsonPath.stringAt('$.plan.jobId')),
        jobQueueArn: target.queueArn,
        jobDefinitionArn: target.jobDefinitionArn,
        payload: sfn.TaskInput.fromObject({ jobId: sfn.JsonPath.stringAt('$.plan.jobId') }),
        // Batch array jobs need 2..10,000 children: size 1 takes the non-array task.
        ...(array ? { arraySize: sfn.JsonPath.numberAt('$.work.arraySize') } : {}),
        // Enough for Verify to find the job's failed children; the rest can be huge.
        resultSelector: {
          JobId: sfn.JsonPath.stringAt('$.JobId'),
          Status: sfn.JsonPath.stringAt('$.Status'),
        },
        resultPath: '$.batch',
      });
      task.addRetry({
        errors: ['Batch.ServerException'],
        interval: Duration.seconds(10),
        maxAttempts: 3,
        backoffRate: 2,
      });
      // A failed job (a child crashed, attempts used up) is not the job's verdict: the
      // ledger is. Verify counts what is done and re-drives or fails, bounded by rounds;
      // it reads the failed children from the job description in $.batch.Cause.
      task.addCatch(countRound, { errors: [sfn.Errors.TASKS_FAILED], resultPath: '$.batch' });
      catchTo(task, stepFailed);
      task.next(countRound);
      return task;
    };
    const arrayOrSingle = (name: string, target: WorkTarget, prefix: 'Gpu' | 'Cpu') =>
      new sfn.Choice(this, name)
        .when(
          sfn.Condition.numberGreaterThan('$.work.arraySize', 1),
          submit(STATES[`work${prefix}Array`], target, true),
        )
        .otherwise(submit(STATES[`work${prefix}`], target, false));
    const chooseQueue = new sfn.Choice(this, STATES.chooseQueue)
      .when(
        sfn.Condition.stringEquals('$.plan.device', 'gpu'),
        arrayOrSingle(STATES.gpuArrayOrSingle, props.gpu, 'Gpu'),
      )
      .otherwise(arrayOrSingle(STATES.cpuArrayOrSingle, props.cpu, 'Cpu'));

    // --- verify --------------------------------------------------------------------
    const verify = catchTo(
      lambdaTask(this, STATES.verify, fns.verify, {
        payload: sfn.TaskInput.fromObject({
          jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
          round: sfn.JsonPath.numberAt('$.work.round'),
          batch: sfn.JsonPath.objectAt('$.batch'),
        }),
        resultPath: '$.verify',
      }),
      stepFailed,
    );

    // --- blend and finalize --------------------------------------------------------
    const finalize = catchTo(
      lambdaTask(this, STATES.finalize, fns.finalize, {
        payload: sfn.TaskInput.fromObject({ jobId: sfn.JsonPath.stringAt('$.plan.jobId') }),
        resultPath: '$.result',
      }),
      stepFailed,
    ).next(new sfn.Succeed(this, STATES.succeeded, { outputPath: '$.result' }));

    const blend = new sfn.DistributedMap(this, STATES.blend, {
      // The planner's items are already ranges of seam blocks (its own batching), so no
      // ItemBatcher: one item is one Lambda invocation of a bounded size.
      itemReader: new sfn.S3JsonItemReader({
        bucketNamePath: sfn.JsonPath.stringAt('$.plan.bucket'),
        key: sfn.JsonPath.stringAt('$.plan.blendItemsKey'),
      }),
      maxConcurrency: props.blendConcurrency ?? BLEND_CONCURRENCY,
      // Thousands of child results would overflow the 256 KiB state: they go to S3.
      resultWriterV2: new PrefixResultWriter({
        bucket: storage.bucket,
        prefix: sfn.JsonPath.stringAt('$.plan.blendResultsPrefix'),
        grantPattern: `${KEYS.blendResults('*')}*`,
      }),
      toleratedFailurePercentage: 0,
      mapExecutionType: sfn.StateMachineType.STANDARD,
      resultPath: sfn.JsonPath.DISCARD,
      label: 'BlendSeams',
    });
    blend.itemProcessor(
      // The item itself (a BlendItem) is the event.
      lambdaTask(this, STATES.blendRange, fns.blend, {
        resultPath: sfn.JsonPath.DISCARD,
      }),
    );
    // The downsampled levels, level by level, before Finalize writes their metadata.
    const pyramid = pyramidStates(this, fns.pyramid, finalize, stepFailed);
    catchTo(blend, stepFailed).next(pyramid);
    const hasSeams = new sfn.Choice(this, STATES.hasSeams)
      // Verify's count: the seam blocks no worker blended (usually none; see seam-handoff.ts).
      .when(sfn.Condition.numberGreaterThan('$.verify.blendItemCount', 0), blend)
      .otherwise(pyramid);

    const verified = new sfn.Choice(this, STATES.verified)
      .when(sfn.Condition.stringEquals('$.verify.status', 'COMPLETE'), hasSeams)
      .when(
        sfn.Condition.and(
          sfn.Condition.stringEquals('$.verify.status', 'INCOMPLETE'),
          sfn.Condition.booleanEquals('$.verify.redrive', true),
        ),
        nextRound,
      )
      .when(sfn.Condition.isPresent('$.verify.reason'), unfinished)
      .otherwise(unexplained);

    countRound.next(verify);
    nextRound.next(chooseQueue);
    verify.next(verified);
    const definition = plan.next(planInRanges(this, fns.planRange, startRounds, stepFailed));
    startRounds.next(chooseQueue);

    this.logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.THREE_MONTHS,
    });
    this.stateMachine = new sfn.StateMachine(this, 'StateMachine', {
      stateMachineName: props.stateMachineName,
      stateMachineType: sfn.StateMachineType.STANDARD,
      definitionBody: sfn.DefinitionBody.fromChainable(definition),
      tracingEnabled: true,
      logs: { destination: this.logGroup, level: sfn.LogLevel.ALL, includeExecutionData: true },
      // A job that never gets capacity (Spot, quota) must not wait for ever; stopping the
      // execution cancels its running Batch job (batch:TerminateJob below).
      timeout: props.jobTimeout,
    });
    // The blend Map reads items only from jobs/<jobId>/blend-items.json.
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [storage.bucket.arnForObjects(KEYS.blendItems('*'))],
      }),
    );
    // submitJob.sync polls the job and cancels it when the execution stops (timeout,
    // StopExecution): CDK grants SubmitJob and the events rule, not these.
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['batch:DescribeJobs'], resources: ['*'] }),
    );
    this.stateMachine.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['batch:TerminateJob'],
        resources: [
          Stack.of(this).formatArn({ service: 'batch', resource: 'job', resourceName: '*' }),
        ],
      }),
    );
    const sm = this.stateMachine;
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /^Resource::\*$/,
      'X-Ray tracing, CloudWatch Logs log delivery (execution logging) and batch:DescribeJobs (polled by submitJob.sync) have no resource-level permissions: they need "*".',
    );
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /:batch:<AWS::Region>:<AWS::AccountId>:job\/\*$/,
      'batch:TerminateJob cancels the Batch job an execution started when it stops; job ids are generated, so the grant is every job of this account and region.',
    );
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /\/jobs\/\*\/blend-results\/\*$/,
      "The blend Map's ResultWriter writes its children's results under jobs/<jobId>/blend-results/ in the stack bucket (one prefix per job).",
    );
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /^Resource::<Functions[A-Za-z0-9]+\.Arn>:\*$/,
      'LambdaInvoke grants the pipeline functions and their versions/aliases (function ARN + ":*"); nothing else.',
    );
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /:job-definition\/\*$/,
      'batch:SubmitJob is authorized against the revisioned job definition ARN; the queue resource in the same statement is exact.',
    );
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /\/jobs\/\*\/blend-items\.json$/,
      "The blend Map's ItemReader reads one file per job: jobs/<jobId>/blend-items.json in the stack bucket.",
    );
    acknowledgeFindings(
      sm,
      'AwsSolutions-IAM5',
      /:execution:.*\*$/,
      "The Distributed Map starts child executions of this state machine with generated names; the grant is this state machine's executions only.",
    );
  }
}

/**
 * A plan too large for the Plan task alone (core/cloud/plan-ranges.ts): the Plan task
 * wrote no row and says how many rows a range holds ($.plan.rangeRows, PLAN_RANGE_ROWS as
 * deployed; 0: it wrote them all). The rows are written by PlanRange tasks over
 * chunk-index ranges, the range starts made here (States.ArrayRange over $.plan.chunks
 * in steps of $.plan.rangeRows: at most 1,000 items, 2.5·10^8 chunks), then
 * CompletePlan makes them claimable. An inline Map: ≤ 1,000 small items, results
 * discarded, so neither the state nor the history comes near its limit.
 */
function planInRanges(
  scope: Construct,
  fn: lambda.IFunction,
  next: sfn.IChainable,
  stepFailed: sfn.IChainable,
): sfn.Choice {
  const starts = new sfn.Pass(scope, STATES.rangeStarts, {
    parameters: {
      starts: sfn.JsonPath.arrayRange(
        0,
        Token.asNumber(sfn.JsonPath.mathAdd(sfn.JsonPath.numberAt('$.plan.chunks'), -1)),
        Token.asNumber(sfn.JsonPath.numberAt('$.plan.rangeRows')),
      ),
    },
    resultPath: '$.planRanges',
  });
  const ranges = new sfn.Map(scope, STATES.planRanges, {
    itemsPath: '$.planRanges.starts',
    itemSelector: {
      step: 'range',
      jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
      from: sfn.JsonPath.numberAt('$$.Map.Item.Value'),
      rows: sfn.JsonPath.numberAt('$.plan.rangeRows'),
    },
    maxConcurrency: PLAN_RANGES_IN_FLIGHT,
    resultPath: sfn.JsonPath.DISCARD,
  });
  const range = lambdaTask(scope, STATES.planRange, fn, { resultPath: sfn.JsonPath.DISCARD });
  // Throughput refusals outlasting the adapter's own backoff, and a call cut off by the
  // Lambda timeout: the range is idempotent, so it is simply run again.
  range.addRetry({
    errors: ['BatchWriteIncompleteError', 'LedgerThrottledError', 'Sandbox.Timedout'],
    interval: Duration.seconds(10),
    maxAttempts: 3,
    backoffRate: 2,
  });
  ranges.itemProcessor(range);
  ranges.addCatch(stepFailed, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
  const complete = lambdaTask(scope, STATES.completePlan, fn, {
    payload: sfn.TaskInput.fromObject({
      step: 'complete',
      jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
    }),
    resultPath: sfn.JsonPath.DISCARD,
  });
  complete.addCatch(stepFailed, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
  return new sfn.Choice(scope, STATES.planInRanges)
    .when(
      sfn.Condition.numberGreaterThan('$.plan.rangeRows', 0),
      starts.next(ranges).next(complete).next(next),
    )
    .otherwise(next);
}

/**
 * The output pyramid, one level at a time (core/cloud/pyramid-step.ts): PyramidLevel
 * creates level $.pyramidNext.level and returns its range tasks' first blocks (≤ 500,
 * computed from the output's block grid), PyramidTasks runs them (an inline Map: small
 * items, results discarded), NextPyramidLevel counts up; PyramidLevel answers done past
 * the last level (at once for a job without a pyramid). Level l reads only level l-1,
 * which the Map before it finished.
 */
function pyramidStates(
  scope: Construct,
  fn: lambda.IFunction,
  next: sfn.IChainable,
  stepFailed: sfn.IChainable,
): sfn.IChainable {
  const start = new sfn.Pass(scope, STATES.startPyramid, {
    parameters: { level: 1 },
    resultPath: '$.pyramidNext',
  });
  const level = lambdaTask(scope, STATES.pyramidLevel, fn, {
    payload: sfn.TaskInput.fromObject({
      step: 'level',
      jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
      level: sfn.JsonPath.numberAt('$.pyramidNext.level'),
    }),
    resultPath: '$.pyramid',
  });
  level.addCatch(stepFailed, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
  const tasks = new sfn.Map(scope, STATES.pyramidTasks, {
    itemsPath: '$.pyramid.starts',
    itemSelector: {
      step: 'range',
      jobId: sfn.JsonPath.stringAt('$.plan.jobId'),
      level: sfn.JsonPath.numberAt('$.pyramid.level'),
      from: sfn.JsonPath.numberAt('$$.Map.Item.Value'),
      blocks: sfn.JsonPath.numberAt('$.pyramid.blocksPerTask'),
    },
    maxConcurrency: PYRAMID_CONCURRENCY,
    resultPath: sfn.JsonPath.DISCARD,
  });
  const range = lambdaTask(scope, STATES.pyramidRange, fn, { resultPath: sfn.JsonPath.DISCARD });
  // A range rewrites the same bytes: one cut off by the Lambda timeout is run again.
  range.addRetry({
    errors: ['Sandbox.Timedout'],
    interval: Duration.seconds(10),
    maxAttempts: 2,
    backoffRate: 2,
  });
  tasks.itemProcessor(range);
  tasks.addCatch(stepFailed, { errors: [sfn.Errors.ALL], resultPath: '$.error' });
  const nextLevel = new sfn.Pass(scope, STATES.nextPyramidLevel, {
    parameters: { level: sfn.JsonPath.mathAdd(sfn.JsonPath.numberAt('$.pyramid.level'), 1) },
    resultPath: '$.pyramidNext',
  });
  tasks.next(nextLevel);
  nextLevel.next(level);
  start.next(level);
  level.next(
    new sfn.Choice(scope, STATES.pyramidDone)
      .when(sfn.Condition.booleanEquals('$.pyramid.done', true), next)
      .otherwise(tasks),
  );
  return start;
}

interface LambdaTaskOptions {
  /** The event; without it the (InputPath-selected) state input is the event. */
  payload?: sfn.TaskInput;
  inputPath?: string;
  resultSelector?: Record<string, unknown>;
  resultPath?: string;
}

function lambdaTask(
  scope: Construct,
  name: string,
  fn: lambda.IFunction,
  o: LambdaTaskOptions,
): tasks.LambdaInvoke {
  const task = new tasks.LambdaInvoke(scope, name, {
    lambdaFunction: fn,
    ...(o.payload ? { payload: o.payload } : {}),
    ...(o.inputPath ? { inputPath: o.inputPath } : {}),
    // The handler's return value is the task result (no {Payload, StatusCode} envelope):
    // state paths read $.verify.status, and an optional field may simply be absent.
    payloadResponseOnly: true,
    // Retries Lambda.ServiceException, AWSLambdaException, SdkClientException, timeouts.
    retryOnServiceExceptions: true,
    ...(o.resultSelector ? { resultSelector: o.resultSelector } : {}),
    ...(o.resultPath ? { resultPath: o.resultPath } : {}),
  });
  task.addRetry(THROTTLED);
  return task;
}

interface PrefixResultWriterProps extends sfn.ResultWriterV2Props {
  readonly bucket: s3.IBucket;
  /** Object keys the writer may create, as an IAM pattern (the prefix is a path). */
  readonly grantPattern: string;
}

/**
 * A ResultWriter granted only its prefix. CDK's own grants the state machine the whole
 * bucket (s3:PutObject on <bucket>/*), which would let a Map overwrite manifests, inputs
 * and models; these are the actions AWS documents for ResultWriter, under the prefix.
 */
class PrefixResultWriter extends sfn.ResultWriterV2 {
  private readonly grantPattern: string;
  private readonly target: s3.IBucket;

  constructor(props: PrefixResultWriterProps) {
    super(props);
    this.target = props.bucket;
    this.grantPattern = props.grantPattern;
  }

  override providePolicyStatements(): iam.PolicyStatement[] {
    return [
      new iam.PolicyStatement({
        actions: [...RESULT_WRITER_ACTIONS],
        resources: [this.target.arnForObjects(this.grantPattern)],
      }),
    ];
  }
}

/** What Step Functions calls to write a Map Run's results (developer guide, IAM policies). */
export const RESULT_WRITER_ACTIONS = [
  's3:PutObject',
  's3:GetObject',
  's3:ListMultipartUploadParts',
  's3:AbortMultipartUpload',
] as const;
