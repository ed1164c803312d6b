// MarkFailed Lambda: every failure path writes status FAILED with its reason.

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { MarkFailedEvent } from '../contracts/cloud.ts';
import { markFailedStep } from '../core/cloud/index.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'MarkFailed',
  (e: MarkFailedEvent) => markFailedStep(deps, e),
  (e) => ({ jobId: e.jobId }),
);
