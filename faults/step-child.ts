// A cloud step in its own process, so the fault matrix can SIGKILL it mid-way: what a
// Lambda timeout or a crashed container does to the blend or finalize step. The
// environment is a worker's (TESSERA_TABLE, TESSERA_BUCKET, endpoints).
//
//   node --import tsx faults/step-child.ts blend <blend-items key>
//   node --import tsx faults/step-child.ts finalize <jobId>

import { cloudDepsFromEnv } from '../adapters/aws/deps.ts';
import type { BlendItem } from '../contracts/cloud.ts';
import { blendStep, finalizeStep } from '../core/cloud/index.ts';

const [step, arg] = process.argv.slice(2);
const deps = cloudDepsFromEnv();
if (step === 'blend' && arg) {
  const bytes = await deps.bucketStore.get(`/${arg}`);
  if (!bytes) throw new Error(`no blend items at ${arg}`);
  for (const item of JSON.parse(new TextDecoder().decode(bytes)) as BlendItem[])
    await blendStep(deps, item);
} else if (step === 'finalize' && arg) {
  await finalizeStep(deps, { jobId: arg });
} else {
  throw new Error('usage: step-child.ts blend <itemsKey> | finalize <jobId>');
}
process.stdout.write(`${JSON.stringify({ step, finished: true })}\n`);
