// One authorization decision with a real IAM policy evaluator (@cloud-copilot/iam-simulate,
// which validates the action, the resource type and each policy against AWS's service
// reference before evaluating, so a misspelt action is an error rather than a silent
// deny), and its explanation in words. Asynchronous: the evaluator loads the service
// reference on demand.

import { getDenialReasons, type RequestAnalysis, runSimulation } from '@cloud-copilot/iam-simulate';
import type { NamedPolicy } from './policies.ts';

export interface Denial {
  /** The component (or the AWS service acting for the stack) that would be refused. */
  component: string;
  /** The role's logical id, or the resource policy's owner for a service principal. */
  role: string;
  action: string;
  resource: string;
  reason: string;
}

export interface AuthorizeRequest {
  /** A role ARN, or a service principal such as cloudwatch.amazonaws.com. */
  principal: string;
  action: string;
  resource: string;
  identity: readonly NamedPolicy[];
  boundary?: readonly NamedPolicy[] | undefined;
  resourcePolicy?: NamedPolicy | undefined;
  context: Record<string, string | string[]>;
  /** The account that owns the resource. */
  account: string;
}

/** undefined when the request is allowed, else why it is not. */
export async function authorize(r: AuthorizeRequest): Promise<string | undefined> {
  const result = await runSimulation(
    {
      request: {
        principal: r.principal,
        action: r.action,
        resource: { resource: r.resource, accountId: r.account },
        contextVariables: r.context,
      },
      identityPolicies: r.identity.map((p) => ({ name: p.name, policy: p.policy })),
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      ...(r.boundary
        ? {
            permissionBoundaryPolicies: r.boundary.map((p) => ({ name: p.name, policy: p.policy })),
          }
        : {}),
      ...(r.resourcePolicy ? { resourcePolicy: r.resourcePolicy.policy } : {}),
    },
    { simulationMode: 'Strict' },
  );
  if (result.resultType === 'error')
    return `the evaluator rejected the request or a policy: ${JSON.stringify(result.errors)}`;
  if (result.overallResult === 'Allowed') return undefined;
  const analyses: RequestAnalysis[] =
    result.resultType === 'single'
      ? [result.result.analysis]
      : result.results.map((x) => x.analysis);
  return explain(result.overallResult, analyses, r);
}

function explain(overall: string, analyses: RequestAnalysis[], r: AuthorizeRequest): string {
  const reasons = analyses.flatMap((a) => getDenialReasons(a));
  const policyName = (type: string, id: string | undefined) =>
    type === 'resource' ? (r.resourcePolicy?.name ?? 'the resource policy') : (id ?? type);
  const explicit = reasons.flatMap((d) =>
    d.denialType === 'Explicit'
      ? [
          `explicit deny by ${policyName(d.policyType, d.policyIdentifier)} statement ${d.statementId ?? `#${d.statementIndex}`}`,
        ]
      : [],
  );
  if (explicit.length > 0) return [...new Set(explicit)].join('; ');
  // A service principal has no identity policies: only the resource policy can allow it.
  const service = r.principal.endsWith('.amazonaws.com');
  const types = [...new Set(reasons.map((d) => d.policyType))].filter(
    (t) => !(service && t === 'identity'),
  );
  const implicit = types.map((t) =>
    t === 'identity'
      ? `no identity policy of the role allows it (${r.identity.length} polic${r.identity.length === 1 ? 'y' : 'ies'} evaluated: ${r.identity.map((p) => p.name).join(', ') || 'none'})`
      : t === 'resource'
        ? `${r.resourcePolicy?.name ?? 'no resource policy'} does not allow it`
        : t === 'pb'
          ? 'the permissions boundary does not allow it'
          : `${t} does not allow it`,
  );
  const context = Object.entries(r.context)
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
    .join(', ');
  return `${overall === 'ImplicitlyDenied' ? 'implicit deny' : overall}: ${implicit.join('; ') || 'no statement allows it'} [context ${context}]`;
}

/** One line per denial: `role X (planner) may not s3:PutObject on arn:…: implicit deny …`. */
export function formatDenials(denials: readonly Denial[]): string {
  if (denials.length === 0) return 'no denials';
  return denials
    .map((d) =>
      // A service principal is refused by a resource policy, not by a role of its own.
      /^(AWS::|SNS default|trust policy|\(no )/.test(d.role)
        ? `${d.component} may not ${d.action} on ${d.resource} under ${d.role}: ${d.reason}`
        : `role ${d.role} (${d.component}) may not ${d.action} on ${d.resource}: ${d.reason}`,
    )
    .join('\n');
}
