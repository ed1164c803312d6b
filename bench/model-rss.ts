// The "model" term of the worker memory bound, measured rather than assumed: the peak
// RSS of a process that only opens the model and runs one batch of the bench's patches
// (Node itself, onnxruntime's weights, its arena and the activations of one batch).
// Run as a child: prints the figure in bytes on stdout.

import { availableParallelism } from 'node:os';
import { ModelRunner } from '../core/model/index.ts';

const [modelPath, patchJson, batchText, device] = process.argv.slice(2);
const patch = JSON.parse(patchJson!) as [number, number, number];
const batch = Number(batchText);
const runner = await ModelRunner.open(
  { path: modelPath! },
  { device: device === 'gpu' ? 'gpu' : 'cpu', intraOpThreads: availableParallelism() },
);
const voxels = patch[0] * patch[1] * patch[2];
await runner.run(new Float32Array(batch * voxels).fill(0.5), batch, patch);
await runner.close();
process.stdout.write(`${process.resourceUsage().maxRSS * 1024}\n`);
