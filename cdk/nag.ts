// cdk-nag (v3, a policy validation plugin) and how this app acknowledges its findings.
//
// v3 acknowledges a finding only by its exact id, e.g.
//   AwsSolutions-IAM5[Resource::<StorageBucket19DB2FF8.Arn>/jobs/*]
// which would hard-code logical ids into the source. `acknowledgeFindings` instead takes
// a pattern over the finding (v2's `appliesTo` regex): an aspect runs the rule on every
// resource under the scope once the tree is complete and acknowledges exactly the
// findings the pattern matches, each with the written reason. Anything else still fails.

import { type AspectPriority, Aspects, CfnResource, type IAspect, Validations } from 'aws-cdk-lib';
import cdkNag from 'cdk-nag';
import type { IConstruct } from 'constructs';

// cdk-nag is CommonJS whose exports Node's ESM loader cannot detect statically: named
// imports fail at run time, so take them off the default (module.exports) import.
export const { AwsSolutionsChecks } = cdkNag;
const { rules } = cdkNag;

type Rule = (node: CfnResource) => unknown;

/** Rules with per-finding results this app acknowledges by pattern. */
export const FINDING_RULES = {
  'AwsSolutions-IAM4': rules.iam.IAMNoManagedPolicies as Rule,
  'AwsSolutions-IAM5': rules.iam.IAMNoWildcardPermissions as Rule,
} as const;

export type FindingRuleId = keyof typeof FINDING_RULES;

/** Acknowledges a whole rule on a construct (and its children). */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  Validations.of(scope).acknowledge({ id, reason });
}

/** Acknowledges the findings of `id` under `scope` whose text matches `finding`. */
export function acknowledgeFindings(
  scope: IConstruct,
  id: FindingRuleId,
  finding: RegExp,
  reason: string,
): void {
  Aspects.of(scope).add(new AcknowledgeFindings(id, finding, reason), {
    // After every mutating aspect, so the policies are complete when read.
    priority: 1000 satisfies typeof AspectPriority.READONLY,
  });
}

class AcknowledgeFindings implements IAspect {
  constructor(
    private readonly id: FindingRuleId,
    private readonly finding: RegExp,
    private readonly reason: string,
  ) {}

  visit(node: IConstruct): void {
    if (!CfnResource.isCfnResource(node)) return;
    const result = FINDING_RULES[this.id](node);
    if (!Array.isArray(result)) return;
    for (const f of result as string[]) {
      if (this.finding.test(f)) {
        Validations.of(node).acknowledge({ id: `${this.id}[${f}]`, reason: this.reason });
      }
    }
  }
}
