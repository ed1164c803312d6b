// Verify Lambda: are all chunks finished? Re-drive, or fail naming the poison chunks.

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { VerifyTaskEvent } from '../contracts/cloud.ts';
import { verifyStep } from '../core/cloud/index.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'Verify',
  (e: VerifyTaskEvent) => verifyStep(deps, e),
  (e) => ({ jobId: e.jobId, round: e.round }),
);
