// MarkFailed Lambda: every failure path writes status FAILED with its reason.
import { markFailedStep } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { MarkFailedEvent } from '../contracts/cloud.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'MarkFailed',
  (e: MarkFailedEvent) => markFailedStep(deps, e),
  (e) => ({ jobId: e.jobId }),
);
