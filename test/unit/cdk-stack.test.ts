// The deployable stack, checked on the synthesized template: what a lab trusts with a
// month of GPU spend (spot settings, retries, IAM scope, trigger, state machine wiring),
// cdk-nag with zero unacknowledged findings, and the worker images' build inputs.
//
// One full synth serves these tests; Lambda bundling is skipped there
// (aws:cdk:bundling-stacks = []). The bundles themselves are built and loaded on Node 22
// in cdk-bundles.test.ts.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { App, type CfnElement, Duration, IgnoreStrategy, Stack, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { StateMachine } from 'aws-local-stepfunctions';
import { beforeAll, describe, expect, it } from 'vitest';
import { tableDefinition } from '../../adapters/aws/dynamo-ledger.ts';
import { BATCH_READ_ACTIONS } from '../../cdk/constructs/functions.ts';
import { WATCHDOG_PERIOD } from '../../cdk/constructs/monitoring.ts';
import { Network } from '../../cdk/constructs/network.ts';
import { PIPELINE_ERROR, STATES } from '../../cdk/constructs/pipeline.ts';
import { Storage } from '../../cdk/constructs/storage.ts';
import {
  RETRY_ON_EXIT_CODES,
  RETRY_ON_HOST_LOSS,
  WORKER_ATTEMPTS,
  WORKER_COMMAND,
  WORKER_DOCKERFILES,
  Workers,
} from '../../cdk/constructs/workers.ts';
import {
  checkKnobs,
  DEFAULT_KNOBS,
  JOB_TIMEOUT_MARGIN_HOURS,
  jobTimeoutHours,
  KnobError,
  type Knobs,
  knobContextKey,
  parseKnobs,
} from '../../cdk/knobs.ts';
import { AwsSolutionsChecks } from '../../cdk/nag.ts';
import { REPO_ROOT } from '../../cdk/paths.ts';
import { TesseraStack } from '../../cdk/stack.ts';
import {
  type BlendItem,
  ENV,
  HANDLERS,
  KEYS,
  type MarkFailedEvent,
  PARTIAL_TAG,
  type PlanTaskResult,
  type PyramidLevelEvent,
  type PyramidLevelResult,
  type PyramidRangeEvent,
  type PyramidRangeResult,
  STALL_METRIC,
  type VerifyTaskEvent,
  type VerifyTaskResult,
  WORKER_EXIT,
} from '../../contracts/cloud.ts';
import {
  type AslDefinition,
  type AslState,
  allStates,
  localDefinition,
  parseDefinition,
  polyfillWithResolvers,
  successors,
} from '../helpers/state-machine-definition.ts';

const CDK_CONTEXT = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context as Record<
  string,
  unknown
>;

/** An App as `cdk synth` makes it (cdk.json context and feature flags), optionally without bundling. */
function appFor(opts: { bundle?: boolean } = {}): App {
  return new App({
    context: { ...CDK_CONTEXT, ...(opts.bundle ? {} : { 'aws:cdk:bundling-stacks': [] }) },
  });
}

const KNOBS: Knobs = {
  ...DEFAULT_KNOBS,
  alarmEmail: 'ops@example.org',
  allowedBuckets: ['lab-raw-data'],
};

type Resource = { Type: string; Properties: Record<string, unknown>; DeletionPolicy?: string };
type Statement = {
  Effect: 'Allow' | 'Deny';
  Action: string | string[];
  Resource: unknown;
};

let app: App;
let stack: TesseraStack;
let template: Template;
let resources: Record<string, Resource>;
let definition: AslDefinition;
let states: Map<string, AslState>;

const list = <T>(x: T | T[]): T[] => (Array.isArray(x) ? x : [x]);
const logicalId = (c: { node: { defaultChild?: unknown } } | CfnElement): string =>
  stack.getLogicalId(('node' in c && c.node.defaultChild ? c.node.defaultChild : c) as CfnElement);
const ofType = (type: string): Array<[string, Resource]> =>
  Object.entries(resources).filter(([, r]) => r.Type === type);

/** Statements of every policy attached to a role (by the role's logical id). */
function statementsOf(roleId: string): Statement[] {
  return ofType('AWS::IAM::Policy')
    .filter(([, p]) =>
      (p.Properties.Roles as unknown[]).some(
        (r) => JSON.stringify(r) === JSON.stringify({ Ref: roleId }),
      ),
    )
    .flatMap(([, p]) => (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement);
}
const actionsOf = (stmts: Statement[]): string[] => stmts.flatMap((s) => list(s.Action));
/** The top-level TimeoutSeconds of a definition (the execution's timeout). */
const timeoutOf = (d: AslDefinition): unknown =>
  (d as AslDefinition & { TimeoutSeconds?: number }).TimeoutSeconds;
const mentions = (x: unknown, id: string): boolean => JSON.stringify(x).includes(`"${id}"`);

beforeAll(() => {
  app = appFor();
  stack = new TesseraStack(app, 'Tessera', { knobs: KNOBS });
  // As app.ts does: an unacknowledged finding would make this synth throw.
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  template = Template.fromStack(stack);
  resources = template.toJSON().Resources as Record<string, Resource>;
  const [, sm] = ofType('AWS::StepFunctions::StateMachine')[0]!;
  definition = parseDefinition(sm.Properties.DefinitionString);
  states = allStates(definition);
}, 120_000);

describe('knobs', () => {
  it('cdk.json context holds the defaults, and app.ts-style parsing reads them back', () => {
    const parsed = parseKnobs((name) => CDK_CONTEXT[knobContextKey(name)]);
    expect(parsed).toEqual(DEFAULT_KNOBS);
  });

  it('reads -c style strings: comma lists and integers', () => {
    const raw: Partial<Record<keyof Knobs, string>> = {
      gpuInstanceTypes: 'g5.xlarge, g6.2xlarge',
      maxGpuVcpus: '512',
      allowedBuckets: 'lab-raw-data,lab-results',
      natGateways: '0',
    };
    const k = parseKnobs((name) => raw[name]);
    expect(k.gpuInstanceTypes).toEqual(['g5.xlarge', 'g6.2xlarge']);
    expect(k.maxGpuVcpus).toBe(512);
    expect(k.allowedBuckets).toEqual(['lab-raw-data', 'lab-results']);
    expect(k.natGateways).toBe(0);
    expect(
      parseKnobs((name) => ({ stallMinutes: '90', jobTimeoutHours: '48' })[name as string]),
    ).toMatchObject({ stallMinutes: 90, jobTimeoutHours: 48 });
  });

  it('job timeout: the knob when set, else one worker attempt per round plus 6 h', () => {
    // 3 rounds × 24 h + 6 h, the defaults (plan, verify, blend and finalize fit in the 6 h).
    expect(JOB_TIMEOUT_MARGIN_HOURS).toBe(6);
    expect(jobTimeoutHours(DEFAULT_KNOBS)).toBe(78);
    expect(jobTimeoutHours({ ...DEFAULT_KNOBS, maxRounds: 5, workerTimeoutHours: 10 })).toBe(56);
    expect(jobTimeoutHours({ ...DEFAULT_KNOBS, jobTimeoutHours: 12 })).toBe(12);
    expect(DEFAULT_KNOBS.jobTimeoutHours).toBeUndefined();
    expect(DEFAULT_KNOBS.stallMinutes).toBe(60);
  });

  it.each([
    [{ gpuInstanceTypes: ['optimal'] }, /gpuInstanceTypes.*"optimal".*family\.size/],
    [{ gpuInstanceTypes: ['g5'] }, /gpuInstanceTypes.*"g5".*not an instance type/],
    [{ gpuInstanceTypes: ['c5.xlarge'] }, /gpuInstanceTypes.*"c5\.xlarge".*g4dn, g5, g6/],
    [{ gpuInstanceTypes: ['p3.2xlarge'] }, /gpuInstanceTypes.*"p3\.2xlarge"/],
    [{ gpuInstanceTypes: [] }, /gpuInstanceTypes.*at least one/],
    [{ maxGpuVcpus: 0 }, /maxGpuVcpus.*from 4 to/],
    [{ maxCpuVcpus: 1.5 }, /maxCpuVcpus.*integer/],
    [{ allowedBuckets: ['Bad_Bucket'] }, /allowedBuckets.*"Bad_Bucket"/],
    [{ alarmEmail: 'not-an-address' }, /alarmEmail.*not an e-mail/],
    [{ vpcId: 'my-vpc' }, /vpcId.*vpc-0123456789abcdef0/],
    [{ partialsExpireDays: 0 }, /partialsExpireDays/],
    [{ natGateways: 5 }, /natGateways/],
    [{ stallMinutes: 5 }, /stallMinutes.*from 10 to/],
    [{ stallMinutes: 30.5 }, /stallMinutes.*integer/],
    [{ jobTimeoutHours: 0 }, /jobTimeoutHours.*from 1 to 8760/],
    [{ jobTimeoutHours: 9000 }, /jobTimeoutHours.*from 1 to 8760/],
  ] as Array<[Partial<Knobs>, RegExp]>)(
    'rejects %j with a message naming the knob',
    (bad, message) => {
      expect(() => checkKnobs({ ...DEFAULT_KNOBS, ...bad })).toThrow(KnobError);
      expect(() => checkKnobs({ ...DEFAULT_KNOBS, ...bad })).toThrow(message);
    },
  );

  it('rejects a non-integer string from the command line', () => {
    expect(() => parseKnobs((name) => (name === 'maxGpuVcpus' ? 'lots' : undefined))).toThrow(
      /maxGpuVcpus.*must be an integer.*-c key=value/,
    );
  });

  it('the stack refuses bad knobs before creating anything', () => {
    const a = appFor();
    expect(
      () =>
        new TesseraStack(a, 'Bad', { knobs: { ...DEFAULT_KNOBS, gpuInstanceTypes: ['optimal'] } }),
    ).toThrow(KnobError);
  });

  it('an imported VPC needs a concrete account and region', () => {
    const a = appFor();
    expect(
      () =>
        new TesseraStack(a, 'NoEnv', {
          knobs: { ...DEFAULT_KNOBS, vpcId: 'vpc-0123456789abcdef0' },
        }),
    ).toThrow(/vpcId.*account and region/);
  });
});

describe('batch compute', () => {
  const ce = (type: string) =>
    ofType('AWS::Batch::ComputeEnvironment').filter(
      ([, r]) => (r.Properties.ComputeResources as { Type: string }).Type === type,
    );

  it('GPU spot environment: price-capacity-optimized, GPU instance types only, AL2023 NVIDIA, scales to zero', () => {
    const spot = ce('SPOT');
    expect(spot).toHaveLength(1);
    const cr = spot[0]![1].Properties.ComputeResources as Record<string, unknown>;
    expect(cr.AllocationStrategy).toBe('SPOT_PRICE_CAPACITY_OPTIMIZED');
    expect(cr.MinvCpus).toBe(0);
    expect(cr.MaxvCpus).toBe(KNOBS.maxGpuVcpus);
    expect(cr.InstanceTypes).toEqual(KNOBS.gpuInstanceTypes);
    expect(cr.Ec2Configuration).toEqual([{ ImageType: 'ECS_AL2023_NVIDIA' }]);
  });

  it('no environment may launch "optimal" or non-GPU classes', () => {
    for (const [, r] of [...ce('SPOT'), ...ce('EC2')]) {
      const types = (r.Properties.ComputeResources as { InstanceTypes: string[] }).InstanceTypes;
      expect(types).not.toContain('optimal');
      for (const t of types) expect(t).toMatch(/^(g4dn|g5|g6)\.[a-z0-9]+$/);
    }
  });

  it('launch template requires IMDSv2 with hop limit 2 (containers read spot notices)', () => {
    const lts = ofType('AWS::EC2::LaunchTemplate');
    expect(lts).toHaveLength(1);
    const [ltId, lt] = lts[0]!;
    expect((lt.Properties.LaunchTemplateData as Record<string, unknown>).MetadataOptions).toEqual({
      HttpTokens: 'required',
      HttpPutResponseHopLimit: 2,
    });
    for (const [, r] of [...ce('SPOT'), ...ce('EC2')]) {
      expect((r.Properties.ComputeResources as { LaunchTemplate: unknown }).LaunchTemplate).toEqual(
        {
          LaunchTemplateId: { Ref: ltId },
        },
      );
    }
  });

  it('GPU queue: spot first, on-demand fallback as order 2; both scale to zero', () => {
    const [spotId] = ce('SPOT')[0]!;
    const [onDemandId, onDemand] = ce('EC2')[0]!;
    const cr = onDemand.Properties.ComputeResources as Record<string, unknown>;
    expect(cr.MinvCpus).toBe(0);
    expect(cr.MaxvCpus).toBe(KNOBS.maxOnDemandGpuVcpus);
    expect(cr.Ec2Configuration).toEqual([{ ImageType: 'ECS_AL2023_NVIDIA' }]);
    const gpuQueue = resources[logicalId(stack.compute.gpuQueue)]!;
    expect(gpuQueue.Properties.ComputeEnvironmentOrder).toEqual([
      { ComputeEnvironment: { 'Fn::GetAtt': [spotId, 'ComputeEnvironmentArn'] }, Order: 1 },
      { ComputeEnvironment: { 'Fn::GetAtt': [onDemandId, 'ComputeEnvironmentArn'] }, Order: 2 },
    ]);
  });

  it('CPU queue: Fargate Spot first, Fargate as order 2', () => {
    const [spotId] = ce('FARGATE_SPOT')[0]!;
    const [onDemandId] = ce('FARGATE')[0]!;
    const cpuQueue = resources[logicalId(stack.compute.cpuQueue)]!;
    expect(cpuQueue.Properties.ComputeEnvironmentOrder).toEqual([
      { ComputeEnvironment: { 'Fn::GetAtt': [spotId, 'ComputeEnvironmentArn'] }, Order: 1 },
      { ComputeEnvironment: { 'Fn::GetAtt': [onDemandId, 'ComputeEnvironmentArn'] }, Order: 2 },
    ]);
  });

  it('queues cancel jobs that can never be placed instead of blocking for ever', () => {
    for (const q of [stack.compute.gpuQueue, stack.compute.cpuQueue]) {
      const actions = resources[logicalId(q)]!.Properties.JobStateTimeLimitActions as Array<
        Record<string, unknown>
      >;
      expect(actions.map((a) => a.Reason).sort()).toEqual([
        'MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE',
        'MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT',
      ]);
    }
  });
});

describe('job definitions', () => {
  const jobDef = (which: 'gpu' | 'cpu') =>
    resources[
      logicalId(which === 'gpu' ? stack.workers.gpuJobDefinition : stack.workers.cpuJobDefinition)
    ]!.Properties;

  it.each(['gpu', 'cpu'] as const)(
    '%s: retries interruptions (exit 75/76, host loss, Spot), exits on anything else, in that order; 10 attempts',
    (which) => {
      const p = jobDef(which);
      // Batch takes the first matching entry: the catch-all EXIT must come last, and a
      // real failure (any other exit code) must not retry (the ledger re-drives it).
      expect(p.RetryStrategy).toEqual({
        Attempts: 10,
        EvaluateOnExit: [
          { Action: 'RETRY', OnExitCode: '75' },
          { Action: 'RETRY', OnExitCode: '76' },
          { Action: 'RETRY', OnStatusReason: 'Host EC2*' },
          { Action: 'RETRY', OnStatusReason: 'Your Spot Task was interrupted*' },
          { Action: 'EXIT', OnStatusReason: '*' },
        ],
      });
      // The codes are the worker's (the constants both sides import).
      expect(RETRY_ON_EXIT_CODES).toEqual([
        String(WORKER_EXIT.interrupted),
        String(WORKER_EXIT.hung),
      ]);
      expect(WORKER_ATTEMPTS).toBe(10);
      expect(RETRY_ON_HOST_LOSS).toContain('Host EC2*');
      expect(p.Timeout).toEqual({ AttemptDurationSeconds: KNOBS.workerTimeoutHours * 3600 });
    },
  );

  it.each(['gpu', 'cpu'] as const)(
    '%s: runs `tessera worker --job <jobId>` with the stack environment',
    (which) => {
      const c = jobDef(which).ContainerProperties as Record<string, unknown>;
      expect(c.Command).toEqual(['worker', '--job', 'Ref::jobId']);
      expect(WORKER_COMMAND).toEqual(c.Command);
      const env = Object.fromEntries(
        (c.Environment as Array<{ Name: string; Value: unknown }>).map((e) => [e.Name, e.Value]),
      );
      expect(env[ENV.table]).toEqual({ Ref: logicalId(stack.storage.table) });
      expect(env[ENV.bucket]).toEqual({ Ref: logicalId(stack.storage.bucket) });
      expect(env[ENV.allowedBuckets]).toBe('lab-raw-data');
      expect(c.JobRoleArn).toEqual({ 'Fn::GetAtt': [logicalId(stack.workers.jobRole), 'Arn'] });
    },
  );

  it('GPU job asks for exactly one GPU on EC2; CPU job runs on Fargate', () => {
    const gpu = jobDef('gpu');
    expect(gpu.PlatformCapabilities).toEqual(['EC2']);
    expect(
      (gpu.ContainerProperties as { ResourceRequirements: unknown[] }).ResourceRequirements,
    ).toContainEqual({
      Type: 'GPU',
      Value: '1',
    });
    const cpu = jobDef('cpu');
    expect(cpu.PlatformCapabilities).toEqual(['FARGATE']);
    expect(JSON.stringify(cpu.ContainerProperties)).not.toContain('"GPU"');
  });

  it('images are Docker assets from containers/worker, built for linux/amd64 at deploy time', () => {
    const manifest = JSON.parse(
      readFileSync(join(app.outdir, `${stack.artifactId}.assets.json`), 'utf8'),
    ) as { dockerImages: Record<string, { source: { dockerFile: string; platform: string } }> };
    const sources = Object.values(manifest.dockerImages).map((d) => d.source);
    expect(sources.map((s) => s.dockerFile).sort()).toEqual(
      [WORKER_DOCKERFILES.cpu, WORKER_DOCKERFILES.gpu].sort(),
    );
    for (const s of sources) expect(s.platform).toBe('linux/amd64');
  });
});

describe('storage', () => {
  it('bucket: SSE, versioning, public access blocked, access logs, TLS-only policy', () => {
    const b = resources[logicalId(stack.storage.bucket)]!.Properties;
    expect(b.BucketEncryption).toEqual({
      ServerSideEncryptionConfiguration: [
        { ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } },
      ],
    });
    expect(b.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(b.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(b.LoggingConfiguration).toMatchObject({
      DestinationBucketName: { Ref: logicalId(stack.storage.logBucket) },
    });
    const policy = ofType('AWS::S3::BucketPolicy').find(([, p]) =>
      mentions(p.Properties.Bucket, logicalId(stack.storage.bucket)),
    )!;
    expect(JSON.stringify(policy[1].Properties.PolicyDocument)).toContain(
      '"Condition":{"Bool":{"aws:SecureTransport":"false"}},"Effect":"Deny"',
    );
  });

  it('lifecycle expires tagged seam partials under jobs/ after the knob, and bounds old versions', () => {
    const rules = (
      resources[logicalId(stack.storage.bucket)]!.Properties.LifecycleConfiguration as {
        Rules: Array<Record<string, unknown>>;
      }
    ).Rules;
    expect(rules).toContainEqual(
      expect.objectContaining({
        Id: 'expire-seam-partials',
        Prefix: KEYS.jobsPrefix,
        TagFilters: [{ Key: PARTIAL_TAG.key, Value: PARTIAL_TAG.value }],
        ExpirationInDays: KNOBS.partialsExpireDays,
        Status: 'Enabled',
      }),
    );
    expect(rules).toContainEqual(
      expect.objectContaining({
        NoncurrentVersionExpiration: { NoncurrentDays: KNOBS.partialsExpireDays },
      }),
    );
    expect(KEYS.partialsPrefix('j').startsWith(KEYS.jobsPrefix)).toBe(true);
  });

  it('manifest trigger: ObjectCreated on manifests/*.json invokes the planner', () => {
    const [, n] = ofType('Custom::S3BucketNotifications')[0]!;
    expect(n.Properties.BucketName).toEqual({ Ref: logicalId(stack.storage.bucket) });
    const configs = (
      n.Properties.NotificationConfiguration as {
        LambdaFunctionConfigurations: Array<Record<string, unknown>>;
      }
    ).LambdaFunctionConfigurations;
    expect(configs).toHaveLength(1);
    expect(configs[0]!.Events).toEqual(['s3:ObjectCreated:*']);
    const rules = (
      configs[0]!.Filter as { Key: { FilterRules: Array<{ Name: string; Value: string }> } }
    ).Key.FilterRules;
    expect(rules).toEqual(
      expect.arrayContaining([
        { Name: 'prefix', Value: KEYS.manifestPrefix },
        { Name: 'suffix', Value: '.json' },
      ]),
    );
    expect(configs[0]!.LambdaFunctionArn).toEqual({
      'Fn::GetAtt': [logicalId(stack.functions.fns.planner), 'Arn'],
    });
  });

  it('ledger table: on-demand, PITR, deletion protection, retained; GSI as the adapter defines it', () => {
    const id = logicalId(stack.storage.table);
    const t = resources[id]!;
    expect(t.DeletionPolicy).toBe('Retain');
    expect(t.Properties.BillingMode).toBe('PAY_PER_REQUEST');
    const replica = (t.Properties.Replicas as Array<Record<string, unknown>>)[0]!;
    expect(replica.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
    expect(replica.DeletionProtectionEnabled).toBe(true);
    const expected = tableDefinition('x');
    expect(t.Properties.KeySchema).toEqual(expected.KeySchema);
    expect(t.Properties.GlobalSecondaryIndexes).toEqual(expected.GlobalSecondaryIndexes);
    expect(new Set(t.Properties.AttributeDefinitions as unknown[])).toEqual(
      new Set(expected.AttributeDefinitions),
    );
  });
});

describe('lambdas', () => {
  it.each(Object.keys(HANDLERS) as Array<keyof typeof HANDLERS>)(
    '%s: nodejs22.x on x86_64 with the stack environment',
    (name) => {
      const f = resources[logicalId(stack.functions.fns[name])]!.Properties;
      expect(f.Runtime).toBe('nodejs22.x');
      expect(f.Architectures).toEqual(['x86_64']);
      const env = (f.Environment as { Variables: Record<string, unknown> }).Variables;
      expect(env[ENV.table]).toEqual({ Ref: logicalId(stack.storage.table) });
      expect(env[ENV.bucket]).toEqual({ Ref: logicalId(stack.storage.bucket) });
      expect(env[ENV.maxRounds]).toBe(String(KNOBS.maxRounds));
      expect(f.LoggingConfig).toBeDefined();
    },
  );

  it("the planner is told the state machine's ARN, built from its fixed name", () => {
    const env = (
      resources[logicalId(stack.functions.fns.planner)]!.Properties.Environment as {
        Variables: Record<string, unknown>;
      }
    ).Variables;
    const sm = resources[logicalId(stack.pipeline.stateMachine)]!;
    const name = sm.Properties.StateMachineName as string;
    expect(JSON.stringify(env[ENV.stateMachineArn])).toContain(`:stateMachine:${name}`);
  });
});

describe('iam', () => {
  const allStatements = () =>
    ofType('AWS::IAM::Policy').flatMap(([id, p]) =>
      (p.Properties.PolicyDocument as { Statement: Statement[] }).Statement.map((s) => ({ id, s })),
    );

  it('no statement allows every action, and "*" resources only where AWS has no resource-level scope', () => {
    const noResourceScope = new Set([
      'ecr:GetAuthorizationToken',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'xray:PutTelemetryRecords',
      'xray:PutTraceSegments',
      'logs:CreateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:DescribeLogGroups',
      'logs:DescribeResourcePolicies',
      'logs:GetLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:UpdateLogDelivery',
      'batch:DescribeJobs',
      'batch:ListJobs',
    ]);
    for (const { id, s } of allStatements()) {
      if (s.Effect !== 'Allow') continue;
      for (const a of list(s.Action)) expect(a, id).not.toMatch(/^(\*|[a-z0-9-]+:\*)$/);
      if (list(s.Resource).includes('*')) {
        for (const a of list(s.Action))
          expect(noResourceScope.has(a), `${id}: ${a} on "*"`).toBe(true);
      }
    }
    for (const [, role] of ofType('AWS::IAM::Role')) {
      for (const p of (role.Properties.Policies as Array<{
        PolicyDocument: { Statement: Statement[] };
      }>) ?? []) {
        for (const s of p.PolicyDocument.Statement) {
          expect(list(s.Action).includes('*') && list(s.Resource).includes('*')).toBe(false);
        }
      }
    }
  });

  it('the worker role touches this table (and its open index) only, and cannot write manifests', () => {
    const tableId = logicalId(stack.storage.table);
    const stmts = statementsOf(logicalId(stack.workers.jobRole));
    const dynamo = stmts.filter((s) => list(s.Action).some((a) => a.startsWith('dynamodb:')));
    expect(dynamo.length).toBeGreaterThan(0);
    for (const s of dynamo) {
      for (const r of list(s.Resource)) {
        expect(mentions(r, tableId), JSON.stringify(r)).toBe(true);
        expect(JSON.stringify(r)).not.toContain('*');
      }
    }
    const deny = stmts.find((s) => s.Effect === 'Deny');
    expect(deny).toBeDefined();
    expect(list(deny!.Action)).toContain('s3:PutObject');
    expect(JSON.stringify(deny!.Resource)).toContain(`/${KEYS.manifestPrefix}*`);
    expect(
      actionsOf(stmts).filter((a) => a.startsWith('states:') || a.startsWith('batch:')),
    ).toEqual([]);
  });

  it('the planner may start this state machine only, and cannot submit Batch jobs', () => {
    const stmts = statementsOf(logicalId(stack.functions.fns.planner.role!));
    const actions = actionsOf(stmts);
    expect(actions.filter((a) => a.startsWith('batch:'))).toEqual([]);
    const start = stmts.filter((s) => list(s.Action).includes('states:StartExecution'));
    expect(start).toHaveLength(1);
    const name = resources[logicalId(stack.pipeline.stateMachine)]!.Properties.StateMachineName;
    expect(JSON.stringify(start[0]!.Resource)).toMatch(
      new RegExp(`:stateMachine:${name}"\\]\\]\\}$`),
    );
  });

  it('markFailed has no ledger access and writes only under jobs/', () => {
    const stmts = statementsOf(logicalId(stack.functions.fns.markFailed.role!));
    expect(actionsOf(stmts).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
    for (const s of stmts.filter((x) => list(x.Action).includes('s3:PutObject'))) {
      expect(JSON.stringify(s.Resource)).toContain(`/${KEYS.jobsPrefix}*`);
    }
  });

  it('pyramid has no ledger access and writes where blend writes (outputs), nothing under jobs/', () => {
    const writes = (fn: 'pyramid' | 'blend') =>
      statementsOf(logicalId(stack.functions.fns[fn].role!))
        .filter((x) => list(x.Action).includes('s3:PutObject'))
        .map((x) => x.Resource);
    const stmts = statementsOf(logicalId(stack.functions.fns.pyramid.role!));
    expect(actionsOf(stmts).filter((a) => a.startsWith('dynamodb:'))).toEqual([]);
    expect(writes('pyramid').length).toBeGreaterThan(0);
    expect(writes('pyramid')).toEqual(writes('blend'));
    for (const r of writes('pyramid'))
      expect(JSON.stringify(r)).not.toContain(`/${KEYS.jobsPrefix}`);
  });

  it('the state machine submits to the two queues only', () => {
    const stmts = statementsOf(logicalId(stack.pipeline.stateMachine.role));
    const submit = stmts.filter((s) => list(s.Action).includes('batch:SubmitJob'));
    const queues = submit
      .flatMap((s) => list(s.Resource))
      .filter((r) => JSON.stringify(r).includes('JobQueueArn'));
    expect(queues).toHaveLength(2);
    for (const q of [stack.compute.gpuQueue, stack.compute.cpuQueue]) {
      expect(queues).toContainEqual({ 'Fn::GetAtt': [logicalId(q), 'JobQueueArn'] });
    }
  });

  it('the state machine may poll and cancel its Batch jobs (what submitJob.sync needs), besides submitting', () => {
    const stmts = statementsOf(logicalId(stack.pipeline.stateMachine.role));
    const withAction = (a: string) => stmts.filter((s) => list(s.Action).includes(a));
    // DescribeJobs has no resource-level permissions; TerminateJob is scoped to jobs.
    expect(withAction('batch:DescribeJobs').map((s) => s.Resource)).toEqual(['*']);
    const terminate = withAction('batch:TerminateJob');
    expect(terminate).toHaveLength(1);
    expect(JSON.stringify(terminate[0]!.Resource)).toMatch(/:job\/\*"\]\]\}$/);
    // What CDK's BatchSubmitJob grants stays: SubmitJob and the managed events rule.
    expect(withAction('batch:SubmitJob')).toHaveLength(1);
    for (const a of ['events:PutTargets', 'events:PutRule', 'events:DescribeRule']) {
      const rule = withAction(a);
      expect(rule, a).toHaveLength(1);
      expect(JSON.stringify(rule[0]!.Resource), a).toContain(
        ':rule/StepFunctionsGetEventsForBatchJobsRule',
      );
    }
    // Nothing else of Batch: no job definitions, queues or environments to change.
    expect(
      actionsOf(stmts)
        .filter((a) => a.startsWith('batch:'))
        .sort(),
    ).toEqual(['batch:DescribeJobs', 'batch:SubmitJob', 'batch:TerminateJob']);
  });

  it("the state machine's Blend ResultWriter may write only under jobs/*/blend-results/", () => {
    const stmts = statementsOf(logicalId(stack.pipeline.stateMachine.role));
    const put = stmts.filter((s) => list(s.Action).includes('s3:PutObject'));
    expect(put).toHaveLength(1);
    expect(list(put[0]!.Action).sort()).toEqual(
      [
        's3:AbortMultipartUpload',
        's3:GetObject',
        's3:ListMultipartUploadParts',
        's3:PutObject',
      ].sort(),
    );
    expect(list(put[0]!.Resource)).toEqual([
      {
        'Fn::Join': [
          '',
          [{ 'Fn::GetAtt': [logicalId(stack.storage.bucket), 'Arn'] }, '/jobs/*/blend-results/*'],
        ],
      },
    ]);
    expect(KEYS.blendResults('j')).toBe('jobs/j/blend-results/');
  });

  it('verify may list and describe Batch jobs ("*": no resource-level scope), and nothing else of Batch', () => {
    const stmts = statementsOf(logicalId(stack.functions.fns.verify.role!));
    const batch = stmts.filter((s) => list(s.Action).some((a) => a.startsWith('batch:')));
    expect(batch).toHaveLength(1);
    expect(list(batch[0]!.Action).sort()).toEqual(['batch:DescribeJobs', 'batch:ListJobs']);
    expect(BATCH_READ_ACTIONS).toEqual(['batch:ListJobs', 'batch:DescribeJobs']);
    expect(batch[0]!.Resource).toBe('*');
    for (const fn of [
      'planner',
      'blend',
      'pyramid',
      'finalize',
      'markFailed',
      'watchdog',
    ] as const) {
      const other = statementsOf(logicalId(stack.functions.fns[fn].role!));
      expect(
        actionsOf(other).filter((a) => a.startsWith('batch:')),
        fn,
      ).toEqual([]);
    }
  });

  it('the watchdog lists executions of this state machine only, reads the ledger, writes under jobs/ only', () => {
    const stmts = statementsOf(logicalId(stack.functions.fns.watchdog.role!));
    const states = stmts.filter((s) => list(s.Action).some((a) => a.startsWith('states:')));
    expect(states).toHaveLength(1);
    expect(states[0]!.Action).toBe('states:ListExecutions');
    const name = resources[logicalId(stack.pipeline.stateMachine)]!.Properties.StateMachineName;
    expect(JSON.stringify(states[0]!.Resource)).toMatch(
      new RegExp(`:stateMachine:${name}"\\]\\]\\}$`),
    );
    const dynamo = actionsOf(stmts).filter((a) => a.startsWith('dynamodb:'));
    expect(dynamo).toContain('dynamodb:Query');
    expect(dynamo.filter((a) => /Put|Update|Delete|Write/.test(a))).toEqual([]);
    for (const s of stmts.filter((x) => list(x.Action).includes('s3:PutObject'))) {
      expect(JSON.stringify(s.Resource)).toContain(`/${KEYS.jobsPrefix}*`);
    }
  });
});

describe('state machine', () => {
  const get = (name: string): AslState => {
    const s = states.get(name);
    if (!s) throw new Error(`no state ${name}; have ${[...states.keys()].join(', ')}`);
    return s;
  };
  const ref = (c: { node: { defaultChild?: unknown } }) => `<Ref:${logicalId(c)}>`;
  const arnOf = (c: { node: { defaultChild?: unknown } }) => `<GetAtt:${logicalId(c)}.Arn>`;

  it('is a STANDARD state machine with logging and tracing', () => {
    const p = resources[logicalId(stack.pipeline.stateMachine)]!.Properties;
    expect(p.StateMachineType).toBe('STANDARD');
    expect(p.TracingConfiguration).toEqual({ Enabled: true });
    expect((p.LoggingConfiguration as { Level: string }).Level).toBe('ALL');
  });

  it('times out after the job timeout (default: 3 rounds × 24 h + 6 h)', () => {
    expect(timeoutOf(definition)).toBe(78 * 3600);
    const a = appFor();
    const s = new TesseraStack(a, 'ShortJobs', { knobs: { ...KNOBS, jobTimeoutHours: 12 } });
    const [, sm] = Object.entries(
      Template.fromStack(s).toJSON().Resources as Record<string, Resource>,
    ).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')!;
    expect(timeoutOf(parseDefinition(sm.Properties.DefinitionString))).toBe(12 * 3600);
  });

  it('plans first with the execution input (PipelineInput) and keeps the plan at $.plan', () => {
    expect(definition.StartAt).toBe(STATES.plan);
    const plan = get(STATES.plan);
    expect(plan.Resource).toBe(arnOf(stack.functions.fns.planner));
    expect(plan.Parameters).toEqual({ 'manifest.$': '$.manifest' });
    expect(plan.ResultPath).toBe('$.plan');
    expect(plan.ResultSelector).toMatchObject({
      'jobId.$': '$.jobId',
      'arraySize.$': '$.arraySize',
      'device.$': '$.device',
      'blendItemsKey.$': '$.blendItemsKey',
      bucket: ref(stack.storage.bucket),
      // KEYS.blendResults(jobId), where the blend Map writes its children's results.
      'blendResultsPrefix.$': "States.Format('jobs/{}/blend-results/', $.jobId)",
    });
    // A plan too large for the Plan task alone takes the PlanRanges path first.
    expect(plan.Next).toBe(STATES.planInRanges);
    expect(get(STATES.planInRanges)).toMatchObject({
      Type: 'Choice',
      Choices: [
        // The Plan task decides (rangeRows 0: it wrote every row); the choice follows it.
        { Variable: '$.plan.rangeRows', NumericGreaterThan: 0, Next: STATES.rangeStarts },
      ],
      Default: STATES.startRounds,
    });
    expect(get(STATES.completePlan).Next).toBe(STATES.startRounds);
    expect(get(STATES.completePlan).Resource).toBe(arnOf(stack.functions.fns.planRange));
  });

  it("rounds: $.work = {round, arraySize}; the first round takes the plan's fleet, a re-drive what Verify asks", () => {
    expect(get(STATES.startRounds)).toMatchObject({
      Type: 'Pass',
      Parameters: { round: 0, 'arraySize.$': '$.plan.arraySize' },
      ResultPath: '$.work',
      Next: STATES.chooseQueue,
    });
    expect(get(STATES.countRound)).toMatchObject({
      Parameters: {
        'round.$': 'States.MathAdd($.work.round, 1)',
        'arraySize.$': '$.work.arraySize',
      },
      ResultPath: '$.work',
      Next: STATES.verify,
    });
    expect(get(STATES.nextRound)).toMatchObject({
      Type: 'Pass',
      Parameters: { 'round.$': '$.work.round', 'arraySize.$': '$.verify.arraySize' },
      ResultPath: '$.work',
      Next: STATES.chooseQueue,
    });
    expect(STATES.nextRound).toBe('NextRound');
  });

  it('chooses the queue by device, and an array job only when arraySize > 1', () => {
    const choose = get(STATES.chooseQueue);
    expect(choose.Choices).toEqual([
      { Variable: '$.plan.device', StringEquals: 'gpu', Next: STATES.gpuArrayOrSingle },
    ]);
    expect(choose.Default).toBe(STATES.cpuArrayOrSingle);
    const cases = [
      [
        STATES.gpuArrayOrSingle,
        STATES.workGpuArray,
        STATES.workGpu,
        stack.compute.gpuQueue,
        stack.workers.gpuJobDefinition,
      ],
      [
        STATES.cpuArrayOrSingle,
        STATES.workCpuArray,
        STATES.workCpu,
        stack.compute.cpuQueue,
        stack.workers.cpuJobDefinition,
      ],
    ] as const;
    for (const [choiceName, arrayName, singleName, queue, jobDef] of cases) {
      const choice = get(choiceName);
      expect(choice.Choices).toEqual([
        { Variable: '$.work.arraySize', NumericGreaterThan: 1, Next: arrayName },
      ]);
      expect(choice.Default).toBe(singleName);
      for (const name of [arrayName, singleName]) {
        const task = get(name);
        expect(task.Resource).toBe('arn:<Ref:AWS::Partition>:states:::batch:submitJob.sync');
        expect(task.Parameters).toMatchObject({
          JobQueue: `<GetAtt:${logicalId(queue)}.JobQueueArn>`,
          JobDefinition: ref(jobDef),
          Parameters: { 'jobId.$': '$.plan.jobId' },
        });
        // The job description can exceed 256 KiB: only its id and status are kept.
        expect(task.ResultSelector).toEqual({ 'JobId.$': '$.JobId', 'Status.$': '$.Status' });
        expect(task.ResultPath).toBe('$.batch');
        expect(task.Next).toBe(STATES.countRound);
      }
      expect(get(arrayName).Parameters!.ArrayProperties).toEqual({ 'Size.$': '$.work.arraySize' });
      expect(get(singleName).Parameters!.ArrayProperties).toBeUndefined();
    }
  });

  it('a failed Batch job goes on to Verify (the ledger decides); other errors to MarkFailed', () => {
    for (const name of [STATES.workGpuArray, STATES.workGpu, STATES.workCpuArray, STATES.workCpu]) {
      expect(get(name).Catch).toEqual([
        // {Error, Cause}: Cause is the job description (JSON) Verify reads the failed children from.
        { ErrorEquals: ['States.TaskFailed'], ResultPath: '$.batch', Next: STATES.countRound },
        { ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: STATES.stepFailed },
      ]);
    }
    expect(get(STATES.countRound).Next).toBe(STATES.verify);
  });

  it('verify: COMPLETE blends, INCOMPLETE with redrive works again, anything else fails with the reason', () => {
    const verify = get(STATES.verify);
    expect(verify.Resource).toBe(arnOf(stack.functions.fns.verify));
    expect(verify.Parameters).toEqual({
      'jobId.$': '$.plan.jobId',
      'round.$': '$.work.round',
      'batch.$': '$.batch',
    });
    expect(verify.ResultPath).toBe('$.verify');
    const verified = get(STATES.verified);
    expect(verified.Choices).toEqual([
      { Variable: '$.verify.status', StringEquals: 'COMPLETE', Next: STATES.hasSeams },
      {
        And: [
          { Variable: '$.verify.status', StringEquals: 'INCOMPLETE' },
          { Variable: '$.verify.redrive', BooleanEquals: true },
        ],
        Next: STATES.nextRound,
      },
      { Variable: '$.verify.reason', IsPresent: true, Next: STATES.unfinished },
    ]);
    expect(verified.Default).toBe(STATES.unexplained);
    expect(get(STATES.unfinished).Parameters).toMatchObject({ 'reason.$': '$.verify.reason' });
    expect(get(STATES.unfinished).Next).toBe(STATES.markFailed);
    expect(get(STATES.unexplained).Next).toBe(STATES.markFailed);
  });

  it('blend: a Distributed Map over jobs/<jobId>/blend-items.json, no tolerated failures', () => {
    expect(get(STATES.hasSeams).Choices).toEqual([
      { Variable: '$.verify.blendItemCount', NumericGreaterThan: 0, Next: STATES.blend },
    ]);
    expect(get(STATES.hasSeams).Default).toBe(STATES.startPyramid);
    const blend = get(STATES.blend);
    expect(blend.Type).toBe('Map');
    expect(blend.ItemProcessor!.ProcessorConfig).toMatchObject({ Mode: 'DISTRIBUTED' });
    expect(blend.ItemReader).toEqual({
      Resource: 'arn:<Ref:AWS::Partition>:states:::s3:getObject',
      ReaderConfig: { InputType: 'JSON' },
      Parameters: { 'Bucket.$': '$.plan.bucket', 'Key.$': '$.plan.blendItemsKey' },
    });
    // Absent means none tolerated (CDK omits a 0); a count would loosen it.
    expect(blend.ToleratedFailurePercentage ?? 0).toBe(0);
    expect(blend.ToleratedFailureCount ?? 0).toBe(0);
    expect(blend.MaxConcurrency).toBeGreaterThan(0);
    expect(blend.ResultPath).toBeNull();
    // Children's results go to S3, per job, never back into the state (256 KiB limit).
    expect(blend.ResultWriter).toEqual({
      Resource: 'arn:<Ref:AWS::Partition>:states:::s3:putObject',
      Parameters: { Bucket: ref(stack.storage.bucket), 'Prefix.$': '$.plan.blendResultsPrefix' },
    });
    expect(blend.Next).toBe(STATES.startPyramid);
    const range = get(STATES.blendRange);
    expect(range.Resource).toBe(arnOf(stack.functions.fns.blend));
    // The item (a BlendItem) is the blend Lambda's event as it is.
    expect(range.Parameters).toBeUndefined();
    expect(range.InputPath).toBeUndefined();
    expect(blend.ItemProcessor!.StartAt).toBe(STATES.blendRange);
    expect(KEYS.blendItems('j')).toBe('jobs/j/blend-items.json');
  });

  it('pyramid: level by level, an inline Map of range tasks per level, then Finalize', () => {
    expect(get(STATES.startPyramid)).toMatchObject({
      Type: 'Pass',
      Parameters: { level: 1 },
      ResultPath: '$.pyramidNext',
      Next: STATES.pyramidLevel,
    });
    const level = get(STATES.pyramidLevel);
    expect(level.Resource).toBe(arnOf(stack.functions.fns.pyramid));
    expect(level.Parameters).toEqual({
      step: 'level',
      'jobId.$': '$.plan.jobId',
      'level.$': '$.pyramidNext.level',
    });
    expect(level.ResultPath).toBe('$.pyramid');
    expect(level.Next).toBe(STATES.pyramidDone);
    expect(get(STATES.pyramidDone).Choices).toEqual([
      { Variable: '$.pyramid.done', BooleanEquals: true, Next: STATES.finalize },
    ]);
    expect(get(STATES.pyramidDone).Default).toBe(STATES.pyramidTasks);
    const tasks = get(STATES.pyramidTasks);
    expect(tasks.Type).toBe('Map');
    expect(tasks.ItemProcessor!.ProcessorConfig?.Mode ?? 'INLINE').toBe('INLINE');
    expect(tasks.ItemsPath).toBe('$.pyramid.starts');
    expect(tasks.ItemSelector).toEqual({
      step: 'range',
      'jobId.$': '$.plan.jobId',
      'level.$': '$.pyramid.level',
      'from.$': '$$.Map.Item.Value',
      'blocks.$': '$.pyramid.blocksPerTask',
    });
    expect(tasks.MaxConcurrency).toBeGreaterThan(0);
    expect(tasks.ResultPath).toBeNull();
    expect(tasks.Next).toBe(STATES.nextPyramidLevel);
    expect(tasks.ItemProcessor!.StartAt).toBe(STATES.pyramidRange);
    const range = tasks.ItemProcessor!.States[STATES.pyramidRange]!;
    expect(range.Resource).toBe(arnOf(stack.functions.fns.pyramid));
    // A range is idempotent: one cut off by the Lambda timeout is retried.
    expect((range.Retry ?? []).flatMap((r) => r.ErrorEquals)).toContain('Sandbox.Timedout');
    expect(get(STATES.nextPyramidLevel)).toMatchObject({
      Parameters: { 'level.$': 'States.MathAdd($.pyramid.level, 1)' },
      ResultPath: '$.pyramidNext',
      Next: STATES.pyramidLevel,
    });
  });

  it('finalize ends in Succeed with the finalize result as output', () => {
    const finalize = get(STATES.finalize);
    expect(finalize.Resource).toBe(arnOf(stack.functions.fns.finalize));
    expect(finalize.Parameters).toEqual({ 'jobId.$': '$.plan.jobId' });
    expect(finalize.Next).toBe(STATES.succeeded);
    expect(get(STATES.succeeded)).toMatchObject({ Type: 'Succeed', OutputPath: '$.result' });
  });

  it('every task and the map catch States.ALL on the way to MarkFailed; Lambda tasks retry service errors', () => {
    const top = Object.entries(definition.States);
    for (const [name, s] of top) {
      if (s.Type !== 'Task' && s.Type !== 'Map') continue;
      const all = (s.Catch ?? []).find((c) => c.ErrorEquals.includes('States.ALL'));
      expect(all, name).toBeDefined();
      const handler = get(all!.Next);
      if (name === STATES.markFailed) expect(all!.Next).toBe(STATES.describeUnrecorded);
      else if (name === STATES.plan) expect(all!.Next).toBe(STATES.planFailed);
      else expect(all!.Next).toBe(STATES.stepFailed);
      if (name !== STATES.markFailed) expect(handler.Next, name).toBe(STATES.markFailed);
    }
    for (const [name, s] of states) {
      if (s.Type !== 'Task' || s.Resource?.includes('batch:')) continue;
      const errors = (s.Retry ?? []).flatMap((r) => r.ErrorEquals);
      expect(errors, name).toEqual(
        expect.arrayContaining(['Lambda.ServiceException', 'Lambda.TooManyRequestsException']),
      );
    }
  });

  it('every way to the Fail states passes through MarkFailed (status FAILED with the reason)', () => {
    const fails = [...states].filter(([, s]) => s.Type === 'Fail').map(([n]) => n);
    expect(fails.sort()).toEqual([STATES.failed, STATES.failedUnrecorded].sort());
    // Walk from the start without entering MarkFailed: no Fail state may be reached.
    const seen = new Set<string>();
    const walk = (name: string): void => {
      if (seen.has(name) || name === STATES.markFailed) return;
      seen.add(name);
      for (const n of successors(get(name))) walk(n);
    };
    walk(definition.StartAt);
    for (const f of fails) expect(seen.has(f), f).toBe(false);
    expect(get(STATES.markFailed).Catch).toEqual([
      {
        ErrorEquals: ['States.ALL'],
        ResultPath: '$.markFailedError',
        Next: STATES.describeUnrecorded,
      },
    ]);
    expect(get(STATES.describeUnrecorded).Parameters).toEqual({
      'cause.$': 'States.JsonToString($.failure)',
    });
    expect(get(STATES.failedUnrecorded)).toMatchObject({
      Error: PIPELINE_ERROR,
      CausePath: '$.unrecorded.cause',
    });
    const markFailed = get(STATES.markFailed);
    expect(markFailed.Resource).toBe(arnOf(stack.functions.fns.markFailed));
    // The event is $.failure as built by PlanFailed, StepFailed or Unfinished (MarkFailedEvent).
    expect(markFailed.InputPath).toBe('$.failure');
    expect(markFailed.Parameters).toBeUndefined();
    expect(markFailed.ResultPath).toBe('$.failed');
    expect(get(STATES.failed)).toMatchObject({
      Error: PIPELINE_ERROR,
      CausePath: '$.failed.reason',
    });
    expect(get(STATES.planFailed).Parameters).toEqual({
      'manifest.$': '$.manifest',
      'error.$': '$.error',
    });
    expect(get(STATES.stepFailed).Parameters).toEqual({
      'jobId.$': '$.plan.jobId',
      'manifest.$': '$.manifest',
      'error.$': '$.error',
    });
  });

  it('every state is reachable from the start', () => {
    const seen = new Set<string>();
    const visit = (name: string, scope: AslDefinition): void => {
      if (seen.has(name)) return;
      seen.add(name);
      const s = scope.States[name]!;
      if (s.ItemProcessor) visit(s.ItemProcessor.StartAt, s.ItemProcessor);
      for (const n of successors(s)) visit(n, scope);
    };
    visit(definition.StartAt, definition);
    expect([...seen].sort()).toEqual([...states.keys()].sort());
  });
});

describe('state machine runs (aws-local-stepfunctions, stub handlers)', () => {
  // The flow only: stub handlers stand in for the Lambdas and the Batch tasks. The
  // end-to-end local run with the real handlers and workers is a separate test.
  type Handlers = Record<string, (input: never) => unknown>;
  const input = { manifest: { bucket: 'stack-bucket', key: 'manifests/m.json' } };
  const planned =
    (device: 'cpu' | 'gpu', arraySize: number, items: number) => (): PlanTaskResult => ({
      jobId: 'job-1',
      arraySize,
      chunks: 10,
      seamBlocks: items * 3,
      blendItemsKey: KEYS.blendItems('job-1'),
      blendItemCount: items,
      device,
      rangeRows: 0,
    });
  // A COMPLETE Verify says how many seam blocks the workers left unblended (its items,
  // which localDefinition's inline Map reads from $.verify.blendItems).
  const verdict =
    (v: Partial<VerifyTaskResult>, leftItems = 0) =>
    (e: VerifyTaskEvent): VerifyTaskResult & { blendItems?: BlendItem[] } => ({
      jobId: 'job-1',
      status: 'COMPLETE',
      round: e.round,
      redrive: false,
      remaining: 0,
      arraySize: 1,
      ...((v.status ?? 'COMPLETE') === 'COMPLETE'
        ? {
            blendItemCount: leftItems,
            blendItems: Array.from({ length: leftItems }, (_, i) => ({
              jobId: 'job-1',
              keys: [`0_0_${i}`],
            })),
          }
        : {}),
      ...v,
    });
  // What submitJob.sync returns: the whole job description (only JobId and Status are kept).
  const described = (jobId: string) => () => ({
    JobId: jobId,
    JobName: 'tessera-job-1',
    Status: 'SUCCEEDED',
    Container: { Command: ['worker', '--job', 'job-1'], LogStreamName: 'worker/x/y' },
  });
  const stubs: Handlers = {
    [STATES.workGpuArray]: described('batch-gpu-array'),
    [STATES.workGpu]: described('batch-gpu'),
    [STATES.workCpuArray]: described('batch-cpu-array'),
    [STATES.workCpu]: described('batch-cpu'),
    [STATES.blendRange]: (i: BlendItem) => ({
      jobId: i.jobId,
      blocks: 'keys' in i ? i.keys.length : i.to - i.from,
    }),
    // No pyramid asked for: the first level call answers done.
    [STATES.pyramidLevel]: (e: PyramidLevelEvent): PyramidLevelResult => ({
      jobId: e.jobId,
      level: e.level,
      done: true,
      blocksPerTask: 0,
      starts: [],
    }),
    [STATES.finalize]: (i: { jobId: string }) => ({
      jobId: i.jobId,
      status: 'SUCCEEDED',
      output: 's3://stack-bucket/outputs/o.zarr',
      reportKey: 'outputs/o.zarr/report.json',
    }),
    [STATES.markFailed]: (e: MarkFailedEvent) => ({
      jobId: e.jobId ?? 'unknown',
      reason: e.reason ?? `${e.error?.Error}: ${e.error?.Cause}`,
    }),
  };

  async function run(handlers: Handlers) {
    polyfillWithResolvers();
    const calls: Array<[string, unknown]> = [];
    const local = Object.fromEntries(
      Object.entries({ ...stubs, ...handlers }).map(([name, fn]) => [
        name,
        async (i: unknown) => {
          calls.push([name, i]);
          return fn(i as never) as never;
        },
      ]),
    );
    const machine = new StateMachine(localDefinition(definition) as never, {
      validationOptions: { checkArn: false },
    });
    const noWait = Object.fromEntries([...states.keys()].map((n) => [n, 0]));
    const execution = machine.run(input, {
      overrides: { taskResourceLocalHandlers: local, retryIntervalOverrides: noWait },
    });
    try {
      return { output: await execution.result, calls, error: undefined };
    } catch (error) {
      return { output: undefined, calls, error: error as Error & { cause?: { name?: string } } };
    }
  }
  const named = (calls: Array<[string, unknown]>) => calls.map(([n]) => n);

  it('re-drives while verify says INCOMPLETE, then blends the items Verify left and finalizes', async () => {
    let rounds = 0;
    const r = await run({
      [STATES.plan]: planned('gpu', 5, 2),
      [STATES.verify]: (e: VerifyTaskEvent) =>
        verdict(
          ++rounds < 2 ? { status: 'INCOMPLETE', redrive: true, remaining: 2, arraySize: 2 } : {},
          2,
        )(e),
    });
    expect(r.error).toBeUndefined();
    expect(r.output).toEqual(stubs[STATES.finalize]!({ jobId: 'job-1' } as never));
    expect(named(r.calls)).toEqual([
      STATES.plan,
      STATES.workGpuArray,
      STATES.verify,
      STATES.workGpuArray,
      STATES.verify,
      STATES.blendRange,
      STATES.blendRange,
      STATES.pyramidLevel,
      STATES.finalize,
    ]);
    // The first round starts the plan's fleet; the re-drive only what Verify asked for.
    expect(r.calls[1]![1]).toMatchObject({
      ArrayProperties: { Size: 5 },
      Parameters: { jobId: 'job-1' },
    });
    expect(r.calls[3]![1]).toMatchObject({ ArrayProperties: { Size: 2 } });
    // Verify sees the round's Batch job (id and status only, not the whole description).
    const batch = { JobId: 'batch-gpu-array', Status: 'SUCCEEDED' };
    expect(r.calls.filter(([n]) => n === STATES.verify).map(([, i]) => i)).toEqual([
      { jobId: 'job-1', round: 1, batch },
      { jobId: 'job-1', round: 2, batch },
    ]);
  });

  it('a re-drive with one chunk left submits a single job, not the array', async () => {
    let rounds = 0;
    const r = await run({
      [STATES.plan]: planned('cpu', 40, 0),
      [STATES.verify]: (e: VerifyTaskEvent) =>
        verdict(
          ++rounds < 2 ? { status: 'INCOMPLETE', redrive: true, remaining: 1, arraySize: 1 } : {},
        )(e),
    });
    expect(r.error).toBeUndefined();
    expect(named(r.calls)).toEqual([
      STATES.plan,
      STATES.workCpuArray,
      STATES.verify,
      STATES.workCpu,
      STATES.verify,
      STATES.pyramidLevel,
      STATES.finalize,
    ]);
    expect(r.calls[1]![1]).toMatchObject({ ArrayProperties: { Size: 40 } });
    expect(r.calls[3]![1]).not.toHaveProperty('ArrayProperties');
    expect((r.calls[4]![1] as VerifyTaskEvent).batch).toEqual({
      JobId: 'batch-cpu',
      Status: 'SUCCEEDED',
    });
  });

  it('one worker on CPU: a non-array job; no seams: straight to Finalize', async () => {
    const r = await run({ [STATES.plan]: planned('cpu', 1, 0), [STATES.verify]: verdict({}) });
    expect(r.error).toBeUndefined();
    expect(named(r.calls)).toEqual([
      STATES.plan,
      STATES.workCpu,
      STATES.verify,
      STATES.pyramidLevel,
      STATES.finalize,
    ]);
    expect(r.calls[1]![1]).not.toHaveProperty('ArrayProperties');
  });

  it('a pyramid of 2 levels: the range tasks of each level, then the next level, then Finalize', async () => {
    // Level 1: 3 tasks of 256 blocks; level 2: 1 task; level 3 does not exist.
    const starts: Record<number, number[]> = { 1: [0, 256, 512], 2: [0] };
    const r = await run({
      [STATES.plan]: planned('cpu', 1, 0),
      [STATES.verify]: verdict({}),
      [STATES.pyramidLevel]: (e: PyramidLevelEvent): PyramidLevelResult => ({
        jobId: e.jobId,
        level: e.level,
        done: starts[e.level] === undefined,
        blocksPerTask: 256,
        starts: starts[e.level] ?? [],
      }),
      [STATES.pyramidRange]: (e: PyramidRangeEvent): PyramidRangeResult => ({
        jobId: e.jobId,
        level: e.level,
        written: e.blocks,
      }),
    });
    expect(r.error).toBeUndefined();
    expect(named(r.calls)).toEqual([
      STATES.plan,
      STATES.workCpu,
      STATES.verify,
      STATES.pyramidLevel,
      STATES.pyramidRange,
      STATES.pyramidRange,
      STATES.pyramidRange,
      STATES.pyramidLevel,
      STATES.pyramidRange,
      STATES.pyramidLevel,
      STATES.finalize,
    ]);
    const events = (n: string) => r.calls.filter(([c]) => c === n).map(([, e]) => e);
    expect(events(STATES.pyramidLevel)).toEqual(
      [1, 2, 3].map((level) => ({ step: 'level', jobId: 'job-1', level })),
    );
    const ranges = events(STATES.pyramidRange) as PyramidRangeEvent[];
    expect(ranges.sort((a, b) => a.level - b.level || a.from - b.from)).toEqual([
      { step: 'range', jobId: 'job-1', level: 1, from: 0, blocks: 256 },
      { step: 'range', jobId: 'job-1', level: 1, from: 256, blocks: 256 },
      { step: 'range', jobId: 'job-1', level: 1, from: 512, blocks: 256 },
      { step: 'range', jobId: 'job-1', level: 2, from: 0, blocks: 256 },
    ]);
  });

  it('poison chunks: MarkFailed records the reason and the execution fails with it', async () => {
    const reason = '1 chunk(s) failed every attempt:\nchunk 0_0_0: 3 attempts; last error: boom';
    const r = await run({
      [STATES.plan]: planned('cpu', 4, 1),
      [STATES.verify]: verdict({ status: 'FAILED', reason }),
    });
    expect(r.error?.cause?.name).toBe(PIPELINE_ERROR);
    expect(r.error?.message).toContain('chunk 0_0_0');
    expect(r.calls.at(-1)).toEqual([
      STATES.markFailed,
      { jobId: 'job-1', manifest: input.manifest, reason },
    ]);
    expect(named(r.calls)).not.toContain(STATES.finalize);
  });

  it('a failed Batch job goes on to Verify, which decides', async () => {
    const r = await run({
      [STATES.plan]: planned('gpu', 1, 0),
      [STATES.workGpu]: () => {
        throw Object.assign(new Error('Array child 3 failed'), { name: 'States.TaskFailed' });
      },
      [STATES.verify]: verdict({}),
    });
    expect(r.error).toBeUndefined();
    expect(named(r.calls)).toEqual([
      STATES.plan,
      STATES.workGpu,
      STATES.verify,
      STATES.pyramidLevel,
      STATES.finalize,
    ]);
    // The catch output ({Error, Cause}; on AWS, Cause is the job description) reaches Verify.
    expect((r.calls[2]![1] as VerifyTaskEvent).batch).toEqual({
      Error: 'States.TaskFailed',
      Cause: 'Array child 3 failed',
    });
  });

  it('a planner error reaches MarkFailed with the manifest and the error', async () => {
    const r = await run({
      [STATES.plan]: () => {
        throw Object.assign(new Error('input.url: bucket "x" is not allowed'), {
          name: 'ManifestError',
        });
      },
    });
    expect(r.error?.cause?.name).toBe(PIPELINE_ERROR);
    expect(r.calls.at(-1)).toEqual([
      STATES.markFailed,
      {
        manifest: input.manifest,
        error: { Error: 'ManifestError', Cause: 'input.url: bucket "x" is not allowed' },
      },
    ]);
  });

  it('if MarkFailed itself fails, the execution still fails with what it was recording', async () => {
    const r = await run({
      [STATES.plan]: planned('cpu', 2, 0),
      [STATES.verify]: verdict({ status: 'FAILED', reason: 'chunk 7 is poison' }),
      [STATES.markFailed]: () => {
        throw new Error('S3 unavailable');
      },
    });
    expect(r.error?.cause?.name).toBe(PIPELINE_ERROR);
    expect(r.error?.message).toContain('chunk 7 is poison');
  });
});

describe('outputs and monitoring', () => {
  it('exports bucket, table, state machine and queue ARNs', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: unknown }>;
    expect(outputs.BucketName!.Value).toEqual({ Ref: logicalId(stack.storage.bucket) });
    expect(outputs.TableName!.Value).toEqual({ Ref: logicalId(stack.storage.table) });
    expect(outputs.StateMachineArn!.Value).toEqual({ Ref: logicalId(stack.pipeline.stateMachine) });
    expect(outputs.GpuQueueArn!.Value).toEqual({
      'Fn::GetAtt': [logicalId(stack.compute.gpuQueue), 'JobQueueArn'],
    });
    expect(outputs.CpuQueueArn!.Value).toEqual({
      'Fn::GetAtt': [logicalId(stack.compute.cpuQueue), 'JobQueueArn'],
    });
    expect(outputs.HybridWorkerRoleArn!.Value).toEqual({
      'Fn::GetAtt': [logicalId(stack.workers.hybridRole), 'Arn'],
    });
  });

  it('alarms on failed executions and planner errors; blocked queues and alarms reach the e-mail topic', () => {
    const topic = logicalId(stack.monitoring.topic);
    const alarms = ofType('AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
    const failed = alarms.find((a) => a.MetricName === 'ExecutionsFailed');
    expect(failed).toMatchObject({ Namespace: 'AWS/States', AlarmActions: [{ Ref: topic }] });
    expect(alarms.find((a) => a.MetricName === 'Errors')).toBeDefined();
    const [, rule] = ofType('AWS::Events::Rule')[0]!;
    expect(rule.Properties.EventPattern).toMatchObject({
      source: ['aws.batch'],
      'detail-type': ['Batch Job Queue Blocked'],
    });
    expect(JSON.stringify(rule.Properties.Targets)).toContain(`"Ref":"${topic}"`);
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: KNOBS.alarmEmail,
    });
    expect(ofType('AWS::CloudWatch::Dashboard')).toHaveLength(1);
  });

  it("the topic policy lets this account's CloudWatch alarms publish (it replaces SNS's default), and EventBridge", () => {
    const topic = logicalId(stack.monitoring.topic);
    const policies = ofType('AWS::SNS::TopicPolicy').filter(([, p]) =>
      mentions(p.Properties.Topics, topic),
    );
    expect(policies).toHaveLength(1);
    const stmts = (
      policies[0]![1].Properties.PolicyDocument as {
        Statement: Array<
          Statement & { Principal?: unknown; Condition?: Record<string, Record<string, unknown>> }
        >;
      }
    ).Statement;
    const by = (service: string) =>
      stmts.filter(
        (s) =>
          s.Effect === 'Allow' &&
          JSON.stringify(s.Principal) === JSON.stringify({ Service: service }),
      );
    const cloudwatch = by('cloudwatch.amazonaws.com');
    expect(cloudwatch).toHaveLength(1);
    expect(cloudwatch[0]!.Action).toBe('sns:Publish');
    expect(cloudwatch[0]!.Resource).toEqual({ Ref: topic });
    expect(cloudwatch[0]!.Condition!.StringEquals).toEqual({
      'aws:SourceAccount': { Ref: 'AWS::AccountId' },
    });
    expect(JSON.stringify(cloudwatch[0]!.Condition!.ArnLike!['aws:SourceArn'])).toMatch(
      /":cloudwatch:",\{"Ref":"AWS::Region"\},":",\{"Ref":"AWS::AccountId"\},":alarm:\*"/,
    );
    expect(by('events.amazonaws.com')).toHaveLength(1);
    // Nobody else may publish: the only other statement is the TLS-only deny.
    expect(stmts.filter((s) => s.Effect === 'Allow')).toHaveLength(2);
  });

  it('every alarm notifies the topic', () => {
    const topic = logicalId(stack.monitoring.topic);
    const alarms = ofType('AWS::CloudWatch::Alarm');
    expect(alarms.length).toBeGreaterThanOrEqual(5);
    for (const [id, a] of alarms) expect(a.Properties.AlarmActions, id).toEqual([{ Ref: topic }]);
  });

  it('no progress: the watchdog runs every 5 minutes and its StalledJobs metric (Maximum ≥ 1) alarms', () => {
    const watchdog = logicalId(stack.functions.fns.watchdog);
    const rule = resources[logicalId(stack.monitoring.watchdogSchedule)]!.Properties;
    expect(rule.ScheduleExpression).toBe('rate(5 minutes)');
    expect(WATCHDOG_PERIOD.toMinutes()).toBe(5);
    expect(JSON.stringify(rule.Targets)).toContain(`{"Fn::GetAtt":["${watchdog}","Arn"]}`);
    template.hasResourceProperties('AWS::Lambda::Permission', {
      Action: 'lambda:InvokeFunction',
      FunctionName: { 'Fn::GetAtt': [watchdog, 'Arn'] },
      Principal: 'events.amazonaws.com',
    });
    const stalled = resources[logicalId(stack.monitoring.stalledAlarm)]!.Properties;
    expect(stalled).toMatchObject({
      Namespace: 'Tessera',
      MetricName: 'StalledJobs',
      Dimensions: [{ Name: 'service', Value: 'tessera' }],
      Statistic: 'Maximum',
      Period: 300,
      Threshold: 1,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      AlarmActions: [{ Ref: logicalId(stack.monitoring.topic) }],
    });
    // The watchdog publishes exactly what the alarm watches.
    expect(STALL_METRIC).toEqual({
      namespace: 'Tessera',
      name: 'StalledJobs',
      dimensions: { service: 'tessera' },
    });
    const dashboard = JSON.stringify(
      resources[logicalId(stack.monitoring.dashboard)]!.Properties.DashboardBody,
    );
    expect(dashboard).toContain('StalledJobs');
  });

  it('the watchdog gets the state machine, the stall bound and the stack environment', () => {
    const env = (
      resources[logicalId(stack.functions.fns.watchdog)]!.Properties.Environment as {
        Variables: Record<string, unknown>;
      }
    ).Variables;
    expect(env[ENV.stallMinutes]).toBe(String(KNOBS.stallMinutes));
    expect(env[ENV.table]).toEqual({ Ref: logicalId(stack.storage.table) });
    expect(env[ENV.bucket]).toEqual({ Ref: logicalId(stack.storage.bucket) });
    const name = resources[logicalId(stack.pipeline.stateMachine)]!.Properties.StateMachineName;
    expect(JSON.stringify(env[ENV.stateMachineArn])).toContain(`:stateMachine:${name}`);
    const a = appFor();
    const s = new TesseraStack(a, 'Patient', { knobs: { ...KNOBS, stallMinutes: 180 } });
    Template.fromStack(s).hasResourceProperties('AWS::Lambda::Function', {
      Environment: { Variables: Match.objectLike({ [ENV.stallMinutes]: '180' }) },
    });
  });
});

describe('cdk-nag', () => {
  it('AwsSolutions: zero unacknowledged findings', () => {
    const { violations } = new AwsSolutionsChecks().validateScope(stack);
    expect(
      violations.map(
        (v) => `${v.ruleName} at ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
      ),
    ).toEqual([]);
  });

  it('every acknowledgment carries a written reason', () => {
    const acks: Array<[string, string]> = [];
    for (const c of stack.node.findAll()) {
      for (const m of c.node.metadata) {
        if (m.type === Validations.ACKNOWLEDGED_RULES_METADATA_KEY) {
          for (const [id, reason] of Object.entries(m.data as Record<string, string>))
            acks.push([id, reason]);
        }
      }
    }
    expect(acks.length).toBeGreaterThan(0);
    for (const [id, reason] of acks) expect(reason.length, id).toBeGreaterThan(40);
  });

  it('the plugin does stop a synth on an unacknowledged finding', () => {
    const a = appFor();
    const s = new Stack(a, 'Sloppy');
    new s3.Bucket(s, 'NoLogsNoTls');
    Validations.of(a).addPlugins(new AwsSolutionsChecks(a));
    expect(() => a.synth()).toThrow();
  });
});

describe('variants', () => {
  it('natGateways 0: no NAT, Fargate workers get a public IP', () => {
    const a = appFor();
    const s = new Stack(a, 'NoNat');
    const storage = new Storage(s, 'Storage', {
      partialsExpireDays: 7,
      allowedBuckets: [],
      retain: false,
    });
    const network = new Network(s, 'Network', { natGateways: 0, flowLogBucket: storage.logBucket });
    new Workers(s, 'Workers', {
      storage,
      timeout: Duration.hours(DEFAULT_KNOBS.workerTimeoutHours),
      assignPublicIp: network.publicWorkers,
    });
    const t = Template.fromStack(s);
    t.resourceCountIs('AWS::EC2::NatGateway', 0);
    t.hasResourceProperties('AWS::Batch::JobDefinition', {
      PlatformCapabilities: ['FARGATE'],
      ContainerProperties: { NetworkConfiguration: { AssignPublicIp: 'ENABLED' } },
    });
  });
});

describe('worker containers', () => {
  type Instruction = { op: string; args: string; stage: number };
  const parseDockerfile = (file: string): Instruction[] => {
    const text = readFileSync(join(REPO_ROOT, file), 'utf8').replace(/\\\r?\n/g, ' ');
    let stage = -1;
    return text
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter((l) => l !== '' && !l.startsWith('#'))
      .map((l) => {
        const [op = '', ...rest] = l.split(/\s+/);
        if (op.toUpperCase() === 'FROM') stage++;
        return { op: op.toUpperCase(), args: rest.join(' '), stage };
      });
  };
  const finalStage = (ins: Instruction[]) => {
    const last = Math.max(...ins.map((i) => i.stage));
    return ins.filter((i) => i.stage === last);
  };
  const dockerignore = readFileSync(join(REPO_ROOT, '.dockerignore'), 'utf8')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const ignore = IgnoreStrategy.docker(REPO_ROOT, dockerignore);
  const ignored = (path: string) => ignore.ignores(join(REPO_ROOT, path));
  const copySources = (ins: Instruction[]) =>
    ins
      .filter((i) => i.op === 'COPY' && !i.args.startsWith('--from'))
      .flatMap((i) =>
        i.args
          .split(/\s+/)
          .filter((a) => !a.startsWith('--'))
          .slice(0, -1),
      );

  it.each(Object.values(WORKER_DOCKERFILES))(
    '%s: every COPY source exists and is in the build context',
    (file) => {
      const sources = copySources(parseDockerfile(file));
      expect(sources.length).toBeGreaterThan(3);
      for (const src of sources) {
        expect(existsSync(join(REPO_ROOT, src)), src).toBe(true);
        expect(ignored(src), `${src} is excluded by .dockerignore`).toBe(false);
      }
    },
  );

  it.each(Object.values(WORKER_DOCKERFILES))(
    '%s: runs `tessera worker` as a non-root user',
    (file) => {
      const last = finalStage(parseDockerfile(file));
      const one = (op: string) => last.filter((i) => i.op === op).at(-1)?.args;
      expect(JSON.parse(one('ENTRYPOINT')!)).toEqual(['node', 'bin/tessera.js']);
      expect(JSON.parse(one('CMD')!)).toEqual(['worker']);
      const user = one('USER');
      expect(user).toBeDefined();
      expect(user).not.toMatch(/^(root|0)(:|$)/);
      const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'));
      expect(pkg.bin.tessera).toBe('bin/tessera.js');
      // bin/tessera.js registers tsx at startup: it must survive `npm ci --omit=dev`.
      expect(pkg.dependencies.tsx).toBeDefined();
      expect(readFileSync(join(REPO_ROOT, 'cli/main.ts'), 'utf8')).toMatch(/case 'worker':/);
    },
  );

  it('CPU image: glibc Node 22, production dependencies only, no CUDA download', () => {
    const ins = parseDockerfile(WORKER_DOCKERFILES.cpu);
    for (const from of ins.filter((i) => i.op === 'FROM'))
      expect(from.args).toMatch(/^node:22-bookworm-slim\b/);
    expect(ins.some((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args))).toBe(true);
    expect(ins.some((i) => i.op === 'ENV' && /ONNXRUNTIME_NODE_INSTALL=skip/.test(i.args))).toBe(
      true,
    );
  });

  it("CUDA image: CUDA 12 + cuDNN runtime base, onnxruntime-node's CUDA 12 provider installed at build", () => {
    const ins = parseDockerfile(WORKER_DOCKERFILES.gpu);
    expect(finalStage(ins)[0]!.args).toMatch(
      /^nvidia\/cuda:12\.\d+(\.\d+)?-cudnn-runtime-ubuntu\d+\.\d+$/,
    );
    const env = ins.find((i) => i.op === 'ENV' && i.args.includes('ONNXRUNTIME_NODE_INSTALL='));
    const value = /ONNXRUNTIME_NODE_INSTALL=(\S+)/.exec(env!.args)![1]!;
    // The value onnxruntime-node's postinstall (script/install.js) accepts for linux/x64.
    const require = createRequire(import.meta.url);
    const metadata = require('onnxruntime-node/script/install-metadata.js') as {
      requirements: Record<string, string[]>;
    };
    expect(metadata.requirements['linux/x64']).toContain(value);
    const install = ins.find((i) => i.op === 'RUN' && /npm ci --omit=dev/.test(i.args))!;
    expect(install.stage).toBe(env!.stage);
  });

  it('.dockerignore keeps node_modules, tests, .git and cdk.out out; the context stays small', () => {
    for (const p of [
      'node_modules/zod/package.json',
      'test/unit/cdk-stack.test.ts',
      '.git/HEAD',
      'cdk.out/manifest.json',
      'core/node_modules/x.js',
    ]) {
      expect(ignored(p), p).toBe(true);
    }
    let bytes = 0;
    const walk = (dir: string): void => {
      for (const e of readdirSync(join(REPO_ROOT, dir), { withFileTypes: true })) {
        const rel = dir === '' ? e.name : `${dir}/${e.name}`;
        if (e.isDirectory()) {
          if (!ignored(`${rel}/`) || dockerignore.some((l) => l.startsWith(`!${rel}/`))) walk(rel);
        } else if (!ignored(rel)) {
          bytes += statSync(join(REPO_ROOT, rel)).size;
        }
      }
    };
    walk('');
    expect(bytes).toBeLessThan(20 * 1024 * 1024);
  });
});

describe('worker containers run under an init process', () => {
  it('both job definitions set InitProcessEnabled (a self-SIGKILL of PID 1 would be ignored)', () => {
    const defs = Template.fromStack(stack).findResources('AWS::Batch::JobDefinition');
    const flags = Object.values(defs).map(
      (d) =>
        (
          d as {
            Properties: {
              ContainerProperties: { LinuxParameters?: { InitProcessEnabled?: boolean } };
            };
          }
        ).Properties.ContainerProperties.LinuxParameters?.InitProcessEnabled,
    );
    expect(flags).toEqual([true, true]);
  });
});
