// `tessera worker --job <jobId>`: the container command of the Batch fleet, and how any
// machine with credentials joins a running cloud job (hybrid fleet). Claims until no
// work is left; SIGTERM or a spot interruption notice stops claiming, releases the
// chunks in hand and exits well inside Batch's 30 s grace period.

import { hostname } from 'node:os';
import { loadCloudJob } from '../adapters/aws/cloud-steps.ts';
import { cloudClientsFromEnv, cloudDeps } from '../adapters/aws/deps.ts';
import { readCloudEnv } from '../adapters/aws/env.ts';
import { watchSpotInterruption } from '../adapters/aws/spot-notice.ts';
import { openInBackground, ThreadedModel } from '../core/model/index.ts';
import { ensureOutput, readModelBytes, runWorker } from '../core/pipeline/index.ts';
import { ENV } from '../functions/contracts.ts';
import { intOption, parse } from './args.ts';

const USAGE = `Usage: tessera worker --job <jobId> [--device cpu|gpu] [--threads N] [--batch N]

Claims and infers chunks of a cloud job until none is left. Reads the table and bucket
from TESSERA_TABLE and TESSERA_BUCKET (set by the stack on Batch; export them to join
from another machine). AWS_BATCH_JOB_ARRAY_INDEX picks where this worker starts.`;

/** Spreads array children over the chunk list without knowing the array size. */
export function startIndexFor(arrayIndex: number, chunks: number): number {
  const golden = 0.6180339887498949;
  return Math.floor(((arrayIndex * golden) % 1) * chunks);
}

export async function workerCommand(args: string[]): Promise<number> {
  const { values, help } = parse(
    args,
    {
      job: { type: 'string' },
      device: { type: 'string' },
      threads: { type: 'string' },
      batch: { type: 'string' },
    },
    USAGE,
  );
  if (help) return 0;
  const jobId = values.job as string | undefined;
  if (!jobId) {
    process.stderr.write(`--job is required\n${USAGE}\n`);
    return 2;
  }
  const device = (values.device as string | undefined) ?? undefined;
  if (device !== undefined && device !== 'cpu' && device !== 'gpu')
    throw new Error(`--device must be cpu or gpu, got "${device}"`);
  const log = (record: Record<string, unknown>): void => {
    process.stdout.write(
      `${JSON.stringify({ time: new Date().toISOString(), jobId, ...record })}\n`,
    );
  };
  const env = readCloudEnv();
  const deps = cloudDeps(env, cloudClientsFromEnv(process.env, env));
  const ctx = await loadCloudJob(deps, jobId);
  const m = ctx.manifest;
  // The model downloads and loads on its own while the worker claims and reads its first
  // chunk (a spot replacement starts inferring sooner); one that fails to load hands that
  // chunk back unspent and the worker exits with the model's error.
  const model = openInBackground(
    readModel(m.model.url, env.maxModelBytes).then((bytes) =>
      ThreadedModel.open(
        { bytes, name: m.model.url },
        {
          ...(m.model.sha256 ? { sha256: m.model.sha256 } : {}),
          device: (device as 'cpu' | 'gpu' | undefined) ?? m.compute.device,
          ...(values.threads ? { intraOpThreads: intOption(values.threads, 'threads', 1) } : {}),
          log: (message) => log({ level: 'warn', message }),
        },
      ),
    ),
  );
  const controller = new AbortController();
  const stop = (why: string) => (): void => {
    if (controller.signal.aborted) return;
    log({ level: 'info', message: `stopping: ${why}; releasing chunks in hand` });
    controller.abort();
  };
  process.once('SIGTERM', stop('SIGTERM'));
  process.once('SIGINT', stop('SIGINT'));
  const unwatch = watchSpotInterruption({
    onNotice: (a) =>
      stop(`spot interruption notice (${a.action ?? 'terminate'} at ${a.time ?? 'soon'})`)(),
    log: (message) => log({ level: 'info', message }),
  });
  const arrayIndex = Number(process.env.AWS_BATCH_JOB_ARRAY_INDEX ?? 0);
  const owner = `${hostname()}-${process.pid}${process.env.AWS_BATCH_JOB_ID ? `-${process.env.AWS_BATCH_JOB_ID}` : ''}`;
  try {
    const stats = await runWorker({
      ctx,
      ledger: deps.ledger,
      // Idempotent create-or-open: the first worker creates the array, the rest open it.
      output: await ensureOutput(ctx),
      owner,
      model: model.ready,
      startIndex: startIndexFor(
        Number.isInteger(arrayIndex) ? arrayIndex : 0,
        ctx.plan.counts.chunks,
      ),
      ...(values.batch ? { batchSize: intOption(values.batch, 'batch', 4) } : {}),
      signal: controller.signal,
      hardStopMs: 20_000,
      onEvent: (event) =>
        log({
          level: event.type === 'failed' || event.type === 'warning' ? 'warn' : 'info',
          owner,
          ...event,
        }),
    });
    const ranOn = (await model.ready).device;
    log({ level: 'info', message: 'worker finished', owner, device: ranOn, ...stats });
    return 0;
  } finally {
    unwatch();
    await model.close();
  }
}

/** The model's bytes; over `maxBytes` it is refused (ModelTooLargeError) before the download. */
async function readModel(url: string, maxBytes: number | undefined): Promise<Uint8Array> {
  const bytes = await readModelBytes(url, {
    ...(maxBytes === undefined ? {} : { maxBytes }),
    setting: ENV.maxModelBytes,
  });
  if (!bytes)
    throw new Error(`model.url ${url} does not exist; upload the model or fix the manifest`);
  return bytes;
}
