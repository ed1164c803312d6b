// Judges the calls the twin recorded against what the synthesized template grants, with a
// real IAM policy evaluator (@cloud-copilot/iam-simulate, which validates actions,
// resource types and policies against AWS's service reference before evaluating).
//
// Each call is evaluated as its component's role: the identity policies attached to that
// role, its permissions boundary, and the resource policy of the target where the stack
// has one (the bucket policy for the stack bucket, a DynamoDB resource policy). Context:
// aws:SecureTransport is "true" (the SDK talks to AWS over https; the twin's loopback
// http is not what AWS would see, and the bucket policy's TLS-only Deny is meant for the
// real transport), plus the keys the recorder read from the request.
//
// The evaluator is asynchronous (it loads AWS's service reference on demand), so these
// functions return promises.

import type { CfnContext } from '../cfn.ts';
import type { RecordedCall } from './actions.ts';
import {
  bucketPolicy,
  type CfnTemplate,
  type NamedPolicy,
  type RolePolicies,
  rolePolicies,
  tablePolicy,
} from './policies.ts';
import { authorize, type Denial } from './simulate.ts';

export type { CfnTemplate } from './policies.ts';
export { type ServiceSideCall, serviceSideCalls, serviceSideChecks } from './service-side.ts';
export { authorize, type Denial, formatDenials } from './simulate.ts';

export interface EvaluateOptions {
  template: CfnTemplate;
  ctx: CfnContext;
  calls: readonly RecordedCall[];
  /** Component name → the logical id of the role it runs as. */
  principals: Record<string, string>;
}

/** Every recorded call its component's role may not make, with the reason. */
export async function evaluateCalls(o: EvaluateOptions): Promise<Denial[]> {
  const roles = new Map<string, RolePolicies>();
  const denials: Denial[] = [];
  const seen = new Set<string>();
  for (const call of o.calls) {
    const key = JSON.stringify([call.component, call.action, call.resource, call.conditions]);
    if (seen.has(key)) continue;
    seen.add(key);
    const roleId = o.principals[call.component];
    const base = {
      component: call.component,
      role: roleId ?? '(none)',
      action: call.action,
      resource: call.resource,
    };
    if (!roleId) {
      denials.push({
        ...base,
        reason: `no role is known for component "${call.component}": add it to principals (components seen: ${Object.keys(o.principals).join(', ')})`,
      });
      continue;
    }
    if (call.action === '?') {
      denials.push({
        ...base,
        reason: `the recorder cannot tell which IAM action ${call.operation} needs; map it in test/deployed/iam/actions.ts`,
      });
      continue;
    }
    let role = roles.get(roleId);
    if (!role) {
      role = rolePolicies(o.template, o.ctx, roleId);
      roles.set(roleId, role);
    }
    const reason = await authorize({
      principal: role.roleArn,
      action: call.action,
      resource: call.resource,
      identity: role.identity,
      boundary: role.boundary,
      resourcePolicy: resourcePolicyFor(o.template, o.ctx, call),
      context: { 'aws:SecureTransport': 'true', ...call.conditions },
      account: o.ctx.account,
    });
    if (reason) denials.push({ ...base, reason });
  }
  return denials;
}

/** The target's resource policy, where the stack gives it one. */
function resourcePolicyFor(
  template: CfnTemplate,
  ctx: CfnContext,
  call: RecordedCall,
): NamedPolicy | undefined {
  if (call.service === 's3') {
    const bucket = /^arn:[^:]+:s3:::([^/]+)/.exec(call.resource)?.[1];
    return bucket ? bucketPolicy(template, ctx, bucket) : undefined;
  }
  if (call.service === 'dynamodb') {
    const table = /:table\/([^/]+)/.exec(call.resource)?.[1];
    return table ? tablePolicy(template, ctx, table) : undefined;
  }
  return undefined;
}
