// Finalize Lambda: viewer metadata, report.json, status SUCCEEDED.
import { finalizeStep } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { FinalizeTaskEvent, FinalizeTaskResult } from './contracts.ts';

const deps = cloudDepsFromEnv();

export const handler = (event: FinalizeTaskEvent): Promise<FinalizeTaskResult> =>
  finalizeStep(deps, event);
