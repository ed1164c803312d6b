// What tells the operator that something needs a look: failed or timed-out pipeline
// runs, a planner that throws on the S3 trigger path (no execution exists to fail then),
// Batch queues blocked by a job that cannot be placed, and jobs that make no progress.
// One SNS topic, one dashboard.
//
// Batch publishes no queue-depth metric. "Stuck" comes two ways: Batch itself reports a
// "Batch Job Queue Blocked" event (a RUNNABLE job at the head of a queue it cannot
// place), forwarded here to the topic; but that needs every compute environment to
// report insufficient capacity and does not cover quota. So a watchdog Lambda runs
// every 5 minutes and publishes STALL_METRIC: the jobs with chunks unfinished and none
// finished for `stallMinutes` (counted from the execution's start before the first),
// which also catches workers stuck RUNNABLE for lack of Spot capacity or quota. Its
// alarm, and a watchdog that throws, reach the topic.
//
// The topic's policy (CDK writes one for the EventBridge target and TLS) replaces SNS's
// default policy, so CloudWatch alarms are allowed to publish explicitly.

import { ArnFormat, Duration, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { STALL_METRIC } from '../../contracts/cloud.ts';
import { acknowledge } from '../nag.ts';
import type { FunctionName } from './functions.ts';

/** How often the stall watchdog looks (and the stall alarm's period). */
export const WATCHDOG_PERIOD = Duration.minutes(5);

export interface MonitoringProps {
  readonly stateMachine: sfn.StateMachine;
  readonly fns: Record<FunctionName, lambda.IFunction>;
  readonly queueArns: readonly string[];
  readonly alarmEmail?: string;
  readonly dashboardName?: string;
}

export class Monitoring extends Construct {
  readonly topic: sns.Topic;
  readonly queueBlockedRule: events.Rule;
  /** Runs the stall watchdog every WATCHDOG_PERIOD. */
  readonly watchdogSchedule: events.Rule;
  readonly stalledAlarm: cloudwatch.Alarm;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Alarms', { displayName: 'Tessera alarms', enforceSSL: true });
    acknowledge(
      this.topic,
      'AwsSolutions-SNS2',
      'Alarm notifications carry no job data; CloudWatch alarms and EventBridge cannot publish to a topic under the AWS-managed SNS key, and a customer key would cost more than the topic.',
    );
    const stack = Stack.of(this);
    this.topic.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.topic.topicArn],
        // Only this account's alarms (confused-deputy guard).
        conditions: {
          StringEquals: { 'aws:SourceAccount': stack.account },
          ArnLike: {
            'aws:SourceArn': stack.formatArn({
              service: 'cloudwatch',
              resource: 'alarm',
              resourceName: '*',
              arnFormat: ArnFormat.COLON_RESOURCE_NAME,
            }),
          },
        },
      }),
    );
    if (props.alarmEmail !== undefined) {
      this.topic.addSubscription(new subs.EmailSubscription(props.alarmEmail));
    }
    const notify = new cwActions.SnsAction(this.topic);
    const alarm = (name: string, metric: cloudwatch.IMetric, description: string) => {
      const a = new cloudwatch.Alarm(this, name, {
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescription: description,
      });
      a.addAlarmAction(notify);
      return a;
    };

    const sm = props.stateMachine;
    const period = Duration.minutes(5);
    const failed = sm.metricFailed({ period, statistic: 'Sum' });
    const timedOut = sm.metricTimedOut({ period, statistic: 'Sum' });
    alarm(
      'ExecutionsFailed',
      failed,
      'A Tessera job failed: jobs/<jobId>/status.json in the bucket holds the reason (jobs/<name>/status.json for a manifest that never became a job).',
    );
    alarm('ExecutionsTimedOut', timedOut, 'A Tessera pipeline execution timed out.');
    alarm(
      'PlannerErrors',
      props.fns.planner.metricErrors({ period, statistic: 'Sum' }),
      'The planner threw on a manifest upload: no pipeline was started for it. See its logs.',
    );

    this.queueBlockedRule = new events.Rule(this, 'QueueBlocked', {
      description: 'A Tessera Batch queue is blocked by a job it cannot place',
      eventPattern: {
        source: ['aws.batch'],
        detailType: ['Batch Job Queue Blocked'],
        detail: { jobQueue: [...props.queueArns] },
      },
    });
    this.queueBlockedRule.addTarget(
      new targets.SnsTopic(this.topic, {
        message: events.RuleTargetInput.fromText(
          `Tessera: Batch queue ${events.EventField.fromPath('$.detail.jobQueue')} is blocked by job ` +
            `${events.EventField.fromPath('$.detail.jobName')}: ${events.EventField.fromPath('$.detail.statusReason')}`,
        ),
      }),
    );

    // --- no progress ---------------------------------------------------------------
    this.watchdogSchedule = new events.Rule(this, 'WatchdogSchedule', {
      description: 'Runs the Tessera stall watchdog (jobs with no chunk finished for a while)',
      schedule: events.Schedule.rate(WATCHDOG_PERIOD),
    });
    this.watchdogSchedule.addTarget(
      new targets.LambdaFunction(props.fns.watchdog, {
        // A missed run is made up by the next one in 5 minutes.
        retryAttempts: 0,
      }),
    );
    const stalled = new cloudwatch.Metric({
      namespace: STALL_METRIC.namespace,
      metricName: STALL_METRIC.name,
      dimensionsMap: { ...STALL_METRIC.dimensions },
      statistic: 'Maximum',
      // One watchdog run per period: Maximum is that run's count.
      period: WATCHDOG_PERIOD,
    });
    this.stalledAlarm = alarm(
      'JobsStalled',
      stalled,
      'A Tessera job made no progress: chunks are unfinished and none finished for the configured time (workers failing, hung, or never placed for lack of Spot capacity or quota). jobs/<jobId>/status.json says which job; the Batch console shows its workers.',
    );
    alarm(
      'WatchdogErrors',
      props.fns.watchdog.metricErrors({ period, statistic: 'Sum' }),
      'The stall watchdog threw: stalled jobs go unreported until it runs again. See its logs.',
    );

    const fnMetric = (name: FunctionName, m: 'Errors' | 'Duration' | 'Throttles') =>
      props.fns[name].metric(m, {
        period,
        statistic: m === 'Duration' ? 'p90' : 'Sum',
        label: `${name} ${m.toLowerCase()}`,
      });
    const names = Object.keys(props.fns) as FunctionName[];
    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      ...(props.dashboardName !== undefined ? { dashboardName: props.dashboardName } : {}),
      widgets: [
        [
          new cloudwatch.GraphWidget({
            title: 'Pipeline executions',
            left: [
              sm.metricStarted({ period, statistic: 'Sum' }),
              sm.metricSucceeded({ period, statistic: 'Sum' }),
              failed,
              timedOut,
            ],
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Blocked Batch queues (events)',
            left: [
              new cloudwatch.Metric({
                namespace: 'AWS/Events',
                metricName: 'TriggeredRules',
                dimensionsMap: { RuleName: this.queueBlockedRule.ruleName },
                period,
                statistic: 'Sum',
              }),
            ],
            width: 12,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Stalled jobs (watchdog)',
            left: [stalled.with({ label: 'stalled jobs' })],
            leftAnnotations: [{ value: 1, label: 'alarm' }],
            width: 24,
          }),
        ],
        [
          new cloudwatch.GraphWidget({
            title: 'Lambda errors and throttles',
            left: names.flatMap((n) => [fnMetric(n, 'Errors'), fnMetric(n, 'Throttles')]),
            width: 12,
          }),
          new cloudwatch.GraphWidget({
            title: 'Lambda duration (p90)',
            left: names.map((n) => fnMetric(n, 'Duration')),
            width: 12,
          }),
        ],
      ],
    });
  }
}
