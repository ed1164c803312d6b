// Blend Lambda: one Distributed Map item, a range of seam blocks.
import { blendStep } from '../adapters/aws/cloud-steps.ts';
import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { BlendItem, BlendTaskResult } from './contracts.ts';

const deps = cloudDepsFromEnv();

export const handler = (event: BlendItem): Promise<BlendTaskResult> => blendStep(deps, event);
