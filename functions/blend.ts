// Blend Lambda: one Distributed Map item, a range of seam blocks.

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { BlendItem } from '../contracts/cloud.ts';
import { blendStep } from '../core/cloud/index.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'Blend',
  (e: BlendItem) => blendStep(deps, e),
  (e) => ({ ...e }),
);
