// What the synthesized template grants, read the way IAM and each service read it: a
// role's identity policies (AWS::IAM::Policy and customer AWS::IAM::ManagedPolicy
// resources attached to it, its inline Policies, its ManagedPolicyArns) and permissions
// boundary, and the resource policies of the stack's resources (bucket policy, topic
// policy, Lambda permissions, DynamoDB resource policy), with every intrinsic resolved
// against the deployment's physical names.

import { type CfnContext, resolveCfn, resolveString } from '../cfn.ts';
import type { KeySchemas } from './actions.ts';

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
}
export interface CfnTemplate {
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: unknown }>;
}

export interface PolicyDocument {
  Version?: string;
  Statement: Statement[] | Statement;
  [k: string]: unknown;
}
export interface Statement {
  Sid?: string;
  Effect: 'Allow' | 'Deny';
  Principal?: unknown;
  Action?: string | string[];
  NotAction?: string | string[];
  Resource?: string | string[];
  NotResource?: string | string[];
  Condition?: Record<string, Record<string, unknown>>;
}

export interface NamedPolicy {
  /** Where it comes from, e.g. "AWS::IAM::Policy FunctionsplannerRoleDefaultPolicy01D229F3". */
  name: string;
  policy: PolicyDocument;
}

export interface RolePolicies {
  roleId: string;
  roleArn: string;
  identity: NamedPolicy[];
  boundary: NamedPolicy[] | undefined;
  /** Things that grant permissions but are not evaluated (AWS-managed policies). */
  notes: string[];
}

export class TemplatePolicyError extends Error {
  override readonly name = 'TemplatePolicyError';
}

const ofType = (t: CfnTemplate, type: string): Array<[string, CfnResource]> =>
  Object.entries(t.Resources).filter(([, r]) => r.Type === type);

const list = <T>(x: T | T[] | undefined): T[] =>
  x === undefined ? [] : Array.isArray(x) ? x : [x];

function resource(t: CfnTemplate, id: string, type?: string): CfnResource {
  const r = t.Resources[id];
  if (!r || (type && r.Type !== type))
    throw new TemplatePolicyError(
      `the template has no ${type ?? 'resource'} with logical id "${id}"; the logical ids of that type are: ${
        type
          ? ofType(t, type)
              .map(([i]) => i)
              .join(', ')
          : Object.keys(t.Resources).slice(0, 20).join(', ')
      }`,
    );
  return r;
}

const doc = (v: unknown, ctx: CfnContext): PolicyDocument => resolveCfn(v, ctx) as PolicyDocument;

/** The identity policies and boundary of role `roleId` (a logical id) as deployed. */
export function rolePolicies(template: CfnTemplate, ctx: CfnContext, roleId: string): RolePolicies {
  const role = resource(template, roleId, 'AWS::IAM::Role');
  const physical = ctx.physical[roleId];
  if (!physical)
    throw new TemplatePolicyError(`the context has no physical name for role ${roleId}`);
  const roleName = physical.ref;
  const roleArn = physical.attrs.Arn ?? `arn:${ctx.partition}:iam::${ctx.account}:role/${roleName}`;
  const identity: NamedPolicy[] = [];
  const notes: string[] = [];
  const attachedToRole = (roles: unknown): boolean =>
    list(resolveCfn(roles, ctx) as string | string[] | undefined).some(
      (r) => r === roleName || r === roleArn,
    );

  for (const [id, p] of ofType(template, 'AWS::IAM::Policy'))
    if (attachedToRole(p.Properties?.Roles))
      identity.push({
        name: `AWS::IAM::Policy ${id}`,
        policy: doc(p.Properties?.PolicyDocument, ctx),
      });

  for (const [i, p] of list(
    role.Properties?.Policies as { PolicyName: unknown; PolicyDocument: unknown }[],
  ).entries())
    identity.push({
      name: `${roleId} inline policy ${String(resolveCfn(p.PolicyName, ctx) ?? i)}`,
      policy: doc(p.PolicyDocument, ctx),
    });

  const managed = new Map<string, [string, CfnResource]>();
  for (const [id, p] of ofType(template, 'AWS::IAM::ManagedPolicy')) {
    const arn = ctx.physical[id]?.ref;
    if (arn) managed.set(arn, [id, p]);
  }
  const attachedManaged = new Set<string>();
  for (const arn of list(
    resolveCfn(role.Properties?.ManagedPolicyArns, ctx) as string[] | undefined,
  )) {
    const m = managed.get(arn);
    if (m) attachedManaged.add(m[0]);
    else
      notes.push(
        `${roleId}: managed policy ${arn} is not in the template (an AWS-managed policy); not evaluated`,
      );
  }
  for (const [id, p] of ofType(template, 'AWS::IAM::ManagedPolicy'))
    if (attachedToRole(p.Properties?.Roles)) attachedManaged.add(id);
  for (const id of attachedManaged) {
    const p = resource(template, id, 'AWS::IAM::ManagedPolicy');
    identity.push({
      name: `AWS::IAM::ManagedPolicy ${id}`,
      policy: doc(p.Properties?.PolicyDocument, ctx),
    });
  }

  let boundary: NamedPolicy[] | undefined;
  const pb = role.Properties?.PermissionsBoundary;
  if (pb !== undefined) {
    const arn = resolveString(pb, ctx);
    const m = managed.get(arn);
    if (m)
      boundary = [{ name: `boundary ${m[0]}`, policy: doc(m[1].Properties?.PolicyDocument, ctx) }];
    else notes.push(`${roleId}: permissions boundary ${arn} is not in the template; not evaluated`);
  }
  return { roleId, roleArn, identity, boundary, notes };
}

/** The logical id of the role whose deployed ARN is `arn`. */
export function roleIdForArn(
  template: CfnTemplate,
  ctx: CfnContext,
  arn: string,
): string | undefined {
  return ofType(template, 'AWS::IAM::Role')
    .map(([id]) => id)
    .find((id) => ctx.physical[id]?.attrs.Arn === arn);
}

/** The bucket policy of bucket `name` as deployed, if it has one. */
export function bucketPolicy(
  template: CfnTemplate,
  ctx: CfnContext,
  name: string,
): NamedPolicy | undefined {
  for (const [id, p] of ofType(template, 'AWS::S3::BucketPolicy'))
    if (resolveString(p.Properties?.Bucket, ctx) === name)
      return {
        name: `AWS::S3::BucketPolicy ${id}`,
        policy: doc(p.Properties?.PolicyDocument, ctx),
      };
  return undefined;
}

/**
 * The access policy of the topic `topicArn`. A TopicPolicy replaces the topic's default
 * policy altogether; without one, the default applies: the owner account's principals
 * may publish (Principal AWS "*" with AWS:SourceOwner = the account).
 */
export function topicPolicy(template: CfnTemplate, ctx: CfnContext, topicArn: string): NamedPolicy {
  const statements: Statement[] = [];
  const names: string[] = [];
  for (const [id, p] of ofType(template, 'AWS::SNS::TopicPolicy')) {
    if (!list(resolveCfn(p.Properties?.Topics, ctx) as string[]).includes(topicArn)) continue;
    names.push(id);
    statements.push(...list(doc(p.Properties?.PolicyDocument, ctx).Statement));
  }
  for (const [id, p] of ofType(template, 'AWS::SNS::TopicInlinePolicy')) {
    if (resolveString(p.Properties?.TopicArn, ctx) !== topicArn) continue;
    names.push(id);
    statements.push(...list(doc(p.Properties?.PolicyDocument, ctx).Statement));
  }
  if (names.length > 0)
    return {
      name: `AWS::SNS::TopicPolicy ${names.join(', ')}`,
      policy: { Version: '2012-10-17', Statement: statements },
    };
  return {
    name: `SNS default policy of ${topicArn}`,
    policy: {
      Version: '2008-10-17',
      Statement: [
        {
          Sid: '__default_statement_ID',
          Effect: 'Allow',
          Principal: { AWS: '*' },
          Action: [
            'SNS:GetTopicAttributes',
            'SNS:SetTopicAttributes',
            'SNS:AddPermission',
            'SNS:RemovePermission',
            'SNS:DeleteTopic',
            'SNS:Subscribe',
            'SNS:ListSubscriptionsByTopic',
            'SNS:Publish',
          ],
          Resource: topicArn,
          Condition: { StringEquals: { 'AWS:SourceOwner': ctx.account } },
        },
      ],
    },
  };
}

/**
 * The resource policy Lambda builds for function `functionArn` from the template's
 * AWS::Lambda::Permission resources (one statement each, as AddPermission writes them).
 */
export function lambdaPolicy(
  template: CfnTemplate,
  ctx: CfnContext,
  functionArn: string,
): NamedPolicy | undefined {
  const fnName = functionArn.split(':function:')[1]?.split(':')[0];
  const statements: Statement[] = [];
  const ids: string[] = [];
  for (const [id, p] of ofType(template, 'AWS::Lambda::Permission')) {
    const target = resolveString(p.Properties?.FunctionName, ctx);
    if (target !== functionArn && target !== fnName) continue;
    ids.push(id);
    const principal = resolveString(p.Properties?.Principal, ctx);
    const condition: Record<string, Record<string, string>> = {};
    const sourceArn = resolveCfn(p.Properties?.SourceArn, ctx);
    const sourceAccount = resolveCfn(p.Properties?.SourceAccount, ctx);
    const orgId = resolveCfn(p.Properties?.PrincipalOrgID, ctx);
    if (typeof sourceArn === 'string') condition.ArnLike = { 'AWS:SourceArn': sourceArn };
    if (typeof sourceAccount === 'string')
      condition.StringEquals = { ...condition.StringEquals, 'AWS:SourceAccount': sourceAccount };
    if (typeof orgId === 'string')
      condition.StringEquals = { ...condition.StringEquals, 'aws:PrincipalOrgID': orgId };
    statements.push({
      Sid: id,
      Effect: 'Allow',
      Principal: principal.endsWith('.amazonaws.com')
        ? { Service: principal }
        : {
            AWS: /^\d{12}$/.test(principal)
              ? `arn:${ctx.partition}:iam::${principal}:root`
              : principal,
          },
      Action: resolveString(p.Properties?.Action, ctx),
      Resource: functionArn,
      ...(Object.keys(condition).length > 0 ? { Condition: condition } : {}),
    });
  }
  if (statements.length === 0) return undefined;
  return {
    name: `AWS::Lambda::Permission ${ids.join(', ')}`,
    policy: { Version: '2012-10-17', Statement: statements },
  };
}

/** The resource policy of DynamoDB table `name`, if the template gives it one. */
export function tablePolicy(
  template: CfnTemplate,
  ctx: CfnContext,
  name: string,
): NamedPolicy | undefined {
  for (const [id, t] of [
    ...ofType(template, 'AWS::DynamoDB::Table'),
    ...ofType(template, 'AWS::DynamoDB::GlobalTable'),
  ]) {
    if (ctx.physical[id]?.ref !== name) continue;
    const direct = (t.Properties?.ResourcePolicy as { PolicyDocument?: unknown } | undefined)
      ?.PolicyDocument;
    const replica = list(
      t.Properties?.Replicas as {
        Region?: unknown;
        ResourcePolicy?: { PolicyDocument?: unknown };
      }[],
    )
      .filter((r) => resolveCfn(r.Region, ctx) === ctx.region)
      .map((r) => r.ResourcePolicy?.PolicyDocument)
      .find((d) => d !== undefined);
    const d = direct ?? replica;
    if (d !== undefined) return { name: `${t.Type} ${id} ResourcePolicy`, policy: doc(d, ctx) };
  }
  return undefined;
}

/** Partition key attribute per table (and index), by deployed table name, for the recorder. */
export function keySchemasFromTemplate(template: CfnTemplate, ctx: CfnContext): KeySchemas {
  const out: KeySchemas = {};
  type Key = { AttributeName: string; KeyType: string };
  const hashOf = (ks: Key[] | undefined) => ks?.find((k) => k.KeyType === 'HASH')?.AttributeName;
  for (const [id, t] of [
    ...ofType(template, 'AWS::DynamoDB::Table'),
    ...ofType(template, 'AWS::DynamoDB::GlobalTable'),
  ]) {
    const name = ctx.physical[id]?.ref;
    const p = resolveCfn(t.Properties, ctx) as {
      KeySchema?: Key[];
      GlobalSecondaryIndexes?: { IndexName: string; KeySchema: Key[] }[];
      LocalSecondaryIndexes?: { IndexName: string; KeySchema: Key[] }[];
    };
    const hash = hashOf(p.KeySchema);
    if (!name || !hash) continue;
    const indexes: Record<string, string> = {};
    for (const i of [...(p.GlobalSecondaryIndexes ?? []), ...(p.LocalSecondaryIndexes ?? [])]) {
      const h = hashOf(i.KeySchema);
      if (h) indexes[i.IndexName] = h;
    }
    out[name] = { hash, indexes };
  }
  return out;
}
