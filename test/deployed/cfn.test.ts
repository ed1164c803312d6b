// biome-ignore-all lint/suspicious/noTemplateCurlyInString: Fn::Sub's own ${...} syntax, in plain strings
// The twin's CloudFormation resolver: each intrinsic the synthesized template uses, the
// names and ARNs a deployment gives each resource type, and failures that name the spot.

import { describe, expect, it } from 'vitest';
import { type CfnContext, CfnResolveError, physicalNames, resolveCfn } from './cfn.ts';

const template = {
  Resources: {
    Bucket1: { Type: 'AWS::S3::Bucket' },
    Logs2: { Type: 'AWS::S3::Bucket' },
    Ledger3: { Type: 'AWS::DynamoDB::GlobalTable', Properties: {} },
    FnPlanner4: { Type: 'AWS::Lambda::Function', Properties: {} },
    Named5: { Type: 'AWS::Lambda::Function', Properties: { FunctionName: 'given-name' } },
    Role6: { Type: 'AWS::IAM::Role', Properties: {} },
    Machine7: {
      Type: 'AWS::StepFunctions::StateMachine',
      Properties: { StateMachineName: 'Tessera-pipeline' },
    },
    Topic8: { Type: 'AWS::SNS::Topic', Properties: {} },
    Queue9: { Type: 'AWS::Batch::JobQueue', Properties: {} },
    JobDef10: { Type: 'AWS::Batch::JobDefinition', Properties: {} },
    Alarm11: { Type: 'AWS::CloudWatch::Alarm', Properties: {} },
    Group12: {
      Type: 'AWS::Logs::LogGroup',
      Properties: { LogGroupName: { 'Fn::Join': ['', ['/aws/', { Ref: 'FnPlanner4' }]] } },
    },
    Thing13: { Type: 'AWS::Pipes::Pipe', Properties: {} },
  },
  Outputs: { BucketName: { Value: { Ref: 'Bucket1' } }, TableName: { Value: { Ref: 'Ledger3' } } },
};

const options = {
  bucket: 'emulated-bucket',
  table: 'emulated-table',
  account: '123456789012',
  region: 'eu-west-1',
  stackName: 'Tessera',
};
const ctx: CfnContext = {
  account: options.account,
  region: options.region,
  partition: 'aws',
  physical: physicalNames(template, options),
};
const r = (v: unknown) => resolveCfn(v, ctx);

describe('physicalNames', () => {
  it('gives the stack bucket and the ledger table the emulators’ names, other buckets their own', () => {
    expect(r({ Ref: 'Bucket1' })).toBe('emulated-bucket');
    expect(r({ 'Fn::GetAtt': ['Bucket1', 'Arn'] })).toBe('arn:aws:s3:::emulated-bucket');
    expect(r({ Ref: 'Ledger3' })).toBe('emulated-table');
    expect(r({ 'Fn::GetAtt': ['Ledger3', 'Arn'] })).toBe(
      'arn:aws:dynamodb:eu-west-1:123456789012:table/emulated-table',
    );
    const logs = r({ Ref: 'Logs2' }) as string;
    expect(logs).not.toBe('emulated-bucket');
    expect(logs).toMatch(/^[a-z0-9.-]{3,63}$/);
  });

  it('names and ARNs by type, as Ref and GetAtt return them', () => {
    const planner = r({ Ref: 'FnPlanner4' }) as string;
    expect(planner).toMatch(/^Tessera-FnPlanner4-[A-Z0-9]+$/);
    expect(r({ 'Fn::GetAtt': ['FnPlanner4', 'Arn'] })).toBe(
      `arn:aws:lambda:eu-west-1:123456789012:function:${planner}`,
    );
    expect(r({ Ref: 'Named5' })).toBe('given-name');
    expect(r({ 'Fn::GetAtt': 'Role6.Arn' })).toMatch(
      /^arn:aws:iam::123456789012:role\/Tessera-Role6-/,
    );
    // Ref of a state machine, topic, job queue and job definition is its ARN.
    expect(r({ Ref: 'Machine7' })).toBe(
      'arn:aws:states:eu-west-1:123456789012:stateMachine:Tessera-pipeline',
    );
    expect(r({ Ref: 'Topic8' })).toMatch(/^arn:aws:sns:eu-west-1:123456789012:Tessera-Topic8-/);
    expect(r({ 'Fn::GetAtt': ['Queue9', 'JobQueueArn'] })).toBe(r({ Ref: 'Queue9' }));
    expect(r({ Ref: 'JobDef10' })).toMatch(
      /^arn:aws:batch:eu-west-1:123456789012:job-definition\/Tessera-JobDef10-[A-Z0-9]+:1$/,
    );
    expect(r({ 'Fn::GetAtt': ['Alarm11', 'Arn'] })).toMatch(
      /^arn:aws:cloudwatch:eu-west-1:123456789012:alarm:Tessera-Alarm11-/,
    );
    // An explicit name made of intrinsics resolves against the other resources.
    expect(r({ Ref: 'Group12' })).toBe(`/aws/${planner}`);
    expect(r({ 'Fn::GetAtt': ['Group12', 'Arn'] })).toBe(
      `arn:aws:logs:eu-west-1:123456789012:log-group:/aws/${planner}:*`,
    );
    expect(r({ 'Fn::GetAtt': ['Thing13', 'Arn'] })).toMatch(/^arn:aws:pipes:eu-west-1:/);
  });

  it('refuses to guess which bucket is the stack’s', () => {
    expect(() => physicalNames({ Resources: template.Resources }, options)).toThrow(
      /no BucketName output and 2 candidates \(Bucket1, Logs2\)/,
    );
  });
});

describe('resolveCfn', () => {
  it('pseudo parameters', () => {
    expect(
      r({
        'Fn::Join': [
          ':',
          [
            { Ref: 'AWS::Partition' },
            { Ref: 'AWS::Region' },
            { Ref: 'AWS::AccountId' },
            { Ref: 'AWS::URLSuffix' },
            { Ref: 'AWS::StackName' },
          ],
        ],
      }),
    ).toBe('aws:eu-west-1:123456789012:amazonaws.com:Tessera');
    expect(resolveCfn({ Ref: 'AWS::URLSuffix' }, { ...ctx, partition: 'aws-cn' })).toBe(
      'amazonaws.com.cn',
    );
  });

  it('Fn::Sub: pseudo parameters, resources, attributes, variables, escapes', () => {
    expect(r({ 'Fn::Sub': '${AWS::AccountId}.dkr.ecr.${AWS::Region}.${AWS::URLSuffix}/x' })).toBe(
      '123456789012.dkr.ecr.eu-west-1.amazonaws.com/x',
    );
    expect(r({ 'Fn::Sub': 'b=${Bucket1} a=${Bucket1.Arn} ${!Literal}' })).toBe(
      'b=emulated-bucket a=arn:aws:s3:::emulated-bucket ${Literal}',
    );
    expect(r({ 'Fn::Sub': ['${Name}/*', { Name: { 'Fn::GetAtt': ['Bucket1', 'Arn'] } }] })).toBe(
      'arn:aws:s3:::emulated-bucket/*',
    );
  });

  it('Fn::Select, Fn::Split, Fn::GetAZs, nested in objects and lists', () => {
    const arn = { 'Fn::GetAtt': ['FnPlanner4', 'Arn'] };
    expect(r({ 'Fn::Select': [6, { 'Fn::Split': [':', arn] }] })).toBe(r({ Ref: 'FnPlanner4' }));
    expect(r({ 'Fn::Select': [1, { 'Fn::GetAZs': '' }] })).toBe('eu-west-1b');
    expect(
      r({ Statement: [{ Resource: [arn, { 'Fn::Join': ['', [arn, ':*']] }], Effect: 'Allow' }] }),
    ).toEqual({
      Statement: [{ Resource: [r(arn), `${r(arn)}:*`], Effect: 'Allow' }],
    });
  });

  it('AWS::NoValue drops the property or list element', () => {
    expect(r({ A: 'x', B: { Ref: 'AWS::NoValue' }, C: ['y', { Ref: 'AWS::NoValue' }] })).toEqual({
      A: 'x',
      C: ['y'],
    });
  });

  it('fails naming the place: unknown resource, unknown attribute, unsupported function', () => {
    expect(() => r({ Env: { X: { Ref: 'Nope' } } })).toThrow(
      /Ref Nope at Env\.X: no such resource/,
    );
    expect(() => r({ 'Fn::GetAtt': ['Bucket1', 'WebsiteURL'] })).toThrow(
      /Bucket1\.WebsiteURL.*only Arn, DomainName, RegionalDomainName/,
    );
    expect(() => r({ P: { 'Fn::If': ['Cond', 'a', 'b'] } })).toThrow(CfnResolveError);
    expect(() => r({ P: { 'Fn::If': ['Cond', 'a', 'b'] } })).toThrow(
      /Fn::If at P is not supported/,
    );
    expect(() => r({ 'Fn::Select': [3, ['a']] })).toThrow(/index 3 outside a list of 1/);
  });
});
