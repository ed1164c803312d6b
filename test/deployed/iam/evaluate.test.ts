// The IAM evaluation the twin relies on, on hand-made policies: each rule shown both
// allowing and refusing, so that a check which always passes would fail here.

import { describe, expect, it } from 'vitest';
import type { CfnContext } from '../cfn.ts';
import type { RecordedCall } from './actions.ts';
import { authorize, type CfnTemplate, evaluateCalls, formatDenials } from './evaluate.ts';
import type { NamedPolicy, Statement } from './policies.ts';

const ACCOUNT = '111122223333';
const ROLE_ARN = `arn:aws:iam::${ACCOUNT}:role/planner-role`;

const allow = (
  Action: string | string[],
  Resource: string | string[],
  Condition?: Statement['Condition'],
): NamedPolicy => ({
  name: 'hand-made',
  policy: {
    Version: '2012-10-17',
    Statement: [
      { Effect: 'Allow' as const, Action, Resource, ...(Condition ? { Condition } : {}) },
    ],
  },
});

const ask = (
  action: string,
  resource: string,
  identity: NamedPolicy[],
  extra: Partial<Parameters<typeof authorize>[0]> = {},
) =>
  authorize({
    principal: ROLE_ARN,
    action,
    resource,
    identity,
    context: { 'aws:SecureTransport': 'true' },
    account: ACCOUNT,
    ...extra,
  });

describe('the evaluator', () => {
  const jobsRead = allow('s3:GetObject', 'arn:aws:s3:::b/jobs/*');

  it('a grant on jobs/* allows jobs/x and refuses outputs/x', async () => {
    expect(await ask('s3:GetObject', 'arn:aws:s3:::b/jobs/x', [jobsRead])).toBeUndefined();
    expect(await ask('s3:GetObject', 'arn:aws:s3:::b/outputs/x', [jobsRead])).toMatch(
      /^implicit deny: no identity policy of the role allows it/,
    );
  });

  it('a grant of one action does not grant another on the same object', async () => {
    expect(await ask('s3:PutObject', 'arn:aws:s3:::b/jobs/x', [jobsRead])).toMatch(
      /^implicit deny/,
    );
  });

  it('dynamodb:LeadingKeys: only the partition keys the condition names', async () => {
    const own = allow('dynamodb:GetItem', `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/ledger`, {
      'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['JOB#mine*'] },
    });
    const table = `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/ledger`;
    const leading = (keys: string[]) => ({
      context: { 'aws:SecureTransport': 'true', 'dynamodb:LeadingKeys': keys },
    });
    expect(await ask('dynamodb:GetItem', table, [own], leading(['JOB#mine-1']))).toBeUndefined();
    expect(await ask('dynamodb:GetItem', table, [own], leading(['JOB#theirs']))).toMatch(
      /^implicit deny/,
    );
    expect(
      await ask('dynamodb:GetItem', table, [own], leading(['JOB#mine-1', 'JOB#theirs'])),
    ).toMatch(/^implicit deny/);
  });

  it("the bucket policy's TLS-only Deny refuses plain http and lets https through", async () => {
    const tlsOnly: NamedPolicy = {
      name: 'AWS::S3::BucketPolicy P',
      policy: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'DenyInsecure',
            Effect: 'Deny',
            Principal: { AWS: '*' },
            Action: 's3:*',
            Resource: ['arn:aws:s3:::b', 'arn:aws:s3:::b/*'],
            Condition: { Bool: { 'aws:SecureTransport': 'false' } },
          },
        ],
      },
    };
    const both = { resourcePolicy: tlsOnly };
    expect(await ask('s3:GetObject', 'arn:aws:s3:::b/jobs/x', [jobsRead], both)).toBeUndefined();
    expect(
      await ask('s3:GetObject', 'arn:aws:s3:::b/jobs/x', [jobsRead], {
        ...both,
        context: { 'aws:SecureTransport': 'false' },
      }),
    ).toBe('explicit deny by AWS::S3::BucketPolicy P statement DenyInsecure');
  });

  it('an explicit Deny in an identity policy wins over an Allow', async () => {
    const deny: NamedPolicy = {
      name: 'no-manifests',
      policy: {
        Version: '2012-10-17',
        Statement: [
          {
            Sid: 'NoManifests',
            Effect: 'Deny',
            Action: 's3:PutObject',
            Resource: 'arn:aws:s3:::b/manifests/*',
          },
        ],
      },
    };
    const put = allow('s3:PutObject', 'arn:aws:s3:::b/*');
    expect(await ask('s3:PutObject', 'arn:aws:s3:::b/jobs/x', [put, deny])).toBeUndefined();
    expect(await ask('s3:PutObject', 'arn:aws:s3:::b/manifests/x', [put, deny])).toBe(
      'explicit deny by no-manifests statement NoManifests',
    );
  });

  it('a service principal needs the resource policy, with its source conditions', async () => {
    const topic = `arn:aws:sns:us-east-1:${ACCOUNT}:alarms`;
    const alarm = `arn:aws:cloudwatch:us-east-1:${ACCOUNT}:alarm:failed`;
    const topicPolicy: NamedPolicy = {
      name: 'topic policy',
      policy: {
        Version: '2012-10-17',
        Statement: [
          {
            Effect: 'Allow',
            Principal: { Service: 'cloudwatch.amazonaws.com' },
            Action: 'sns:Publish',
            Resource: topic,
            Condition: { ArnEquals: { 'aws:SourceArn': alarm } },
          },
        ],
      },
    };
    const publish = (principal: string, sourceArn: string) =>
      authorize({
        principal,
        action: 'sns:Publish',
        resource: topic,
        identity: [],
        resourcePolicy: topicPolicy,
        context: {
          'aws:SecureTransport': 'true',
          'aws:SourceArn': sourceArn,
          'aws:SourceAccount': ACCOUNT,
        },
        account: ACCOUNT,
      });
    expect(await publish('cloudwatch.amazonaws.com', alarm)).toBeUndefined();
    expect(await publish('cloudwatch.amazonaws.com', `${alarm}-other`)).toMatch(
      /^implicit deny: topic policy does not allow it/,
    );
    expect(await publish('events.amazonaws.com', alarm)).toMatch(/^implicit deny/);
  });

  it('a misspelt action is an error, not a silent deny', async () => {
    expect(await ask('s3:GetObjects', 'arn:aws:s3:::b/jobs/x', [jobsRead])).toMatch(
      /evaluator rejected.*invalid\.action/,
    );
  });
});

// A small stack: a role with an attached policy, an inline policy and a customer managed
// policy, a bucket policy with the TLS-only Deny, and what a deployment named them.
const TEMPLATE: CfnTemplate = {
  Resources: {
    Bucket: { Type: 'AWS::S3::Bucket' },
    BucketPolicy: {
      Type: 'AWS::S3::BucketPolicy',
      Properties: {
        Bucket: { Ref: 'Bucket' },
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Deny',
              Principal: { AWS: '*' },
              Action: 's3:*',
              Resource: [
                { 'Fn::GetAtt': ['Bucket', 'Arn'] },
                { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Bucket', 'Arn'] }, '/*']] },
              ],
              Condition: { Bool: { 'aws:SecureTransport': 'false' } },
            },
          ],
        },
      },
    },
    PlannerRole: {
      Type: 'AWS::IAM::Role',
      Properties: {
        Policies: [
          {
            PolicyName: 'list',
            PolicyDocument: {
              Version: '2012-10-17',
              Statement: [
                {
                  Effect: 'Allow',
                  Action: 's3:ListBucket',
                  Resource: { 'Fn::GetAtt': ['Bucket', 'Arn'] },
                  Condition: { StringLike: { 's3:prefix': 'jobs/*' } },
                },
              ],
            },
          },
        ],
        ManagedPolicyArns: [{ Ref: 'Ledger' }, 'arn:aws:iam::aws:policy/ReadOnlyAccess'],
      },
    },
    PlannerPolicy: {
      Type: 'AWS::IAM::Policy',
      Properties: {
        Roles: [{ Ref: 'PlannerRole' }],
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 's3:GetObject',
              Resource: { 'Fn::Join': ['', [{ 'Fn::GetAtt': ['Bucket', 'Arn'] }, '/jobs/*']] },
            },
          ],
        },
      },
    },
    Ledger: {
      Type: 'AWS::IAM::ManagedPolicy',
      Properties: {
        PolicyDocument: {
          Version: '2012-10-17',
          Statement: [
            {
              Effect: 'Allow',
              Action: 'dynamodb:UpdateItem',
              Resource: `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/ledger`,
              Condition: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['JOB#*'] } },
            },
          ],
        },
      },
    },
    OtherRole: { Type: 'AWS::IAM::Role' },
  },
};
const CTX: CfnContext = {
  account: ACCOUNT,
  region: 'us-east-1',
  partition: 'aws',
  physical: {
    Bucket: { ref: 'b', attrs: { Arn: 'arn:aws:s3:::b' } },
    BucketPolicy: { ref: 'BucketPolicy', attrs: {} },
    PlannerRole: { ref: 'planner-role', attrs: { Arn: ROLE_ARN } },
    PlannerPolicy: { ref: 'PlannerPolicy', attrs: {} },
    Ledger: { ref: `arn:aws:iam::${ACCOUNT}:policy/ledger`, attrs: {} },
    OtherRole: { ref: 'other-role', attrs: { Arn: `arn:aws:iam::${ACCOUNT}:role/other-role` } },
  },
};

const call = (
  c: Partial<RecordedCall> & Pick<RecordedCall, 'action' | 'resource'>,
): RecordedCall => ({
  component: 'planner',
  service: c.action.split(':')[0] === 'dynamodb' ? 'dynamodb' : 's3',
  conditions: {},
  operation: 'test',
  ...c,
});

describe('evaluateCalls on a template', () => {
  const principals = { planner: 'PlannerRole', other: 'OtherRole' };
  const run = (calls: RecordedCall[]) =>
    evaluateCalls({ template: TEMPLATE, ctx: CTX, calls, principals });

  it('allows what the attached, inline and customer managed policies grant', async () => {
    expect(
      await run([
        call({ action: 's3:GetObject', resource: 'arn:aws:s3:::b/jobs/j/plan.json' }),
        call({
          action: 's3:ListBucket',
          resource: 'arn:aws:s3:::b',
          conditions: { 's3:prefix': 'jobs/j/' },
        }),
        call({
          action: 'dynamodb:UpdateItem',
          resource: `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/ledger`,
          conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
        }),
      ]),
    ).toEqual([]);
  });

  it('names the role, the component, the action and the resource of each refusal', async () => {
    const denials = await run([
      call({ action: 's3:PutObject', resource: 'arn:aws:s3:::b/jobs/j/status.json' }),
      call({
        action: 's3:ListBucket',
        resource: 'arn:aws:s3:::b',
        conditions: { 's3:prefix': 'outputs/' },
      }),
      call({
        action: 'dynamodb:UpdateItem',
        resource: `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/ledger`,
        conditions: { 'dynamodb:LeadingKeys': ['OUT#x'] },
      }),
      call({
        component: 'other',
        action: 's3:GetObject',
        resource: 'arn:aws:s3:::b/jobs/j/plan.json',
      }),
    ]);
    expect(denials.map((d) => [d.component, d.role, d.action, d.resource])).toEqual([
      ['planner', 'PlannerRole', 's3:PutObject', 'arn:aws:s3:::b/jobs/j/status.json'],
      ['planner', 'PlannerRole', 's3:ListBucket', 'arn:aws:s3:::b'],
      [
        'planner',
        'PlannerRole',
        'dynamodb:UpdateItem',
        `arn:aws:dynamodb:us-east-1:${ACCOUNT}:table/ledger`,
      ],
      ['other', 'OtherRole', 's3:GetObject', 'arn:aws:s3:::b/jobs/j/plan.json'],
    ]);
    expect(formatDenials(denials).split('\n')[0]).toMatch(
      /^role PlannerRole \(planner\) may not s3:PutObject on arn:aws:s3:::b\/jobs\/j\/status\.json: implicit deny: no identity policy of the role allows it \(3 policies evaluated: AWS::IAM::Policy PlannerPolicy, PlannerRole inline policy list, AWS::IAM::ManagedPolicy Ledger\)/,
    );
  });

  it('a component without a role, or a request the recorder could not map, is a refusal too', async () => {
    const denials = await run([
      call({ component: 'stranger', action: 's3:GetObject', resource: 'arn:aws:s3:::b/jobs/x' }),
      call({ action: '?', resource: 'arn:aws:s3:::b', operation: 'GET /b?inventory' }),
    ]);
    expect(denials.map((d) => d.reason)).toEqual([
      expect.stringMatching(/no role is known for component "stranger"/),
      expect.stringMatching(/cannot tell which IAM action GET \/b\?inventory needs/),
    ]);
  });
});
