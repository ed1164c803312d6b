// `tessera worker --job <jobId>`: the container command of the Batch fleet, and how any
// machine with credentials joins a running cloud job (hybrid fleet). Claims until no
// work is left; SIGTERM or a spot interruption notice stops claiming, releases the
// chunks in hand and exits well inside Batch's 30 s grace period.
//
// The exit code tells Batch what to do with the child (see WORKER_EXIT and the job
// definitions' retry strategy):
//   0                        no work left: done
//   WORKER_EXIT.interrupted  SIGTERM, SIGINT or a spot notice: chunks released unspent; retry
//   WORKER_EXIT.hung         the hang watchdog abandoned a chunk: the inference thread is
//                            wedged, only a fresh process can infer again; retry
//   WORKER_EXIT.interrupted  also: a fault of the environment (S3 or DynamoDB throttled or
//                            unreachable through the SDK's retries, a full or failing local
//                            disk) outlasted the worker's pause: chunks released unspent;
//                            retry (logged at level 'error' with the place and the cause)
//   anything else            a real failure (model unreadable, job missing): no retry

import { hostname } from 'node:os';
import { cloudClientsFromEnv, cloudDeps } from '../adapters/aws/deps.ts';
import { readCloudEnv } from '../adapters/aws/env.ts';
import { watchSpotInterruption } from '../adapters/aws/spot-notice.ts';
import { ENV, WORKER_EXIT } from '../contracts/cloud.ts';
import { loadCloudJob } from '../core/cloud/index.ts';
import { modelExpectation, openInBackground, ThreadedModel } from '../core/model/index.ts';
import { ensureOutput, readModelBytes, runWorker } from '../core/pipeline/index.ts';
import { intOption, parse } from './args.ts';

const USAGE = `Usage: tessera worker --job <jobId> [--device cpu|gpu] [--threads N] [--batch N] [--no-seam-blend]

Claims and infers chunks of a cloud job until none is left, and blends each seam block it
is the last contributor of (--no-seam-blend: writes its partials and leaves every seam
block to the state machine's Blend step; so does TESSERA_SEAM_BLEND=off). Reads the table and bucket
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
      'no-seam-blend': { type: 'boolean' },
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
  // Listening from the start: a reclaim while the job and the model load is an
  // interruption too (without a handler, SIGTERM would kill the process with no code).
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
  try {
    return await work(jobId, device, values, controller.signal, log);
  } finally {
    unwatch();
  }
}

async function work(
  jobId: string,
  device: 'cpu' | 'gpu' | undefined,
  values: Record<string, string | boolean | undefined>,
  signal: AbortSignal,
  log: (record: Record<string, unknown>) => void,
): Promise<number> {
  const env = readCloudEnv();
  const deps = cloudDeps(env, cloudClientsFromEnv(process.env, env));
  const ctx = await loadCloudJob(deps, jobId);
  const m = ctx.manifest;
  // The model downloads and loads on its own while the worker claims and reads its first
  // chunk (a spot replacement starts inferring sooner); one that fails to load hands that
  // chunk back unspent and the worker exits with the model's error.
  let ranOn: string | undefined;
  const model = openInBackground(
    readModel(m.model.url, env.maxModelBytes).then((bytes) =>
      ThreadedModel.open(
        { bytes, name: m.model.url },
        {
          ...(m.model.sha256 ? { sha256: m.model.sha256 } : {}),
          device: device ?? m.compute.device,
          expect: modelExpectation(m),
          ...(values.threads ? { intraOpThreads: intOption(values.threads, 'threads', 1) } : {}),
          log: (message) => log({ level: 'warn', message }),
        },
      ),
    ),
    (opened) => {
      ranOn = opened.device;
    },
  );
  const arrayIndex = Number(process.env.AWS_BATCH_JOB_ARRAY_INDEX ?? 0);
  const owner = `${hostname()}-${process.pid}${process.env.AWS_BATCH_JOB_ID ? `-${process.env.AWS_BATCH_JOB_ID}` : ''}`;
  const startIndex = startIndexFor(
    Number.isInteger(arrayIndex) ? arrayIndex : 0,
    ctx.plan.counts.chunks,
  );
  log({
    level: 'info',
    message: 'joined the job',
    owner,
    chunks: ctx.plan.counts.chunks,
    startIndex,
  });
  let closeModel = true;
  try {
    const stats = await runWorker({
      ctx,
      ledger: deps.ledger,
      // Idempotent create-or-open: the first worker creates the array, the rest open it.
      output: await ensureOutput(ctx),
      owner,
      model: model.ready,
      startIndex,
      ...(values.batch ? { batchSize: intOption(values.batch, 'batch', 4) } : {}),
      blendSeams: values['no-seam-blend'] !== true && process.env[ENV.seamBlend] !== 'off',
      signal,
      hardStopMs: 20_000,
      onEvent: (event) =>
        log({
          level:
            event.type === 'environment'
              ? 'error'
              : event.type === 'failed' || event.type === 'warning'
                ? 'warn'
                : 'info',
          owner,
          ...event,
        }),
    });
    if (stats.hung) {
      const { chunkId, stalledMs, boundMs } = stats.hung;
      log({
        level: 'error',
        message:
          `inference of chunk ${chunkId} finished no batch in ${Math.round(stalledMs / 1000)} s ` +
          `(bound ${Math.round(boundMs / 1000)} s): the chunk is abandoned (its lease runs out and ` +
          'another worker re-claims it) and this worker exits for a fresh process to take its place',
        owner,
        device: ranOn,
        ...stats,
      });
      closeModel = false;
      await closeWedgedModel(
        model
          .close()
          .catch((e: unknown) =>
            log({ level: 'warn', message: `closing the model failed: ${String(e)}` }),
          ),
        log,
      );
      return WORKER_EXIT.hung;
    }
    if (stats.environment) {
      const { message, code, place } = stats.environment;
      log({
        level: 'error',
        message,
        owner,
        device: ranOn,
        ...(place === undefined ? {} : { place }),
        ...(code === undefined ? {} : { code }),
        ...stats,
      });
      return WORKER_EXIT.interrupted;
    }
    const interrupted = signal.aborted;
    log({ level: 'info', message: 'worker finished', owner, device: ranOn, interrupted, ...stats });
    return interrupted ? WORKER_EXIT.interrupted : 0;
  } finally {
    if (closeModel) await model.close();
  }
}

/**
 * ThreadedModel.close() waits 30 s for the thread to answer, then terminates it. A thread
 * wedged in JavaScript stops then, and the process exits with its code. One wedged inside
 * the runtime's native code (onnxruntime runs sessions synchronously) can be stopped by
 * nothing, and Node joins every thread before it exits, so no exit code can be returned:
 * the process kills itself instead. (As a container's PID 1 a process cannot; the job
 * definition then needs an init process.)
 */
async function closeWedgedModel(
  closing: Promise<void>,
  log: (record: Record<string, unknown>) => void,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<'stuck'>((resolve) => {
    timer = setTimeout(() => resolve('stuck'), 45_000);
  });
  try {
    if ((await Promise.race([closing, stuck])) !== 'stuck') return;
  } finally {
    clearTimeout(timer);
  }
  log({
    level: 'error',
    message: 'the inference thread cannot be stopped (stuck in native code): killing the process',
  });
  process.kill(process.pid, 'SIGKILL');
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
