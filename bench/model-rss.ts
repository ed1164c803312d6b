// The fixed term of the worker memory bound, measured rather than assumed: the peak RSS
// of a process that holds the model the way a worker does and nothing else — the
// worker's code loaded, the model on its inference thread (its own JS isolate, as in
// every worker), onnxruntime's weights, its arena and the activations of a batch.
// What a worker holds beyond this grows with the chunk: the 3 × (input + output) term.
// Run as a child: prints the figure in bytes on stdout.

import { availableParallelism } from 'node:os';
import { loadWorkerModules, peakRssBytes } from '../cli/local-worker.ts';
import { ThreadedModel } from '../core/model/index.ts';

const [modelPath, patchJson, batchText, device] = process.argv.slice(2);
const patch = JSON.parse(patchJson!) as [number, number, number];
const batch = Number(batchText);
await loadWorkerModules();
const model = await ThreadedModel.open(
  { path: modelPath! },
  { device: device === 'gpu' ? 'gpu' : 'cpu', intraOpThreads: availableParallelism() },
);
const voxels = patch[0] * patch[1] * patch[2];
// Several batches, as a worker runs: onnxruntime settles its allocations after the first.
const input = new Float32Array(batch * voxels).fill(0.5);
for (let i = 0; i < 3; i++) await model.run(input, batch, patch);
await model.close();
process.stdout.write(`${peakRssBytes()}\n`);
