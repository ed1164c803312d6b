// Finalize Lambda: viewer metadata, report.json, status SUCCEEDED.

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { FinalizeTaskEvent } from '../contracts/cloud.ts';
import { finalizeStep } from '../core/cloud/index.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'Finalize',
  (e: FinalizeTaskEvent) => finalizeStep(deps, e),
  (e) => ({ jobId: e.jobId }),
);
