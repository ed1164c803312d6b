// A ModelRunner on its own thread, behind the same run() signature. Batches travel as
// transferred ArrayBuffers (no copies); the caller gets its batch buffer back with the
// result so it can be refilled while the next batch computes.

import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { ModelRunError } from './errors.ts';
import { lowerPriority, threadIds } from './priority.ts';
import type { Device, ModelRunnerOptions, ModelSource, Patch } from './runner.ts';
import { RemoteModelError, rebuildError, type SerialisedError } from './thread-errors.ts';

export { RemoteModelError, type SerialisedError } from './thread-errors.ts';

export type ThreadRequest =
  | { type: 'run'; id: number; batch: Float32Array; n: number; patch: Patch; outPatch: Patch }
  | { type: 'close' };

export type ThreadReply =
  | {
      type: 'ready';
      device: Device;
      providers: string[];
      /** Set when a GPU was asked for and the model runs on CPU: the cause. */
      fallback?: string | undefined;
      sha256: string;
      inputChannels: number | undefined;
      outputChannels: number | undefined;
      logs: string[];
    }
  | { type: 'failed'; error: SerialisedError; logs: string[] }
  | { type: 'result'; id: number; out: Float32Array; batch: Float32Array }
  | { type: 'error'; id: number; error: SerialisedError; batch: Float32Array }
  | { type: 'closed' };

/** How long close() waits for runs in flight and the session's release before terminating. */
const CLOSE_GRACE_MS = 30_000;

interface Pending {
  resolve: (r: { out: Float32Array; batch: Float32Array }) => void;
  reject: (e: Error) => void;
}

export class ThreadedModel {
  private nextId = 0;
  private readonly pending = new Map<number, Pending>();
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly worker: Worker,
    readonly info: Extract<ThreadReply, { type: 'ready' }>,
    /** The model's name in errors, as the runner names it. */
    private readonly modelName: string,
    /** Threads that appeared while the model opened: the inference thread and its pool. */
    private readonly inferenceThreads: ReadonlySet<number>,
  ) {
    worker.on('message', (m: ThreadReply) => {
      if (m.type !== 'result' && m.type !== 'error') return;
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.type === 'result') p?.resolve({ out: m.out, batch: m.batch });
      else p?.reject(rebuildError(m.error));
    });
    worker.on('error', (e) => this.failAll(e));
    worker.on('exit', (code) =>
      this.failAll(
        new RemoteModelError({
          name: 'ThreadExit',
          message: `inference thread exited (code ${code})`,
        }),
      ),
    );
  }

  static async open(
    source: ModelSource,
    options: Omit<ModelRunnerOptions, 'log'> & { log?: (m: string) => void } = {},
  ): Promise<ThreadedModel> {
    const { log, ...rest } = options;
    // libuv's pool starts with the process's first asynchronous file operation, in
    // whichever thread asks first. Started here, before the inference thread exists, it is
    // never taken for one of that thread's own (which keep their priority): otherwise a
    // process whose first read is the model's (the inference thread reading the model
    // file, a warm module cache) keeps its file-system pool at inference priority.
    await stat(fileURLToPath(import.meta.url));
    const before = new Set(threadIds());
    const worker = new Worker(new URL('./thread-boot.cjs', import.meta.url), {
      workerData: {
        entry: fileURLToPath(new URL('./thread-entry.ts', import.meta.url)),
        source,
        options: rest,
      },
    });
    const first = await new Promise<ThreadReply>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    if (first.type === 'failed') {
      for (const m of first.logs) (log ?? console.warn)(m);
      await worker.terminate();
      throw rebuildError(first.error);
    }
    if (first.type !== 'ready') throw new Error(`inference thread sent ${first.type} before ready`);
    for (const m of first.logs) (log ?? console.warn)(m);
    const name = 'path' in source ? source.path : (source.name ?? '<in-memory model>');
    const inference = new Set(threadIds().filter((t) => !before.has(t)));
    return new ThreadedModel(worker, first, name, inference);
  }

  /**
   * Lowers the scheduling priority of every thread of this process but this model's
   * inference threads (see priority.ts), so reads, writes, accumulation, heartbeats and
   * garbage collection run in the gaps. Measured here on 2 cores with only the main
   * thread lowered: a batch took 35% longer at equal priority and 7% longer at nice 10;
   * libuv's pool and V8's helpers, created before, still ran at full priority. Call it
   * after open(), from the main thread.
   */
  yieldToInference(by = 10): void {
    lowerPriority(by, this.inferenceThreads);
  }

  /**
   * For a process that runs no inference itself (the coordinator): all its threads. Call
   * it after forking the workers: a child starts at its forking thread's priority.
   */
  static yieldToInference(by = 10): void {
    lowerPriority(by);
  }

  get device(): Device {
    return this.info.device;
  }

  /**
   * Runs a batch. The batch buffer is transferred to the thread: the caller must not touch
   * `batch` until the promise settles, and gets it back (as `batch`) in the result.
   */
  runTransfer(
    batch: Float32Array,
    n: number,
    patch: Patch,
    outPatch: Patch = patch,
  ): Promise<{ out: Float32Array; batch: Float32Array }> {
    if (this.closing)
      return Promise.reject(
        new ModelRunError(this.modelName, [], 'the inference thread was closed; open a new model'),
      );
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const req: ThreadRequest = { type: 'run', id, batch, n, patch, outPatch };
      this.worker.postMessage(req, [batch.buffer as ArrayBuffer]);
    });
  }

  /** PatchModel-compatible: copies the batch so the caller's array stays usable. */
  async run(
    batch: Float32Array,
    n: number,
    patch: Patch,
    outPatch: Patch = patch,
  ): Promise<Float32Array> {
    return (await this.runTransfer(batch.slice(), n, patch, outPatch)).out;
  }

  /**
   * Closes gracefully: the thread answers every run already sent, releases the session and
   * exits on its own. Terminating it while onnxruntime is inside a run, or with a session
   * still alive, can crash the whole process at teardown (seen as a worker killed by a
   * signal right after its last chunk failed with a batch still in flight). Terminates
   * only if the thread has not finished within CLOSE_GRACE_MS. Idempotent.
   */
  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'close' } satisfies ThreadRequest);
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      timer = setTimeout(() => resolve('late'), CLOSE_GRACE_MS);
    });
    try {
      if ((await Promise.race([exited, late])) === 'late') await this.worker.terminate();
    } finally {
      clearTimeout(timer);
    }
  }

  private failAll(e: Error): void {
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
  }
}

/**
 * A model opening in the background, for a worker that claims and reads its first chunk
 * meanwhile. `ready` resolves once the model is open and the worker's other threads yield
 * to it; a failure is left to whoever awaits `ready` (runWorker hands its chunk back and
 * rethrows). `close` closes the model if it opened.
 */
export function openInBackground(
  opening: Promise<ThreadedModel>,
  onReady?: (model: ThreadedModel) => void,
): { ready: Promise<ThreadedModel>; close: () => Promise<void> } {
  const ready = opening.then((model) => {
    onReady?.(model);
    model.yieldToInference();
    return model;
  });
  ready.catch(() => {}); // observed by whoever awaits it
  return {
    ready,
    close: async () => {
      await (await opening.catch(() => undefined))?.close();
    },
  };
}
