// The calls AWS services make on the stack's behalf, as AWS documents them for each
// integration, checked against the synthesized template like the components' own calls.
// They are read from what the template contains (the state machine definition's Task
// resources, ItemReader and ResultWriter; the alarms' actions; the rules' targets; the
// bucket's notification configuration), not from a list of what this stack should need:
//
//   Step Functions, as the state machine's role
//     Lambda task                lambda:InvokeFunction on the function
//     batch:submitJob(.sync)     batch:SubmitJob on the queue and the job definition;
//                                .sync also batch:DescribeJobs, batch:TerminateJob and
//                                events:PutTargets/PutRule/DescribeRule on the managed rule
//                                StepFunctionsGetEventsForBatchJobsRule
//     states:startExecution(.sync)  states:StartExecution; .sync also Describe/StopExecution
//                                and the StepFunctionsGetEventsForStepFunctionsExecutionRule rule
//     Distributed Map            states:StartExecution on its own state machine,
//                                states:DescribeExecution/StopExecution on its executions;
//                                ItemReader s3:getObject → s3:GetObject on the items object
//                                (listObjectsV2 → s3:ListBucket); ResultWriter s3:putObject →
//                                s3:PutObject, s3:GetObject, s3:ListMultipartUploadParts,
//                                s3:AbortMultipartUpload under the prefix (bucket policy too)
//     tracing enabled            xray:PutTraceSegments, PutTelemetryRecords, GetSampling*
//   CloudWatch alarm → SNS       cloudwatch.amazonaws.com sns:Publish on the topic, against
//                                the topic policy (a TopicPolicy replaces the default
//                                policy), aws:SourceArn = the alarm, aws:SourceAccount
//   EventBridge rule → SNS / Lambda  events.amazonaws.com sns:Publish / lambda:InvokeFunction,
//                                aws:SourceArn = the rule; a target with a RoleArn: that role
//   EventBridge Scheduler → target   the schedule's role (identity policy)
//   S3 notification → Lambda/SNS s3.amazonaws.com lambda:InvokeFunction (Lambda permissions)
//                                / sns:Publish, aws:SourceArn = the bucket, aws:SourceAccount
//   Role trust                   each service can assume the role it is given (states,
//                                lambda, ecs-tasks for Batch job roles, scheduler)
//
// Paths in the definition (Bucket.$, Key.$, Prefix.$ with States.Format) are evaluated
// against a sample state input (a concrete job id), so "any job" is checked on one.

import { KEYS } from '../../../contracts/cloud.ts';
import { type CfnContext, resolveCfn, resolveString } from '../cfn.ts';
import {
  bucketPolicy,
  type CfnResource,
  type CfnTemplate,
  lambdaPolicy,
  type NamedPolicy,
  type PolicyDocument,
  roleIdForArn,
  rolePolicies,
  topicPolicy,
} from './policies.ts';
import { authorize, type Denial } from './simulate.ts';

/** Where AWS documents each service-side permission (Step Functions / SNS / S3 / Lambda guides). */
export const SOURCES = {
  batchSync:
    'Step Functions developer guide, "IAM policies for AWS Batch" (https://docs.aws.amazon.com/step-functions/latest/dg/batch-iam.html)',
  lambda:
    'Step Functions developer guide, "IAM policies for AWS Lambda" (https://docs.aws.amazon.com/step-functions/latest/dg/lambda-iam.html)',
  nested:
    'Step Functions developer guide, "IAM policies for AWS Step Functions" (https://docs.aws.amazon.com/step-functions/latest/dg/stepfunctions-iam.html)',
  distributedMap:
    'Step Functions developer guide, "IAM policies for using Distributed Map states" (https://docs.aws.amazon.com/step-functions/latest/dg/iam-policies-eg-dist-map.html)',
  resultWriter:
    'Step Functions developer guide, "ResultWriter (Map)" and "IAM policies for using Distributed Map states" (https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultwriter.html)',
  xray: 'Step Functions developer guide, "AWS X-Ray and Step Functions" (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-xray-tracing.html)',
  alarmToSns:
    'AWS re:Post knowledge center "CloudWatch alarm does not send SNS notification" (https://repost.aws/knowledge-center/cloudwatch-receive-sns-for-alarm-trigger) and SNS developer guide "Example cases for Amazon SNS access control" (https://docs.aws.amazon.com/sns/latest/dg/sns-access-policy-use-cases.html)',
  eventsTarget:
    'EventBridge user guide, "Using resource-based policies for Amazon EventBridge" (https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-use-resource-based.html)',
  scheduler:
    'EventBridge Scheduler user guide, "Setting up the execution role" (https://docs.aws.amazon.com/scheduler/latest/UserGuide/setting-up.html#setting-up-execution-role)',
  s3Notification:
    'S3 user guide, "Granting permissions to publish event notification messages to a destination" (https://docs.aws.amazon.com/AmazonS3/latest/userguide/grant-destinations-permissions-to-s3.html)',
  trust:
    'IAM user guide, "Creating a role to delegate permissions to an AWS service" (https://docs.aws.amazon.com/IAM/latest/UserGuide/id_roles_create_for-service.html)',
  encryptedTopic:
    'SNS developer guide, "Enable compatibility between event sources from AWS services and encrypted topics" (https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services)',
} as const;

export interface ServiceSideCall {
  /** Who acts, e.g. "Step Functions (PipelineStateMachine1814BD05)" or "CloudWatch alarm X". */
  component: string;
  /** The role's logical id, or the resource policy that must allow a service principal. */
  role: string;
  /** A role ARN or a service principal. */
  principal: string;
  action: string;
  resource: string;
  context: Record<string, string | string[]>;
  identity: NamedPolicy[];
  boundary?: NamedPolicy[] | undefined;
  resourcePolicy?: NamedPolicy | undefined;
  source: string;
  /** Set when the call could not be determined from the template (reported as a denial). */
  problem?: string;
}

export interface ServiceSideOptions {
  template: CfnTemplate;
  ctx: CfnContext;
  /** The job the definition's paths are evaluated for (default "job-0001"). */
  sampleJobId?: string;
  /** The state input paths ($.plan.bucket, …) are evaluated against; default: a Plan result. */
  sampleInput?: unknown;
}

type Res = [string, CfnResource];
const ofType = (t: CfnTemplate, type: string): Res[] =>
  Object.entries(t.Resources).filter(([, r]) => r.Type === type);
const list = <T>(x: T | T[] | undefined): T[] =>
  x === undefined ? [] : Array.isArray(x) ? x : [x];
const SAMPLE_UUID = '00000000-0000-4000-8000-000000000001';

/** The calls AWS makes for this template, each with the policies that decide it. */
export function serviceSideCalls(o: ServiceSideOptions): ServiceSideCall[] {
  const { template, ctx } = o;
  const jobId = o.sampleJobId ?? 'job-0001';
  const sampleInput = o.sampleInput ?? defaultSampleInput(template, ctx, jobId);
  const out: ServiceSideCall[] = [];
  for (const sm of ofType(template, 'AWS::StepFunctions::StateMachine'))
    out.push(...stateMachineCalls(template, ctx, sm, sampleInput));
  out.push(...alarmCalls(template, ctx));
  out.push(...ruleCalls(template, ctx));
  out.push(...scheduleCalls(template, ctx));
  out.push(...notificationCalls(template, ctx));
  out.push(...trustCalls(template, ctx));
  // Several states can need the same permission (four Batch tasks, one queue each pair).
  const seen = new Set<string>();
  return out.filter((c) => {
    const k = JSON.stringify([
      c.component,
      c.principal,
      c.action,
      c.resource,
      c.context,
      c.problem,
    ]);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  });
}

/** serviceSideCalls, evaluated: every one the template would refuse. */
export async function serviceSideChecks(o: ServiceSideOptions): Promise<Denial[]> {
  const denials: Denial[] = [];
  for (const c of serviceSideCalls(o)) {
    const base = { component: c.component, role: c.role, action: c.action, resource: c.resource };
    if (c.problem) {
      denials.push({ ...base, reason: `${c.problem} (${c.source})` });
      continue;
    }
    const reason = await authorize({
      principal: c.principal,
      action: c.action,
      resource: c.resource,
      identity: c.identity,
      boundary: c.boundary,
      resourcePolicy: c.resourcePolicy,
      context: c.context,
      account: resourceAccount(c.resource, o.ctx.account),
    });
    if (reason) denials.push({ ...base, reason: `${reason} — required by ${c.source}` });
  }
  return denials;
}

/** The account in an ARN (S3 ARNs carry none: the bucket is the stack's, in its account). */
function resourceAccount(arn: string, fallback: string): string {
  const a = arn.split(':')[4];
  return a && /^\d{12}$/.test(a) ? a : fallback;
}

/** What the Plan task leaves in the state for the tasks after it (its ResultSelector). */
function defaultSampleInput(template: CfnTemplate, ctx: CfnContext, jobId: string): unknown {
  const bucketRef = (template.Outputs?.BucketName?.Value as { Ref?: string } | undefined)?.Ref;
  const bucket = bucketRef ? ctx.physical[bucketRef]?.ref : undefined;
  return {
    manifest: { bucket, key: `manifests/${jobId}.json` },
    plan: {
      jobId,
      bucket,
      blendItemsKey: KEYS.blendItems(jobId),
      blendResultsPrefix: KEYS.blendResults(jobId),
      arraySize: 2,
      device: 'gpu',
    },
    work: { round: 0, arraySize: 2 },
  };
}

// --- Step Functions ----------------------------------------------------------------------

interface AslState {
  Type: string;
  Resource?: string;
  Parameters?: Record<string, unknown>;
  Arguments?: unknown;
  ItemReader?: {
    Resource?: string;
    Parameters?: Record<string, unknown>;
    ReaderConfig?: Record<string, unknown>;
  };
  ResultWriter?: { Resource?: string; Parameters?: Record<string, unknown> };
  ItemProcessor?: { ProcessorConfig?: { Mode?: string }; States: Record<string, AslState> };
  Iterator?: { States: Record<string, AslState> };
  Branches?: { States: Record<string, AslState> }[];
}

function stateMachineCalls(
  template: CfnTemplate,
  ctx: CfnContext,
  [smId, sm]: Res,
  input: unknown,
): ServiceSideCall[] {
  const p = sm.Properties ?? {};
  const component = `Step Functions (${smId})`;
  const smArn = ctx.physical[smId]?.ref ?? '';
  const smName = smArn.split(':stateMachine:')[1] ?? smId;
  const roleArn = resolveCfn(p.RoleArn, ctx);
  const roleId = typeof roleArn === 'string' ? roleIdForArn(template, ctx, roleArn) : undefined;
  const out: ServiceSideCall[] = [];
  if (!roleId) {
    return [
      {
        component,
        role: '(none)',
        principal: 'states.amazonaws.com',
        action: 'sts:AssumeRole',
        resource: String(roleArn),
        context: {},
        identity: [],
        source: SOURCES.trust,
        problem: `the state machine's RoleArn ${JSON.stringify(roleArn)} is not a role of this template`,
      },
    ];
  }
  const role = rolePolicies(template, ctx, roleId);
  const arn = (service: string, resource: string) =>
    `arn:${ctx.partition}:${service}:${ctx.region}:${ctx.account}:${resource}`;
  const call = (
    action: string,
    resource: string,
    source: string,
    extra: Partial<ServiceSideCall> = {},
  ): void => {
    out.push({
      component,
      role: roleId,
      principal: role.roleArn,
      action,
      resource,
      context: { 'aws:SecureTransport': 'true' },
      identity: role.identity,
      boundary: role.boundary,
      source,
      ...extra,
    });
  };
  const problem = (action: string, what: string, source: string) =>
    call(action, '*', source, { problem: what });
  const s3Call = (
    action: string,
    bucket: string,
    key: string,
    source: string,
    conditions: Record<string, string> = {},
  ) =>
    call(
      action,
      key === ''
        ? `arn:${ctx.partition}:s3:::${bucket}`
        : `arn:${ctx.partition}:s3:::${bucket}/${key}`,
      source,
      {
        context: { 'aws:SecureTransport': 'true', ...conditions },
        resourcePolicy: bucketPolicy(template, ctx, bucket),
      },
    );

  let definition: { States: Record<string, AslState> };
  try {
    definition = parseDefinition(p, ctx);
  } catch (e) {
    problem(
      'states:*',
      `cannot read the definition: ${e instanceof Error ? e.message : String(e)}`,
      SOURCES.nested,
    );
    return out;
  }

  const task = (name: string, s: AslState): void => {
    const r = s.Resource ?? '';
    const params = s.Parameters ?? {};
    const value = (k: string): string | undefined => parameter(params, k, input);
    const integration =
      /^arn:[^:]+:states:::([^:]+):([^.]+)(\.sync(?::2)?|\.waitForTaskToken)?$/.exec(r);
    if (/^arn:[^:]+:lambda:/.test(r)) {
      call('lambda:InvokeFunction', r, SOURCES.lambda);
      return;
    }
    if (!integration) {
      problem(
        '?',
        `task ${name}: resource ${r} is not an integration the twin models`,
        SOURCES.nested,
      );
      return;
    }
    const [, service, api, pattern] = integration;
    const sync = pattern?.startsWith('.sync') ?? false;
    if (s.Arguments !== undefined) {
      problem('?', `task ${name}: JSONata Arguments are not evaluated by the twin`, SOURCES.nested);
      return;
    }
    if (service === 'lambda' && api === 'invoke') {
      const fn = value('FunctionName');
      if (!fn)
        problem(
          'lambda:InvokeFunction',
          `task ${name}: FunctionName is not known before run time`,
          SOURCES.lambda,
        );
      else
        call(
          'lambda:InvokeFunction',
          fn.startsWith('arn:') ? fn : arn('lambda', `function:${fn}`),
          SOURCES.lambda,
        );
      return;
    }
    if (service === 'batch' && api === 'submitJob') {
      const queue = value('JobQueue');
      const def = value('JobDefinition');
      const batchArn = (kind: string, v: string) =>
        v.startsWith('arn:') ? v : arn('batch', `${kind}/${v}`);
      if (!queue || !def)
        problem(
          'batch:SubmitJob',
          `task ${name}: JobQueue/JobDefinition are not known before run time`,
          SOURCES.batchSync,
        );
      else {
        call('batch:SubmitJob', batchArn('job-queue', queue), SOURCES.batchSync);
        call('batch:SubmitJob', batchArn('job-definition', def), SOURCES.batchSync);
      }
      if (sync) {
        call('batch:DescribeJobs', '*', SOURCES.batchSync);
        call('batch:TerminateJob', arn('batch', `job/${SAMPLE_UUID}`), SOURCES.batchSync);
        for (const a of ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'])
          call(a, arn('events', 'rule/StepFunctionsGetEventsForBatchJobsRule'), SOURCES.batchSync);
      }
      return;
    }
    if (service === 'states' && api === 'startExecution') {
      const target = value('StateMachineArn');
      if (!target) {
        problem(
          'states:StartExecution',
          `task ${name}: StateMachineArn is not known before run time`,
          SOURCES.nested,
        );
        return;
      }
      call('states:StartExecution', target, SOURCES.nested);
      if (sync) {
        const targetName = target.split(':stateMachine:')[1] ?? '';
        for (const a of ['states:DescribeExecution', 'states:StopExecution'])
          call(a, arn('states', `execution:${targetName}:${SAMPLE_UUID}`), SOURCES.nested);
        for (const a of ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'])
          call(
            a,
            arn('events', 'rule/StepFunctionsGetEventsForStepFunctionsExecutionRule'),
            SOURCES.nested,
          );
      }
      return;
    }
    if (service === 'sns' && api === 'publish') {
      const topic = value('TopicArn');
      if (!topic)
        problem(
          'sns:Publish',
          `task ${name}: TopicArn is not known before run time`,
          SOURCES.nested,
        );
      else
        call('sns:Publish', topic, SOURCES.nested, {
          resourcePolicy: topicPolicy(template, ctx, topic),
        });
      return;
    }
    if (
      service === 'dynamodb' &&
      ['getItem', 'putItem', 'updateItem', 'deleteItem'].includes(api ?? '')
    ) {
      const table = value('TableName');
      const action = `dynamodb:${api!.charAt(0).toUpperCase()}${api!.slice(1)}`;
      if (!table)
        problem(action, `task ${name}: TableName is not known before run time`, SOURCES.nested);
      else
        call(
          action,
          table.startsWith('arn:') ? table : arn('dynamodb', `table/${table}`),
          SOURCES.nested,
        );
      return;
    }
    problem('?', `task ${name}: integration ${r} is not modelled by the twin`, SOURCES.nested);
  };

  const distributedMap = (name: string, s: AslState): void => {
    call('states:StartExecution', smArn, SOURCES.distributedMap);
    for (const a of ['states:DescribeExecution', 'states:StopExecution'])
      call(a, arn('states', `execution:${smName}:${SAMPLE_UUID}`), SOURCES.distributedMap);
    const reader = s.ItemReader;
    if (reader?.Resource) {
      const rp = reader.Parameters ?? {};
      const bucket = parameter(rp, 'Bucket', input);
      if (!bucket)
        problem(
          's3:GetObject',
          `map ${name}: ItemReader Bucket is not known from the sample input`,
          SOURCES.distributedMap,
        );
      else if (/:s3:getObject$/.test(reader.Resource)) {
        const key = parameter(rp, 'Key', input);
        if (!key)
          problem(
            's3:GetObject',
            `map ${name}: ItemReader Key is not known from the sample input`,
            SOURCES.distributedMap,
          );
        else s3Call('s3:GetObject', bucket, key, SOURCES.distributedMap);
      } else if (/:s3:listObjectsV2$/.test(reader.Resource)) {
        const prefix = optionalParameter(rp, 'Prefix', input);
        if (prefix === undefined)
          problem(
            's3:ListBucket',
            `map ${name}: ItemReader Prefix is not known from the sample input`,
            SOURCES.distributedMap,
          );
        else s3Call('s3:ListBucket', bucket, '', SOURCES.distributedMap, { 's3:prefix': prefix });
      } else
        problem(
          '?',
          `map ${name}: ItemReader ${reader.Resource} is not modelled`,
          SOURCES.distributedMap,
        );
    }
    const writer = s.ResultWriter;
    if (writer?.Resource) {
      const wp = writer.Parameters ?? {};
      const bucket = parameter(wp, 'Bucket', input);
      const prefix = optionalParameter(wp, 'Prefix', input);
      if (!bucket || prefix === undefined)
        problem(
          's3:PutObject',
          `map ${name}: ResultWriter ${bucket ? 'Prefix' : 'Bucket'} is not known from the sample input (${JSON.stringify(wp)})`,
          SOURCES.resultWriter,
        );
      else {
        // Step Functions writes <prefix>/<map run id>/manifest.json and one file per status.
        const key = `${prefix}${prefix === '' || prefix.endsWith('/') ? '' : '/'}${SAMPLE_UUID}/SUCCEEDED_0.json`;
        for (const a of [
          's3:PutObject',
          's3:GetObject',
          's3:ListMultipartUploadParts',
          's3:AbortMultipartUpload',
        ])
          s3Call(a, bucket, key, SOURCES.resultWriter);
      }
    }
  };

  const walk = (states: Record<string, AslState>): void => {
    for (const [name, s] of Object.entries(states)) {
      if (s.Type === 'Task') task(name, s);
      else if (s.Type === 'Map') {
        if (s.ItemProcessor?.ProcessorConfig?.Mode === 'DISTRIBUTED') distributedMap(name, s);
        walk((s.ItemProcessor ?? s.Iterator)?.States ?? {});
      } else if (s.Type === 'Parallel') for (const b of s.Branches ?? []) walk(b.States);
    }
  };
  walk(definition.States);

  if ((resolveCfn(p.TracingConfiguration, ctx) as { Enabled?: boolean } | undefined)?.Enabled)
    for (const a of [
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
    ])
      call(a, '*', SOURCES.xray);
  return out;
}

function parseDefinition(
  p: Record<string, unknown>,
  ctx: CfnContext,
): { States: Record<string, AslState> } {
  const subs = (resolveCfn(p.DefinitionSubstitutions, ctx) ?? {}) as Record<string, unknown>;
  if (p.Definition !== undefined)
    return resolveCfn(p.Definition, ctx) as { States: Record<string, AslState> };
  let text = resolveString(p.DefinitionString, ctx);
  for (const [k, v] of Object.entries(subs)) text = text.split(`\${${k}}`).join(String(v));
  return JSON.parse(text) as { States: Record<string, AslState> };
}

/**
 * A task parameter's value: literal, or a path (`Key.$`) evaluated against the sample
 * input. Supports `$.a.b` and States.Format('…{}…', $.x, …); anything else is unknown.
 */
export function parameter(
  params: Record<string, unknown>,
  key: string,
  input: unknown,
): string | undefined {
  const literal = params[key];
  if (typeof literal === 'string') return literal;
  const expr = params[`${key}.$`];
  if (typeof expr !== 'string') return undefined;
  return evalPath(expr.trim(), input);
}

/** parameter() for an optional field: '' when absent, undefined when given but unknown. */
function optionalParameter(
  params: Record<string, unknown>,
  key: string,
  input: unknown,
): string | undefined {
  if (params[key] === undefined && params[`${key}.$`] === undefined) return '';
  return parameter(params, key, input);
}

function evalPath(expr: string, input: unknown): string | undefined {
  const format = /^States\.Format\(\s*'((?:[^'\\]|\\.)*)'\s*((?:,\s*[^,)]+)*)\)$/.exec(expr);
  if (format) {
    const args = (format[2] ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter((a) => a !== '')
      .map((a) => evalPath(a, input));
    if (args.some((a) => a === undefined)) return undefined;
    let i = 0;
    return (format[1] ?? '').replace(/\\(.)/g, '$1').replace(/\{\}/g, () => String(args[i++]));
  }
  if (!expr.startsWith('$.')) return undefined;
  let v: unknown = input;
  for (const part of expr.slice(2).split('.')) {
    if (v === null || typeof v !== 'object') return undefined;
    v = (v as Record<string, unknown>)[part];
  }
  return typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
}

// --- CloudWatch alarms, EventBridge, Scheduler, S3 notifications ----------------------------

function alarmCalls(template: CfnTemplate, ctx: CfnContext): ServiceSideCall[] {
  const out: ServiceSideCall[] = [];
  for (const [id, a] of [
    ...ofType(template, 'AWS::CloudWatch::Alarm'),
    ...ofType(template, 'AWS::CloudWatch::CompositeAlarm'),
  ]) {
    const alarmArn = ctx.physical[id]?.attrs.Arn ?? '';
    const actions = ['AlarmActions', 'OKActions', 'InsufficientDataActions'].flatMap((k) =>
      list(resolveCfn(a.Properties?.[k], ctx) as string[] | undefined),
    );
    for (const topic of new Set(actions.filter((x) => /^arn:[^:]+:sns:/.test(x))))
      out.push(
        ...snsPublish(
          template,
          ctx,
          `CloudWatch alarm ${id}`,
          'cloudwatch.amazonaws.com',
          topic,
          alarmArn,
          SOURCES.alarmToSns,
        ),
      );
  }
  return out;
}

function snsPublish(
  template: CfnTemplate,
  ctx: CfnContext,
  component: string,
  service: string,
  topic: string,
  sourceArn: string,
  source: string,
): ServiceSideCall[] {
  const policy = topicPolicy(template, ctx, topic);
  const out: ServiceSideCall[] = [
    {
      component,
      role: policy.name,
      principal: service,
      action: 'sns:Publish',
      resource: topic,
      // Services publishing to SNS carry the source account both as aws:SourceAccount and
      // as the older aws:SourceOwner that the topic's default policy tests (SNS developer
      // guide, "aws:SourceAccount and aws:SourceOwner").
      context: {
        'aws:SecureTransport': 'true',
        'aws:SourceArn': sourceArn,
        'aws:SourceAccount': ctx.account,
        'aws:SourceOwner': ctx.account,
      },
      identity: [],
      resourcePolicy: policy,
      source,
    },
  ];
  // An encrypted topic also needs the key to let the service encrypt for it.
  const topicRes = Object.entries(template.Resources).find(
    ([id, r]) => r.Type === 'AWS::SNS::Topic' && ctx.physical[id]?.ref === topic,
  );
  const keyId = topicRes ? resolveCfn(topicRes[1].Properties?.KmsMasterKeyId, ctx) : undefined;
  if (typeof keyId === 'string' && /alias\/aws\/sns$/.test(keyId))
    out.push({
      ...out[0]!,
      action: 'kms:GenerateDataKey',
      resource: keyId,
      problem: `topic ${topic} is encrypted with the AWS managed key alias/aws/sns, whose key policy ${service} cannot be granted`,
      source: SOURCES.encryptedTopic,
    });
  return out;
}

function ruleCalls(template: CfnTemplate, ctx: CfnContext): ServiceSideCall[] {
  const out: ServiceSideCall[] = [];
  for (const [id, rule] of ofType(template, 'AWS::Events::Rule')) {
    const ruleArn = ctx.physical[id]?.attrs.Arn ?? '';
    const component = `EventBridge rule ${id}`;
    for (const t of list(
      rule.Properties?.Targets as { Arn: unknown; RoleArn?: unknown }[] | undefined,
    )) {
      const target = resolveString(t.Arn, ctx);
      const roleArn = resolveCfn(t.RoleArn, ctx);
      if (typeof roleArn === 'string') {
        out.push(
          ...roleTargetCalls(template, ctx, component, roleArn, target, SOURCES.eventsTarget),
        );
        continue;
      }
      if (/^arn:[^:]+:sns:/.test(target))
        out.push(
          ...snsPublish(
            template,
            ctx,
            component,
            'events.amazonaws.com',
            target,
            ruleArn,
            SOURCES.eventsTarget,
          ),
        );
      else if (/^arn:[^:]+:lambda:/.test(target))
        out.push(
          lambdaInvoke(
            template,
            ctx,
            component,
            'events.amazonaws.com',
            target,
            ruleArn,
            SOURCES.eventsTarget,
          ),
        );
      else
        out.push({
          component,
          role: '(none)',
          principal: 'events.amazonaws.com',
          action: '?',
          resource: target,
          context: {},
          identity: [],
          source: SOURCES.eventsTarget,
          problem: `target ${target} without a RoleArn is not a kind the twin models`,
        });
    }
  }
  return out;
}

function scheduleCalls(template: CfnTemplate, ctx: CfnContext): ServiceSideCall[] {
  return ofType(template, 'AWS::Scheduler::Schedule').flatMap(([id, s]) => {
    const t = s.Properties?.Target as { Arn: unknown; RoleArn: unknown } | undefined;
    if (!t) return [];
    return roleTargetCalls(
      template,
      ctx,
      `EventBridge schedule ${id}`,
      resolveString(t.RoleArn, ctx),
      resolveString(t.Arn, ctx),
      SOURCES.scheduler,
    );
  });
}

/** A target invoked through a role the service assumes: that role's identity policies decide. */
function roleTargetCalls(
  template: CfnTemplate,
  ctx: CfnContext,
  component: string,
  roleArn: string,
  target: string,
  source: string,
): ServiceSideCall[] {
  const roleId = roleIdForArn(template, ctx, roleArn);
  const action = /^arn:[^:]+:lambda:/.test(target)
    ? 'lambda:InvokeFunction'
    : /^arn:[^:]+:states:.*:stateMachine:/.test(target)
      ? 'states:StartExecution'
      : /^arn:[^:]+:sns:/.test(target)
        ? 'sns:Publish'
        : /^arn:[^:]+:batch:.*:job-queue\//.test(target)
          ? 'batch:SubmitJob'
          : '?';
  const base = {
    component,
    principal: roleArn,
    action,
    resource: target,
    context: { 'aws:SecureTransport': 'true' },
    source,
  };
  if (!roleId)
    return [
      {
        ...base,
        role: '(none)',
        identity: [],
        problem: `role ${roleArn} is not a role of this template`,
      },
    ];
  if (action === '?')
    return [
      {
        ...base,
        role: roleId,
        identity: [],
        problem: `target ${target} is not a kind the twin models`,
      },
    ];
  const role = rolePolicies(template, ctx, roleId);
  return [
    {
      ...base,
      role: roleId,
      principal: role.roleArn,
      identity: role.identity,
      boundary: role.boundary,
      ...(action === 'sns:Publish' ? { resourcePolicy: topicPolicy(template, ctx, target) } : {}),
    },
  ];
}

function lambdaInvoke(
  template: CfnTemplate,
  ctx: CfnContext,
  component: string,
  service: string,
  fn: string,
  sourceArn: string,
  source: string,
): ServiceSideCall {
  const policy = lambdaPolicy(template, ctx, fn);
  return {
    component,
    role: policy?.name ?? `(no AWS::Lambda::Permission for ${fn})`,
    principal: service,
    action: 'lambda:InvokeFunction',
    resource: fn,
    context: {
      'aws:SecureTransport': 'true',
      'aws:SourceArn': sourceArn,
      'aws:SourceAccount': ctx.account,
    },
    identity: [],
    resourcePolicy: policy,
    source,
  };
}

function notificationCalls(template: CfnTemplate, ctx: CfnContext): ServiceSideCall[] {
  const out: ServiceSideCall[] = [];
  const emit = (
    bucket: string,
    config: Record<string, unknown> | undefined,
    fnKey: string,
    topicKey: string,
    lambdaList: string,
    topicList: string,
  ) => {
    const bucketArn = `arn:${ctx.partition}:s3:::${bucket}`;
    const component = `S3 notifications of ${bucket}`;
    for (const c of list(config?.[lambdaList] as Record<string, unknown>[] | undefined))
      out.push(
        lambdaInvoke(
          template,
          ctx,
          component,
          's3.amazonaws.com',
          String(c[fnKey]),
          bucketArn,
          SOURCES.s3Notification,
        ),
      );
    for (const c of list(config?.[topicList] as Record<string, unknown>[] | undefined))
      out.push(
        ...snsPublish(
          template,
          ctx,
          component,
          's3.amazonaws.com',
          String(c[topicKey]),
          bucketArn,
          SOURCES.s3Notification,
        ),
      );
  };
  // CDK writes notifications through its custom resource; plain templates on the bucket.
  for (const [, n] of ofType(template, 'Custom::S3BucketNotifications')) {
    const p = resolveCfn(n.Properties, ctx) as {
      BucketName: string;
      NotificationConfiguration?: Record<string, unknown>;
    };
    emit(
      p.BucketName,
      p.NotificationConfiguration,
      'LambdaFunctionArn',
      'TopicArn',
      'LambdaFunctionConfigurations',
      'TopicConfigurations',
    );
  }
  for (const [id, b] of ofType(template, 'AWS::S3::Bucket')) {
    const config = resolveCfn(b.Properties?.NotificationConfiguration, ctx) as
      | Record<string, unknown>
      | undefined;
    if (config)
      emit(
        ctx.physical[id]?.ref ?? id,
        config,
        'Function',
        'Topic',
        'LambdaConfigurations',
        'TopicConfigurations',
      );
  }
  return out;
}

/** Each service can assume the role the template hands it (the role's trust policy). */
function trustCalls(template: CfnTemplate, ctx: CfnContext): ServiceSideCall[] {
  // [who, the role property, the service principal, aws:SourceArn the service sets, if any]
  const uses: Array<[string, unknown, string, string | undefined]> = [];
  for (const [id, f] of ofType(template, 'AWS::Lambda::Function'))
    uses.push([`Lambda function ${id}`, f.Properties?.Role, 'lambda.amazonaws.com', undefined]);
  for (const [id, sm] of ofType(template, 'AWS::StepFunctions::StateMachine'))
    uses.push([
      `Step Functions (${id})`,
      sm.Properties?.RoleArn,
      'states.amazonaws.com',
      ctx.physical[id]?.ref,
    ]);
  for (const [id, jd] of ofType(template, 'AWS::Batch::JobDefinition')) {
    const c = jd.Properties?.ContainerProperties as
      | { JobRoleArn?: unknown; ExecutionRoleArn?: unknown }
      | undefined;
    if (c?.JobRoleArn !== undefined)
      uses.push([
        `Batch job definition ${id} (job role)`,
        c.JobRoleArn,
        'ecs-tasks.amazonaws.com',
        undefined,
      ]);
    if (c?.ExecutionRoleArn !== undefined)
      uses.push([
        `Batch job definition ${id} (execution role)`,
        c.ExecutionRoleArn,
        'ecs-tasks.amazonaws.com',
        undefined,
      ]);
  }
  for (const [id, s] of ofType(template, 'AWS::Scheduler::Schedule'))
    uses.push([
      `EventBridge schedule ${id}`,
      (s.Properties?.Target as { RoleArn?: unknown } | undefined)?.RoleArn,
      'scheduler.amazonaws.com',
      ctx.physical[id]?.attrs.Arn,
    ]);
  const out: ServiceSideCall[] = [];
  for (const [component, value, service, sourceArn] of uses) {
    const roleArn = resolveCfn(value, ctx);
    if (typeof roleArn !== 'string') continue;
    const roleId = roleIdForArn(template, ctx, roleArn);
    // A role from outside the template (an imported ARN) has a trust policy we cannot read.
    if (!roleId) continue;
    const trust = resolveCfn(
      template.Resources[roleId]?.Properties?.AssumeRolePolicyDocument,
      ctx,
    ) as PolicyDocument;
    out.push({
      component,
      role: roleId,
      principal: service,
      action: 'sts:AssumeRole',
      resource: roleArn,
      // Services that assume a role name themselves (confused-deputy conditions).
      context: {
        'aws:SecureTransport': 'true',
        'aws:SourceAccount': ctx.account,
        ...(sourceArn ? { 'aws:SourceArn': sourceArn } : {}),
      },
      identity: [],
      resourcePolicy: { name: `trust policy of ${roleId}`, policy: trust },
      source: SOURCES.trust,
    });
  }
  return out;
}
