// Runs one real worker over a job in a process of its own and reports its memory: the
// plan's estimate (workerMemory), the RSS before the model, once the model is loaded
// (before any chunk), and the peak RSS after the work (getrusage maxRSS). argv: <manifest.json> <state dir> <batch size>.
// Prints one JSON line.

import { statSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifest } from '../../cli/job-files.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { modelExpectation, ThreadedModel } from '../../core/model/index.ts';
import { ensureOutput, openJob, planJob, runWorker } from '../../core/pipeline/index.ts';
import { workerMemory } from '../../core/pipeline/memory-estimate.ts';
import { resolveModelPath } from '../../core/pipeline/model-source.ts';
import { LocalStore } from '../../core/store/index.ts';

const [manifestPath, stateDir, batch] = process.argv.slice(2);
if (!manifestPath || !stateDir || !batch)
  throw new Error('usage: memory-probe <manifest> <state> <batch>');
const batchSize = Number(batch);
const loaded = await loadManifest(manifestPath);
const ctx = await openJob(loaded.manifest, {
  jobId: loaded.jobId,
  work: new LocalStore(join(stateDir, 'work'), { fsync: false }),
  baseDir: loaded.baseDir,
});
const ledger = new MemoryLedger();
const output = await ensureOutput(ctx);
await planJob(ctx, ledger, { leaseMs: 600_000 });
const modelPath = resolveModelPath(loaded.manifest.model.url, loaded.baseDir);
const estimate = workerMemory(ctx.plan, loaded.manifest, {
  batchSize,
  modelBytes: statSync(modelPath).size,
  input: { channels: ctx.input.channels, dtype: ctx.input.dtype, chunkShape: ctx.input.chunkShape },
});
const before = process.memoryUsage().rss;
const model = await ThreadedModel.open(
  { path: modelPath },
  { intraOpThreads: 1, expect: modelExpectation(loaded.manifest) },
);
// The runtime (Node, V8, onnxruntime's library and session) is in now; what the work adds is
// the chunk, accumulation, output and batch buffers.
const loadedRss = process.memoryUsage().rss;
try {
  const stats = await runWorker({
    ctx,
    ledger,
    output,
    owner: 'probe',
    model,
    batchSize,
    idlePollMs: 0,
  });
  const peak = process.resourceUsage().maxRSS * 1024;
  process.stdout.write(
    `${JSON.stringify({ before, loadedRss, peak, estimate, done: stats.done, chunks: ctx.plan.counts.chunks })}\n`,
  );
} finally {
  await model.close();
}
