// The inference thread: owns one ModelRunner and answers run requests. onnxruntime-node
// runs sessions synchronously, so keeping it off the main thread is what lets the
// worker read, write and heartbeat while the model computes.

import { parentPort, workerData } from 'node:worker_threads';
import { ModelRunner, type ModelRunnerOptions, type ModelSource } from './runner.ts';
import { serialiseError } from './thread-errors.ts';
import type { ThreadReply, ThreadRequest } from './threaded.ts';

const port = parentPort!;
const { source, options } = workerData as { source: ModelSource; options: ModelRunnerOptions };

// Loaded with require() (see thread-boot.cjs), so no top-level await.
void start();

async function start(): Promise<void> {
  const logs: string[] = [];
  try {
    const runner = await ModelRunner.open(source, { ...options, log: (m) => logs.push(m) });
    const ready: ThreadReply = {
      type: 'ready',
      device: runner.device,
      providers: runner.providers,
      fallback: runner.fallback,
      sha256: runner.sha256,
      inputChannels: runner.inputChannels,
      outputChannels: runner.outputChannels,
      logs,
    };
    port.postMessage(ready);
    // Requests are handled strictly one after another, close included: the session is
    // released only after every run queued before it has answered, never under one.
    let queue: Promise<void> = Promise.resolve();
    port.on('message', (req: ThreadRequest) => {
      queue = queue.then(() => handle(runner, req));
    });
  } catch (error) {
    port.postMessage({ type: 'failed', error: serialiseError(error), logs } satisfies ThreadReply);
  }
}

async function handle(runner: ModelRunner, req: ThreadRequest): Promise<void> {
  if (req.type === 'close') {
    await runner.close();
    port.postMessage({ type: 'closed' } satisfies ThreadReply);
    port.close();
    return;
  }
  try {
    const out = await runner.run(req.batch, req.n, req.patch, req.outPatch);
    const reply: ThreadReply = { type: 'result', id: req.id, out, batch: req.batch };
    port.postMessage(reply, [out.buffer as ArrayBuffer, req.batch.buffer as ArrayBuffer]);
  } catch (error) {
    const reply: ThreadReply = {
      type: 'error',
      id: req.id,
      error: serialiseError(error),
      batch: req.batch,
    };
    port.postMessage(reply, [req.batch.buffer as ArrayBuffer]);
  }
}
