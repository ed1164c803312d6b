// Pyramid Lambda: a level's task list (`level`), or one PyramidTasks Map item (`range`).

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { PyramidTaskEvent } from '../contracts/cloud.ts';
import { pyramidStep } from '../core/cloud/index.ts';
import { observe } from './observe.ts';

const deps = cloudDepsFromEnv();

export const handler = observe(
  'Pyramid',
  (e: PyramidTaskEvent) => pyramidStep(deps, e),
  (e) => ({ ...e }),
);
