// `tessera run <manifest.json> [--workers N] [--state DIR] [--json] [--retry-failed] [--memory SIZE]`

import { parseMemorySize } from '../core/pipeline/memory-estimate.ts';
import { intOption, parse } from './args.ts';
import { type LoadedManifest, loadManifest } from './job-files.ts';
import { type LocalRunResult, runLocal } from './local-run.ts';
import { Progress } from './progress.ts';
import { runChain } from './run-chain.ts';

const USAGE = `Usage: tessera run <manifest.json> [--workers N] [--state DIR] [--json] [--lease-seconds S] [--batch N] [--retry-failed] [--memory SIZE]

Runs the whole pipeline on this machine: plan, N worker processes, verify, blend, finalize.
Interrupted runs (Ctrl-C, kill -9) resume from the state directory (default:
.tessera/<name> beside the manifest) without redoing finished chunks, and without
counting the interruption as a failed attempt of any chunk.

  --retry-failed   run the job's FAILED chunks again (their attempts start over), once
                   their cause is fixed (a bad input chunk restored, a disk enlarged);
                   every DONE chunk is kept. Without it, FAILED chunks stay FAILED.
  --memory SIZE    the memory the workers may share (e.g. 8G); default this machine's, or
                   its container's limit. A job whose workers would not fit is refused
                   before any of them starts, naming what to shrink.`;

export async function runCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    {
      workers: { type: 'string', short: 'w' },
      state: { type: 'string' },
      json: { type: 'boolean' },
      'lease-seconds': { type: 'string' },
      batch: { type: 'string' },
      'retry-failed': { type: 'boolean' },
      memory: { type: 'string' },
    },
    USAGE,
  );
  if (help) return 0;
  const [path] = positionals;
  if (!path || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const json = values.json === true;
  const loaded = await loadManifest(path);
  const controller = new AbortController();
  const onSignal = (): void => controller.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  // A manifest's `then` (two-stage pipelines) runs the next stage once this one succeeded;
  // --state names the first stage's state directory, later stages take their defaults.
  const runStage = (m: LoadedManifest): Promise<LocalRunResult> =>
    runLocal(m, {
      workers: intOption(values.workers, 'workers', m.manifest.compute.maxWorkers),
      stateDir: m === loaded ? (values.state as string | undefined) : undefined,
      leaseMs: intOption(values['lease-seconds'], 'lease-seconds', 60) * 1000,
      batchSize: intOption(values.batch, 'batch', 4),
      retryFailed: values['retry-failed'] === true,
      ...(typeof values.memory === 'string'
        ? { memory: { bytes: parseMemorySize(values.memory), source: `--memory ${values.memory}` } }
        : {}),
      log,
      progress: new Progress(process.stderr, m.manifest.name),
      signal: controller.signal,
    });
  try {
    const stages = await runChain(loaded, runStage);
    const result = stages[stages.length - 1]!.result;
    if (stages.length > 1)
      process.stderr.write(
        `${stages.map((s, i) => `stage ${i + 1} ${s.result.status}: ${s.path}`).join('\n')}\n`,
      );
    if (result.message) process.stderr.write(`${result.message}\n`);
    if (result.status === 'SUCCEEDED') {
      process.stderr.write(
        `done in ${result.seconds.toFixed(1)}s: output ${result.output} (report.json, report.html and preview.png inside), ${result.inferredThisRun} chunks inferred this run\n`,
      );
    }
    const link = result.report?.viewer?.neuroglancer;
    if (link) process.stderr.write(`view in neuroglancer: ${link}\n`);
    if (json) {
      process.stdout.write(
        `${JSON.stringify({ status: result.status === 'SUCCEEDED' ? 'SUCCEEDED' : 'FAILED', output: result.output, chunks: result.chunks, seconds: result.seconds, inferredThisRun: result.inferredThisRun, jobId: result.jobId, ...(link ? { neuroglancer: link } : {}) })}\n`,
      );
    }
    return result.status === 'SUCCEEDED' ? 0 : result.status === 'INTERRUPTED' ? 130 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
