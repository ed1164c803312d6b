// Verify Lambda: are all chunks finished? Re-drive, or fail naming the poison chunks.
import { verifyStep } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { VerifyTaskEvent, VerifyTaskResult } from './contracts.ts';

const deps = cloudDepsFromEnv();

export const handler = (event: VerifyTaskEvent): Promise<VerifyTaskResult> =>
  verifyStep(deps, event);
