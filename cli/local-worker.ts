// A local worker process: forked by `tessera run`, it claims chunks through the parent's
// ledger (IPC), runs the model on its own inference thread, and reports events. SIGTERM
// or SIGINT stops it claiming and releases what it holds. A fault of the environment that
// outlasts the worker's pause (a full disk under the output or the state directory, a
// ledger that cannot record) is reported as an 'environment' event, the chunks go back
// unspent and the process exits 0: the coordinator stops the run on that event.
//
// Start-up is on the run's critical path (and a spot replacement's): this module loads
// only what opening the model needs, starts the model on its own thread, and loads the
// rest of the worker (reading, accumulation, writing, the ledger client) meanwhile.

import { readFileSync } from 'node:fs';
import { ENV } from '../contracts/cloud.ts';
import type { Manifest } from '../core/manifest/schema.ts';
import { modelExpectation } from '../core/model/signature.ts';
import { openInBackground, ThreadedModel } from '../core/model/threaded.ts';
import { checkLocalModelSize, DEFAULT_MAX_MODEL_BYTES } from '../core/pipeline/model-source.ts';
import type { WorkerEvent } from '../core/pipeline/worker.ts';

export interface WorkerInit {
  type: 'init';
  /**
   * The manifest as the coordinator validated it, and the directory its relative paths
   * are under: a worker does not parse it again (nor load the validator, ~0.1 s of start-up).
   */
  manifest: Manifest;
  baseDir: string;
  workDir: string;
  jobId: string;
  owner: string;
  startIndex: number;
  threads: number;
  batchSize: number;
  device: 'cpu' | 'gpu';
}

export type WorkerMessage =
  | { type: 'event'; owner: string; event: WorkerEvent }
  | { type: 'ready'; owner: string; device: string }
  | { type: 'fatal'; owner: string; error: string }
  | {
      type: 'resources';
      owner: string;
      maxRssBytes: number;
      /** CPU seconds of the whole process (all threads, inference included). */
      cpuSeconds: number;
      /** CPU seconds of the main thread alone (reads, accumulation, writes); Linux only. */
      mainThreadCpuSeconds?: number;
    };

const send = (m: WorkerMessage): void => {
  process.send?.(m);
};

export async function workerProcessMain(init: WorkerInit): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  let model: ReturnType<typeof openInBackground> | undefined;
  try {
    const { manifest, baseDir } = init;
    // The file checked is the file opened (one resolver); over the cap, the run fails at
    // once naming model.url and the limit (not out of memory).
    const modelPath = await checkLocalModelSize(manifest.model.url, {
      baseDir,
      maxBytes: maxModelBytes(process.env),
      setting: ENV.maxModelBytes,
    });
    // The model loads on its own thread while this one opens the job, claims the first
    // chunk and reads its input: start-up costs the longer of the two, not their sum.
    model = openInBackground(
      ThreadedModel.open(
        { path: modelPath },
        {
          sha256: manifest.model.sha256,
          device: init.device,
          expect: modelExpectation(manifest, { batchSize: init.batchSize }),
          intraOpThreads: init.threads,
          log: (m) =>
            send({ type: 'event', owner: init.owner, event: { type: 'warning', message: m } }),
        },
      ),
      (m) => send({ type: 'ready', owner: init.owner, device: m.device }),
    );
    const [{ IpcLedgerClient }, { openJob, openJobOutput, runWorker }, { LocalStore }] =
      await loadWorkerModules();
    const ctx = await openJob(manifest, {
      jobId: init.jobId,
      work: new LocalStore(init.workDir),
      baseDir,
      previewTiles: true,
    });
    const output = await openJobOutput(ctx);
    const stats = await runWorker({
      ctx,
      ledger: new IpcLedgerClient(process),
      output,
      owner: init.owner,
      model: model.ready,
      startIndex: init.startIndex,
      batchSize: init.batchSize,
      signal: controller.signal,
      onEvent: (event) => send({ type: 'event', owner: init.owner, event }),
    });
    // Not a crash: the 'environment' event has told the coordinator why, and the chunks
    // went back unspent (or, where the ledger could not record that, the coordinator's
    // next run frees them).
    if (stats.environment) process.exitCode = 0;
  } catch (e) {
    send({ type: 'fatal', owner: init.owner, error: e instanceof Error ? e.message : String(e) });
    process.exitCode = 1;
  } finally {
    await model?.close();
    const cpu = process.cpuUsage();
    const main = mainThreadCpuSeconds();
    send({
      type: 'resources',
      owner: init.owner,
      maxRssBytes: peakRssBytes(),
      cpuSeconds: (cpu.user + cpu.system) / 1e6,
      ...(main !== undefined ? { mainThreadCpuSeconds: main } : {}),
    });
  }
}

/** The rest of the worker, loaded while its model opens. */
export function loadWorkerModules() {
  return Promise.all([
    import('../core/ledger/index.ts'),
    import('../core/pipeline/index.ts'),
    import('../core/store/index.ts'),
  ]);
}

/** The model size cap: TESSERA_MAX_MODEL_BYTES, or DEFAULT_MAX_MODEL_BYTES (2 GiB). */
export function maxModelBytes(env: NodeJS.ProcessEnv): number {
  const raw = env[ENV.maxModelBytes];
  if (raw === undefined || raw.trim() === '') return DEFAULT_MAX_MODEL_BYTES;
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < 1)
    throw new Error(
      `${ENV.maxModelBytes} must be a positive whole number of bytes (e.g. ${DEFAULT_MAX_MODEL_BYTES} for 2 GiB), got "${raw}"`,
    );
  return n;
}

// Entry point when forked.
if (process.send && process.argv.includes('--tessera-worker')) {
  process.once('message', (m: WorkerInit) => {
    void workerProcessMain(m).then(() => process.disconnect?.());
  });
}

/**
 * This process's peak resident memory. Not getrusage's ru_maxrss: Linux carries the
 * forking parent's RSS over into a spawned child's (seen here: a child of a 600 MiB
 * parent reported 604 MiB, its own peak being 39), so a worker forked by a large
 * coordinator would report the coordinator's memory. VmHWM is this address space's own
 * high-water mark; ru_maxrss stays the fallback where /proc is not there.
 */
export function peakRssBytes(): number {
  try {
    const kib = /VmHWM:\s+(\d+)\s+kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (kib !== undefined) return Number(kib) * 1024;
  } catch {
    // not Linux
  }
  return process.resourceUsage().maxRSS * 1024; // kilobytes on Linux and macOS
}

/** This thread's CPU seconds from /proc (utime + stime, in clock ticks of 1/100 s). */
function mainThreadCpuSeconds(): number | undefined {
  try {
    const stat = readFileSync('/proc/thread-self/stat', 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return undefined;
  }
}
