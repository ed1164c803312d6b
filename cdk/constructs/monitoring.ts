// What tells the operator that something needs a look: failed pipeline runs, a planner
// that throws on the S3 trigger path (no execution exists to fail then), and Batch
// queues blocked by a job that cannot be placed. One SNS topic, one dashboard.
//
// Batch publishes no queue-depth metric; "stuck" is what Batch itself detects and
// reports as a "Batch Job Queue Blocked" event (a RUNNABLE job at the head of a queue it
// cannot place: capacity or misconfiguration), forwarded here to the topic.

import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as cwActions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subs from 'aws-cdk-lib/aws-sns-subscriptions';
import type * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { acknowledge } from '../nag.ts';
import type { FunctionName } from './functions.ts';

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
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id);
    this.topic = new sns.Topic(this, 'Alarms', { displayName: 'Tessera alarms', enforceSSL: true });
    acknowledge(
      this.topic,
      'AwsSolutions-SNS2',
      'Alarm notifications carry no job data; CloudWatch alarms and EventBridge cannot publish to a topic under the AWS-managed SNS key, and a customer key would cost more than the topic.',
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
