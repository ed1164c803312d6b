// CloudFormation, as far as the deployment twin needs it: the intrinsic functions the
// synthesized template uses, resolved against the physical names a deployment would give
// each resource. The twin resolves environment variables, job definitions and IAM
// policies with it; the emulators' bucket and table take the stack bucket's and the
// ledger table's place, every other resource gets a plausible name and ARN for its type.
//
// Ref and Fn::GetAtt return what CloudFormation documents for each resource type
// (Ref of a Lambda function is its name, of a state machine, topic or job definition its
// ARN, ...). Conditions and Fn::If are not resolved: the template's only condition
// (CDKMetadataAvailable) guards the CDK metadata resource, which nothing references; a
// template that uses Fn::If elsewhere fails here by name.

export interface CfnContext {
  account: string;
  region: string;
  partition: string;
  /** Per logical id: what Ref returns, and the attributes Fn::GetAtt can read. */
  physical: Record<string, { ref: string; attrs: Record<string, string> }>;
  /** Ref AWS::StackName (default "Tessera", the app's stack). */
  stackName?: string;
}

export class CfnResolveError extends Error {
  override readonly name = 'CfnResolveError';
}

/** What `Ref: AWS::NoValue` becomes: dropped from the object or list that holds it. */
const NO_VALUE = Symbol('AWS::NoValue');

/** `value` with every intrinsic function replaced by its value. */
export function resolveCfn(value: unknown, ctx: CfnContext): unknown {
  const out = resolve(value, ctx, '');
  return out === NO_VALUE ? undefined : out;
}

/** resolveCfn for a value that must come out a string (an ARN, a name, an env var). */
export function resolveString(value: unknown, ctx: CfnContext): string {
  const out = resolveCfn(value, ctx);
  if (typeof out !== 'string')
    throw new CfnResolveError(`expected a string, got ${JSON.stringify(out)} from ${brief(value)}`);
  return out;
}

function resolve(value: unknown, ctx: CfnContext, at: string): unknown {
  if (Array.isArray(value))
    return value.map((v, i) => resolve(v, ctx, `${at}[${i}]`)).filter((v) => v !== NO_VALUE);
  if (value === null || typeof value !== 'object') return value;
  const entries = Object.entries(value as Record<string, unknown>);
  const [first] = entries;
  if (entries.length === 1 && first && (first[0] === 'Ref' || first[0].startsWith('Fn::')))
    return intrinsic(first[0], first[1], ctx, at);
  const out: Record<string, unknown> = {};
  for (const [k, v] of entries) {
    const r = resolve(v, ctx, at === '' ? k : `${at}.${k}`);
    if (r !== NO_VALUE) out[k] = r;
  }
  return out;
}

function intrinsic(fn: string, arg: unknown, ctx: CfnContext, at: string): unknown {
  const str = (v: unknown, what: string): string => {
    const r = resolve(v, ctx, at);
    if (typeof r === 'string') return r;
    if (typeof r === 'number' || typeof r === 'boolean') return String(r);
    throw new CfnResolveError(`${fn} at ${at || '(root)'}: ${what} is ${JSON.stringify(r)}`);
  };
  const list = (v: unknown, what: string): unknown[] => {
    const r = resolve(v, ctx, at);
    if (!Array.isArray(r))
      throw new CfnResolveError(`${fn} at ${at || '(root)'}: ${what} is not a list`);
    return r;
  };
  switch (fn) {
    case 'Ref':
      return ref(String(arg), ctx, at);
    case 'Fn::GetAtt': {
      // Both forms: ["Id", "Attr"] and "Id.Attr" (the attribute may itself hold dots).
      const [id, attr] = Array.isArray(arg)
        ? [String(arg[0]), str(arg[1], 'the attribute')]
        : splitOnce(String(arg), '.');
      return getAtt(id, attr, ctx, at);
    }
    case 'Fn::Join': {
      const [sep, parts] = arg as [string, unknown];
      return list(parts, 'the parts')
        .map((p) => str(p, 'a part'))
        .join(sep);
    }
    case 'Fn::Sub': {
      const [template, vars] = Array.isArray(arg)
        ? [String(arg[0]), arg[1] as Record<string, unknown>]
        : [String(arg), {}];
      // ${!Literal} is an escaped "${Literal}".
      return template.replace(/\$\{(!?)([^}]+)\}/g, (_, bang: string, name: string) => {
        if (bang) return `\${${name}}`;
        if (Object.hasOwn(vars, name)) return str(vars[name], `variable ${name}`);
        const [id, attr] = splitOnce(name, '.');
        return attr === '' ? String(ref(name, ctx, at)) : getAtt(id, attr, ctx, at);
      });
    }
    case 'Fn::Select': {
      const [index, items] = arg as [unknown, unknown];
      const i = Number(resolve(index, ctx, at));
      const l = list(items, 'the list');
      if (!Number.isInteger(i) || i < 0 || i >= l.length)
        throw new CfnResolveError(`Fn::Select at ${at}: index ${i} outside a list of ${l.length}`);
      return l[i];
    }
    case 'Fn::Split': {
      const [sep, source] = arg as [string, unknown];
      return str(source, 'the source').split(sep);
    }
    case 'Fn::GetAZs':
      // The zones a region lists; the stack's VPC selects the first two.
      return ['a', 'b', 'c'].map((z) => `${ctx.region}${z}`);
    case 'Fn::Base64':
      return Buffer.from(str(arg, 'the value')).toString('base64');
    default:
      throw new CfnResolveError(
        `${fn} at ${at || '(root)'} is not supported by the twin's resolver: ${brief(arg)}`,
      );
  }
}

function ref(name: string, ctx: CfnContext, at: string): string | typeof NO_VALUE {
  switch (name) {
    case 'AWS::AccountId':
      return ctx.account;
    case 'AWS::Region':
      return ctx.region;
    case 'AWS::Partition':
      return ctx.partition;
    case 'AWS::URLSuffix':
      return ctx.partition === 'aws-cn' ? 'amazonaws.com.cn' : 'amazonaws.com';
    case 'AWS::StackName':
      return ctx.stackName ?? 'Tessera';
    case 'AWS::StackId':
      return `arn:${ctx.partition}:cloudformation:${ctx.region}:${ctx.account}:stack/${ctx.stackName ?? 'Tessera'}/00000000-0000-4000-8000-000000000000`;
    case 'AWS::NoValue':
      return NO_VALUE;
  }
  const r = ctx.physical[name];
  if (!r) throw new CfnResolveError(`Ref ${name} at ${at || '(root)'}: no such resource`);
  return r.ref;
}

function getAtt(id: string, attr: string, ctx: CfnContext, at: string): string {
  const r = ctx.physical[id];
  if (!r)
    throw new CfnResolveError(`Fn::GetAtt ${id}.${attr} at ${at || '(root)'}: no such resource`);
  const v = r.attrs[attr];
  if (v === undefined)
    throw new CfnResolveError(
      `Fn::GetAtt ${id}.${attr} at ${at || '(root)'}: the twin gives ${id} only ${Object.keys(r.attrs).join(', ') || 'no attributes'}`,
    );
  return v;
}

function splitOnce(s: string, sep: string): [string, string] {
  const i = s.indexOf(sep);
  return i < 0 ? [s, ''] : [s.slice(0, i), s.slice(i + sep.length)];
}

function brief(v: unknown): string {
  return JSON.stringify(v).slice(0, 160);
}

// --- physical names ----------------------------------------------------------------

interface Template {
  Resources: Record<string, { Type: string; Properties?: Record<string, unknown> }>;
  Outputs?: Record<string, { Value: unknown }>;
}

export interface PhysicalNameOptions {
  /** The emulator's bucket: the stack bucket's name. */
  bucket: string;
  /** The emulator's table: the ledger table's name. */
  table: string;
  account: string;
  region: string;
  stackName: string;
  partition?: string;
}

/** Properties that name a resource explicitly, by type (CloudFormation uses them as given). */
const NAME_PROPERTY: Record<string, string> = {
  'AWS::Lambda::Function': 'FunctionName',
  'AWS::IAM::Role': 'RoleName',
  'AWS::IAM::ManagedPolicy': 'ManagedPolicyName',
  'AWS::IAM::InstanceProfile': 'InstanceProfileName',
  'AWS::StepFunctions::StateMachine': 'StateMachineName',
  'AWS::SNS::Topic': 'TopicName',
  'AWS::SQS::Queue': 'QueueName',
  'AWS::CloudWatch::Alarm': 'AlarmName',
  'AWS::CloudWatch::Dashboard': 'DashboardName',
  'AWS::Logs::LogGroup': 'LogGroupName',
  'AWS::Events::Rule': 'Name',
  'AWS::Scheduler::Schedule': 'Name',
  'AWS::Batch::JobQueue': 'JobQueueName',
  'AWS::Batch::JobDefinition': 'JobDefinitionName',
  'AWS::Batch::ComputeEnvironment': 'ComputeEnvironmentName',
  'AWS::S3::Bucket': 'BucketName',
  'AWS::DynamoDB::Table': 'TableName',
  'AWS::DynamoDB::GlobalTable': 'TableName',
};

/**
 * What Ref and Fn::GetAtt give for every resource of `template` once deployed: the stack
 * bucket (the one the BucketName output refers to, else the only bucket with
 * notifications) is `bucket`, the ledger table is `table`, every other resource gets the
 * name CloudFormation would generate (`<stack>-<logicalId>-<suffix>`, or its explicit
 * name property) and the ARN its service uses.
 */
export function physicalNames(template: Template, o: PhysicalNameOptions): CfnContext['physical'] {
  const partition = o.partition ?? 'aws';
  const bucketId = stackResource(template, 'BucketName', ['AWS::S3::Bucket']);
  const tableId = stackResource(template, 'TableName', [
    'AWS::DynamoDB::Table',
    'AWS::DynamoDB::GlobalTable',
  ]);
  const base = { account: o.account, region: o.region, partition, stackName: o.stackName };
  const physical: CfnContext['physical'] = {};
  // Pass 1: generated names for all; pass 2: explicit names, which may refer to others.
  for (const pass of [1, 2] as const) {
    for (const [id, r] of Object.entries(template.Resources)) {
      let name = generatedName(o.stackName, id, r.Type);
      if (id === bucketId) name = o.bucket;
      else if (id === tableId) name = o.table;
      else if (pass === 2) {
        const prop = NAME_PROPERTY[r.Type];
        const given = prop ? r.Properties?.[prop] : undefined;
        if (given !== undefined) name = resolveString(given, { ...base, physical });
      }
      physical[id] = describe(r.Type, id, name, o, partition);
    }
  }
  return physical;
}

/** The logical id an output refers to (Ref), or the only resource of the given types. */
function stackResource(template: Template, output: string, types: string[]): string {
  const value = template.Outputs?.[output]?.Value as { Ref?: unknown } | undefined;
  if (typeof value?.Ref === 'string') return value.Ref;
  const ids = Object.entries(template.Resources)
    .filter(([, r]) => types.includes(r.Type))
    .map(([id]) => id);
  if (ids.length !== 1)
    throw new CfnResolveError(
      `cannot tell which ${types.join('/')} is the stack's: no ${output} output and ${ids.length} candidates (${ids.join(', ')})`,
    );
  return ids[0]!;
}

/** CloudFormation's generated names: stack, logical id, a random suffix, within 64 chars. */
function generatedName(stack: string, id: string, type: string): string {
  const suffix = id.length > 0 ? hash(id).slice(0, 12).toUpperCase() : 'X';
  const raw = `${stack}-${id}-${suffix}`;
  // Bucket names are lower case and at most 63 characters.
  return type === 'AWS::S3::Bucket' ? raw.toLowerCase().slice(0, 63) : raw.slice(-64);
}

function hash(s: string): string {
  let h = 2166136261;
  for (const ch of s) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  return `${h.toString(36)}${((h ^ 0x5bd1e995) >>> 0).toString(36)}`.padEnd(12, '0');
}

function describe(
  type: string,
  id: string,
  name: string,
  o: PhysicalNameOptions,
  partition: string,
): { ref: string; attrs: Record<string, string> } {
  const { region, account } = o;
  const arn = (service: string, resource: string, r = region, a = account) =>
    `arn:${partition}:${service}:${r}:${a}:${resource}`;
  switch (type) {
    case 'AWS::S3::Bucket':
      return {
        ref: name,
        attrs: {
          Arn: `arn:${partition}:s3:::${name}`,
          DomainName: `${name}.s3.amazonaws.com`,
          RegionalDomainName: `${name}.s3.${region}.amazonaws.com`,
        },
      };
    case 'AWS::DynamoDB::Table':
    case 'AWS::DynamoDB::GlobalTable': {
      const tableArn = arn('dynamodb', `table/${name}`);
      return {
        ref: name,
        attrs: { Arn: tableArn, StreamArn: `${tableArn}/stream/2024-01-01T00:00:00.000` },
      };
    }
    case 'AWS::Lambda::Function':
      return { ref: name, attrs: { Arn: arn('lambda', `function:${name}`) } };
    case 'AWS::IAM::Role':
      return {
        ref: name,
        attrs: { Arn: arn('iam', `role/${name}`, ''), RoleId: `AROA${hash(id).toUpperCase()}` },
      };
    case 'AWS::IAM::ManagedPolicy': {
      const policyArn = arn('iam', `policy/${name}`, '');
      return { ref: policyArn, attrs: { PolicyArn: policyArn } };
    }
    case 'AWS::IAM::InstanceProfile':
      return { ref: name, attrs: { Arn: arn('iam', `instance-profile/${name}`, '') } };
    case 'AWS::IAM::Policy':
      return { ref: id, attrs: {} };
    case 'AWS::StepFunctions::StateMachine': {
      const smArn = arn('states', `stateMachine:${name}`);
      return { ref: smArn, attrs: { Arn: smArn, Name: name } };
    }
    case 'AWS::SNS::Topic': {
      const topicArn = arn('sns', name);
      return { ref: topicArn, attrs: { TopicArn: topicArn, TopicName: name } };
    }
    case 'AWS::SQS::Queue':
      return {
        ref: `https://sqs.${region}.amazonaws.com/${account}/${name}`,
        attrs: { Arn: arn('sqs', name), QueueName: name },
      };
    case 'AWS::Batch::JobQueue': {
      const q = arn('batch', `job-queue/${name}`);
      return { ref: q, attrs: { JobQueueArn: q } };
    }
    case 'AWS::Batch::JobDefinition':
      // Ref is the ARN of the definition's first revision.
      return { ref: arn('batch', `job-definition/${name}:1`), attrs: {} };
    case 'AWS::Batch::ComputeEnvironment': {
      const ce = arn('batch', `compute-environment/${name}`);
      return { ref: ce, attrs: { ComputeEnvironmentArn: ce } };
    }
    case 'AWS::CloudWatch::Alarm':
      return { ref: name, attrs: { Arn: arn('cloudwatch', `alarm:${name}`) } };
    case 'AWS::Logs::LogGroup':
      return { ref: name, attrs: { Arn: arn('logs', `log-group:${name}:*`) } };
    case 'AWS::Events::Rule':
      return { ref: name, attrs: { Arn: arn('events', `rule/${name}`) } };
    case 'AWS::Scheduler::Schedule':
      return { ref: name, attrs: { Arn: arn('scheduler', `schedule/default/${name}`) } };
    case 'AWS::EC2::VPC':
      return {
        ref: ec2Id('vpc', id),
        attrs: { DefaultSecurityGroup: ec2Id('sg', `${id}/default`), CidrBlock: '10.0.0.0/16' },
      };
    case 'AWS::EC2::SecurityGroup':
      return { ref: ec2Id('sg', id), attrs: { GroupId: ec2Id('sg', id) } };
    case 'AWS::EC2::EIP':
      return { ref: '198.51.100.1', attrs: { AllocationId: ec2Id('eipalloc', id) } };
    case 'AWS::EC2::LaunchTemplate':
      return {
        ref: ec2Id('lt', id),
        attrs: {
          LaunchTemplateId: ec2Id('lt', id),
          LatestVersionNumber: '1',
          DefaultVersionNumber: '1',
        },
      };
    default: {
      if (type.startsWith('AWS::EC2::')) {
        const prefix = type.slice('AWS::EC2::'.length).toLowerCase();
        return { ref: ec2Id(prefix, id), attrs: {} };
      }
      // Anything else: its name, and an ARN in the shape most services use.
      const [, service = 'unknown', kind = 'resource'] = type.split('::');
      return {
        ref: name,
        attrs: { Arn: arn(service.toLowerCase(), `${kind.toLowerCase()}/${name}`) },
      };
    }
  }
}

function ec2Id(prefix: string, id: string): string {
  return `${prefix}-${hash(id).slice(0, 17)}`;
}
