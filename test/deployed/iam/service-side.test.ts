// The calls AWS services make for the stack, checked against templates: small hand-made
// ones that show each check allowing and refusing, then the real stack, synthesized in
// process (bundling off: IAM does not depend on the bundles).

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_KNOBS } from '../../../cdk/knobs.ts';
import { REPO_ROOT } from '../../../cdk/paths.ts';
import { TesseraStack } from '../../../cdk/stack.ts';
import { type CfnContext, physicalNames } from '../cfn.ts';
import {
  type CfnTemplate,
  formatDenials,
  serviceSideCalls,
  serviceSideChecks,
} from './evaluate.ts';

const ACCOUNT = '111122223333';
const REGION = 'eu-west-1';
const arn = (service: string, resource: string) =>
  `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;
const SM_ARN = arn('states', 'stateMachine:pipe');
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/sm-role`;
const QUEUE = arn('batch', 'job-queue/gpu');
const JOBDEF = arn('batch', 'job-definition/worker:1');
const FN = arn('lambda', 'function:verify');
const TOPIC = arn('sns', 'alarms');

/** A state machine with a Lambda task, a submitJob.sync task and a Distributed Map. */
function smTemplate(
  statements: unknown[],
  extra: Record<string, CfnTemplate['Resources'][string]> = {},
): CfnTemplate {
  const definition = {
    StartAt: 'Verify',
    States: {
      Verify: { Type: 'Task', Resource: FN, Next: 'Work' },
      Work: {
        Type: 'Task',
        Resource: 'arn:aws:states:::batch:submitJob.sync',
        Parameters: { JobQueue: QUEUE, JobDefinition: JOBDEF, 'JobName.$': '$.plan.jobId' },
        Next: 'Blend',
      },
      Blend: {
        Type: 'Map',
        ItemReader: {
          Resource: 'arn:aws:states:::s3:getObject',
          ReaderConfig: { InputType: 'JSON' },
          Parameters: { 'Bucket.$': '$.plan.bucket', 'Key.$': '$.plan.blendItemsKey' },
        },
        ResultWriter: {
          Resource: 'arn:aws:states:::s3:putObject',
          Parameters: {
            Bucket: 'b',
            'Prefix.$': "States.Format('jobs/{}/blend-results/', $.plan.jobId)",
          },
        },
        ItemProcessor: {
          ProcessorConfig: { Mode: 'DISTRIBUTED', ExecutionType: 'STANDARD' },
          StartAt: 'One',
          States: { One: { Type: 'Task', Resource: arn('lambda', 'function:blend'), End: true } },
        },
        End: true,
      },
    },
  };
  return {
    Resources: {
      Role: {
        Type: 'AWS::IAM::Role',
        Properties: {
          AssumeRolePolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Effect: 'Allow',
                Principal: { Service: 'states.amazonaws.com' },
                Action: 'sts:AssumeRole',
              },
            ],
          },
        },
      },
      RolePolicy: {
        Type: 'AWS::IAM::Policy',
        Properties: {
          Roles: [{ Ref: 'Role' }],
          PolicyDocument: { Version: '2012-10-17', Statement: statements },
        },
      },
      Machine: {
        Type: 'AWS::StepFunctions::StateMachine',
        Properties: {
          RoleArn: { 'Fn::GetAtt': ['Role', 'Arn'] },
          DefinitionString: JSON.stringify(definition),
        },
      },
      ...extra,
    },
  };
}

const CTX: CfnContext = {
  account: ACCOUNT,
  region: REGION,
  partition: 'aws',
  physical: {
    Role: { ref: 'sm-role', attrs: { Arn: ROLE_ARN } },
    RolePolicy: { ref: 'RolePolicy', attrs: {} },
    Machine: { ref: SM_ARN, attrs: { Arn: SM_ARN, Name: 'pipe' } },
    Topic: { ref: TOPIC, attrs: { TopicArn: TOPIC, TopicName: 'alarms' } },
    TopicPolicy: { ref: 'TopicPolicy', attrs: {} },
    Alarm: { ref: 'failed', attrs: { Arn: arn('cloudwatch', 'alarm:failed') } },
    Bucket: { ref: 'b', attrs: { Arn: 'arn:aws:s3:::b' } },
    Notifications: { ref: 'Notifications', attrs: {} },
    Fn: { ref: 'planner', attrs: { Arn: arn('lambda', 'function:planner') } },
    Permission: { ref: 'Permission', attrs: {} },
  },
};
const SAMPLE = { plan: { jobId: 'j1', bucket: 'b', blendItemsKey: 'jobs/j1/blend-items.json' } };

/** Step Functions' documented policies for the definition above (batch-iam, dist-map, lambda). */
const DOCUMENTED = [
  {
    Effect: 'Allow',
    Action: 'lambda:InvokeFunction',
    Resource: [FN, arn('lambda', 'function:blend')],
  },
  {
    Effect: 'Allow',
    Action: ['batch:SubmitJob', 'batch:DescribeJobs', 'batch:TerminateJob'],
    Resource: '*',
  },
  {
    Effect: 'Allow',
    Action: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
    Resource: arn('events', 'rule/StepFunctionsGetEventsForBatchJobsRule'),
  },
  { Effect: 'Allow', Action: 'states:StartExecution', Resource: SM_ARN },
  {
    Effect: 'Allow',
    Action: ['states:DescribeExecution', 'states:StopExecution'],
    Resource: arn('states', 'execution:pipe:*'),
  },
  { Effect: 'Allow', Action: 's3:GetObject', Resource: 'arn:aws:s3:::b/jobs/*/blend-items.json' },
  {
    Effect: 'Allow',
    Action: [
      's3:PutObject',
      's3:GetObject',
      's3:ListMultipartUploadParts',
      's3:AbortMultipartUpload',
    ],
    Resource: 'arn:aws:s3:::b/jobs/*/blend-results/*',
  },
];

const check = (template: CfnTemplate) =>
  serviceSideChecks({ template, ctx: CTX, sampleInput: SAMPLE });
const refused = async (template: CfnTemplate) =>
  (await check(template)).map((d) => `${d.action} ${d.resource}`);

describe('the state machine role', () => {
  it("allows a definition's documented service calls, evaluated for a sample job", async () => {
    const calls = serviceSideCalls({
      template: smTemplate(DOCUMENTED),
      ctx: CTX,
      sampleInput: SAMPLE,
    });
    expect(calls.map((c) => `${c.action} ${c.resource}`)).toEqual(
      expect.arrayContaining([
        `batch:SubmitJob ${QUEUE}`,
        `batch:SubmitJob ${JOBDEF}`,
        'batch:DescribeJobs *',
        `s3:GetObject arn:aws:s3:::b/jobs/j1/blend-items.json`,
        `s3:PutObject arn:aws:s3:::b/jobs/j1/blend-results/00000000-0000-4000-8000-000000000001/SUCCEEDED_0.json`,
        `lambda:InvokeFunction ${arn('lambda', 'function:blend')}`,
      ]),
    );
    expect(formatDenials(await check(smTemplate(DOCUMENTED)))).toBe('no denials');
  });

  it('SubmitJob alone is not enough for submitJob.sync', async () => {
    const onlySubmit = DOCUMENTED.map((s, i) =>
      i === 1 ? { ...s, Action: 'batch:SubmitJob' } : s,
    );
    expect(await refused(smTemplate(onlySubmit))).toEqual([
      'batch:DescribeJobs *',
      `batch:TerminateJob ${arn('batch', 'job/00000000-0000-4000-8000-000000000001')}`,
    ]);
  });

  it('a Distributed Map without the ResultWriter grant cannot write its results', async () => {
    const denials = await refused(smTemplate(DOCUMENTED.slice(0, -1)));
    expect(denials).toHaveLength(4);
    expect(denials.every((d) => d.includes('arn:aws:s3:::b/jobs/j1/blend-results/'))).toBe(true);
  });

  it('the bucket policy applies to the ItemReader too', async () => {
    const denyReads = {
      BucketPolicy: {
        Type: 'AWS::S3::BucketPolicy',
        Properties: {
          Bucket: 'b',
          PolicyDocument: {
            Version: '2012-10-17',
            Statement: [
              {
                Sid: 'NoItems',
                Effect: 'Deny',
                Principal: '*',
                Action: 's3:GetObject',
                Resource: 'arn:aws:s3:::b/jobs/*/blend-items.json',
              },
            ],
          },
        },
      },
    };
    const denials = await check(smTemplate(DOCUMENTED, denyReads));
    expect(denials.map((d) => [d.action, d.resource])).toEqual([
      ['s3:GetObject', 'arn:aws:s3:::b/jobs/j1/blend-items.json'],
    ]);
    expect(denials[0]?.reason).toMatch(
      /explicit deny by AWS::S3::BucketPolicy BucketPolicy statement NoItems/,
    );
  });
});

describe('alarms, topics and notifications', () => {
  const topic = { Type: 'AWS::SNS::Topic', Properties: {} };
  const alarm = {
    Type: 'AWS::CloudWatch::Alarm',
    Properties: { AlarmActions: [{ Ref: 'Topic' }] },
  };
  const topicPolicy = (principal: string) => ({
    Type: 'AWS::SNS::TopicPolicy',
    Properties: {
      Topics: [{ Ref: 'Topic' }],
      PolicyDocument: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: principal },
            Action: 'sns:Publish',
            Resource: { Ref: 'Topic' },
          },
        ],
      },
    },
  });
  const alarmsOnly = (resources: CfnTemplate['Resources']) => ({ Resources: resources });

  it('without a topic policy, the default policy lets the account’s alarms publish', async () => {
    expect(await refused(alarmsOnly({ Topic: topic, Alarm: alarm }))).toEqual([]);
  });

  it('a topic policy replaces the default: one for EventBridge only shuts CloudWatch out', async () => {
    expect(
      await refused(
        alarmsOnly({
          Topic: topic,
          Alarm: alarm,
          TopicPolicy: topicPolicy('events.amazonaws.com'),
        }),
      ),
    ).toEqual([`sns:Publish ${TOPIC}`]);
    expect(
      await refused(
        alarmsOnly({
          Topic: topic,
          Alarm: alarm,
          TopicPolicy: topicPolicy('cloudwatch.amazonaws.com'),
        }),
      ),
    ).toEqual([]);
  });

  it('S3 may invoke the planner only with a Lambda permission for that bucket', async () => {
    const resources = (sourceArn: string): CfnTemplate['Resources'] => ({
      Bucket: { Type: 'AWS::S3::Bucket' },
      Fn: { Type: 'AWS::Lambda::Function', Properties: {} },
      Notifications: {
        Type: 'Custom::S3BucketNotifications',
        Properties: {
          BucketName: { Ref: 'Bucket' },
          NotificationConfiguration: {
            LambdaFunctionConfigurations: [
              {
                Events: ['s3:ObjectCreated:*'],
                LambdaFunctionArn: { 'Fn::GetAtt': ['Fn', 'Arn'] },
              },
            ],
          },
        },
      },
      Permission: {
        Type: 'AWS::Lambda::Permission',
        Properties: {
          Action: 'lambda:InvokeFunction',
          FunctionName: { 'Fn::GetAtt': ['Fn', 'Arn'] },
          Principal: 's3.amazonaws.com',
          SourceAccount: ACCOUNT,
          SourceArn: sourceArn,
        },
      },
    });
    expect(await refused({ Resources: resources('arn:aws:s3:::b') })).toEqual([]);
    expect(await refused({ Resources: resources('arn:aws:s3:::another-bucket') })).toEqual([
      `lambda:InvokeFunction ${arn('lambda', 'function:planner')}`,
    ]);
  });
});

describe('the synthesized stack', () => {
  let template: CfnTemplate;
  let ctx: CfnContext;

  beforeAll(() => {
    const context = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context as Record<
      string,
      unknown
    >;
    const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
    const stack = new TesseraStack(app, 'Tessera', {
      knobs: { ...DEFAULT_KNOBS, alarmEmail: 'ops@example.org', allowedBuckets: ['lab-raw-data'] },
    });
    template = Template.fromStack(stack).toJSON() as CfnTemplate;
    const names = {
      account: ACCOUNT,
      region: REGION,
      stackName: 'Tessera',
      bucket: 'tessera-twin',
      table: 'tessera-ledger',
    };
    ctx = {
      account: ACCOUNT,
      region: REGION,
      partition: 'aws',
      physical: physicalNames(template, names),
    };
  }, 120_000);

  it('lists the integrations it checks (so an empty list cannot pass)', () => {
    const calls = serviceSideCalls({ template, ctx }).map(
      (c) => `${c.component.split(' ')[0]} ${c.action}`,
    );
    for (const expected of [
      'Step batch:SubmitJob',
      'Step batch:DescribeJobs',
      'Step batch:TerminateJob',
      'Step events:PutRule',
      'Step lambda:InvokeFunction',
      'Step states:StartExecution',
      'Step s3:GetObject',
      'CloudWatch sns:Publish',
      'S3 lambda:InvokeFunction',
    ])
      expect(calls).toContain(expected);
  });

  it('every service-side call AWS documents for its integrations is allowed', async () => {
    const denials = await serviceSideChecks({ template, ctx });
    expect(formatDenials(denials)).toBe('no denials');
  }, 60_000);
});
