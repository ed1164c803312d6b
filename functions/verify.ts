// Verify Lambda: are all chunks finished? Re-drive, or fail naming the poison chunks.
import { verifyStep } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { VerifyTaskEvent } from '../contracts/cloud.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'Verify',
  (e: VerifyTaskEvent) => verifyStep(deps, e),
  (e) => ({ jobId: e.jobId, round: e.round }),
);
