// MarkFailed Lambda: every failure path writes status FAILED with its reason.
import { markFailedStep } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { MarkFailedEvent } from './contracts.ts';

const deps = cloudDepsFromEnv();

export const handler = (event: MarkFailedEvent): Promise<{ jobId: string; reason: string }> =>
  markFailedStep(deps, event);
