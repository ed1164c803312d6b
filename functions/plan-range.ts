// PlanRange / CompletePlan Lambda: the state machine's PlanRanges Map writes a large
// job's ledger rows one index range per call, then CompletePlan makes them claimable
// (core/cloud/plan-ranges.ts). Both idempotent: a retried call rewrites nothing new.

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { CompletePlanTaskEvent, PlanRangeTaskEvent } from '../contracts/cloud.ts';
import { planRangeTask } from '../core/cloud/plan-ranges.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'PlanRange',
  (event: PlanRangeTaskEvent | CompletePlanTaskEvent) => planRangeTask(deps, event),
  (event) => ({ ...event }),
);
