// The worker under the environment's faults: a full disk under the output or the work
// store (a real tmpfs of 2 MiB filled to its last byte, where this process may mount one;
// otherwise a store that fails with the kernel's own ENOSPC, from /dev/full), a ledger
// that cannot record a completion, an input read throttled by S3 (the SDK's own exception). None of them is the chunk's fault, so none may spend an
// attempt: the worker pauses, and either resumes or hands its chunks back and stops,
// naming the place. The chunk's own error (NaN from the model) still spends one.
// Real Zarr input and output on disk, the in-memory ledger, a JS model.

import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmdirSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3ServiceException } from '@aws-sdk/client-s3';
import { afterAll, describe, expect, it } from 'vitest';
import type { PatchModel } from '../../core/infer/index.ts';
import {
  type ChunkRow,
  type Claim,
  type Ledger,
  LedgerWriteError,
  MemoryLedger,
} from '../../core/ledger/index.ts';
import {
  ensureOutput,
  type JobContext,
  LeaseKeeper,
  planJob,
  runWorker,
  type WorkerEvent,
} from '../../core/pipeline/index.ts';
import { type AbsolutePath, LocalStore, type Store } from '../../core/store/index.ts';
import { type OutputVolume, VolumeReadError } from '../../core/volume/index.ts';
import { tempDir } from '../helpers/job-dir.ts';
import { jsModel } from '../helpers/js-model.ts';
import { openWorkerJob } from '../helpers/worker-job.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups.reverse()) c();
});

/** An hour: a worker that waited out its idle poll would time the test out. */
const NEVER = 3_600_000;
/** Short pauses keep the tests fast; the default is 30 s. */
const PAUSE_MS = 400;

/** A full 2 MiB tmpfs, or (where mounting is refused) undefined and why. */
interface FullDisk {
  dir: string;
  /** Frees the space (deletes the filler). */
  free: () => void;
}

function fullTmpfs(): FullDisk | { why: string } {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (error) {
    rmdirSync(dir);
    return { why: String((error as { stderr?: Buffer }).stderr ?? error).trim() };
  }
  cleanups.push(() => {
    execFileSync('umount', ['-l', dir]);
    rmdirSync(dir);
  });
  return {
    dir,
    free: () => unlinkSync(join(dir, 'filler')),
  };
}

/** Fills `dir`'s filesystem to its last byte. */
function fill(dir: string): void {
  const fd = openSync(join(dir, 'filler'), 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  try {
    for (;;) writeSync(fd, block);
  } catch (error) {
    if ((error as { code?: string }).code !== 'ENOSPC') throw error;
  } finally {
    closeSync(fd);
  }
}

/**
 * Where mounting is refused: a LocalStore whose writes fail, while `full()`, with the
 * kernel's own ENOSPC (a write to /dev/full), as a full disk's would.
 */
function devFullStore(root: string, full: () => boolean): Store {
  const inner = new LocalStore(root, { fsync: false });
  return {
    location: inner.location,
    get: (k) => inner.get(k),
    getRange: (k, r) => inner.getRange(k, r),
    list: (p) => inner.list(p),
    delete: (k) => inner.delete(k),
    set: async (k: AbsolutePath, v: Uint8Array) => {
      if (full()) {
        const fd = openSync('/dev/full', 'w');
        try {
          writeSync(fd, v);
        } finally {
          closeSync(fd);
        }
      }
      return inner.set(k, v);
    },
  };
}

/**
 * A disk that is full until freed: a real tmpfs where it can be mounted, else a plain
 * directory whose stores (`store`) fail as /dev/full does. Returns the two switches.
 */
function diskFor(): {
  dir: string;
  store?: (root: string) => Store;
  fill: () => void;
  free: () => void;
} {
  const fs = fullTmpfs();
  if (!('why' in fs)) return { dir: fs.dir, fill: () => fill(fs.dir), free: fs.free };
  console.warn(`tmpfs not mountable (${fs.why}): ENOSPC from /dev/full instead`);
  const t = tempDir();
  cleanups.push(t.cleanup);
  let full = false;
  return {
    dir: t.dir,
    store: (root) => devFullStore(root, () => full),
    fill: () => {
      full = true;
    },
    free: () => {
      full = false;
    },
  };
}

async function job(o: { maxAttempts?: number; outputDir?: string; work?: Store } = {}) {
  const { ctx } = await openWorkerJob({
    cleanups,
    maxAttempts: o.maxAttempts ?? 3,
    // Small blocks: each chunk owns some (written final) and shares some (seam partials).
    output: { url: o.outputDir ?? 'output.zarr', blockShape: [8, 4, 4] },
    ...(o.work ? { work: o.work } : {}),
  });
  expect(ctx.plan.counts.ownedBlocks).toBeGreaterThan(0);
  expect(ctx.plan.counts.seamBlocks).toBeGreaterThan(0);
  const ledger = new MemoryLedger();
  await planJob(ctx, ledger, { leaseMs: 60_000 });
  return { ctx, ledger };
}

async function rows(ledger: Ledger, ctx: JobContext): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const row of ledger.list(ctx.jobId)) out.push(row);
  return out;
}

const warnings = (events: WorkerEvent[], prefix: string): string[] =>
  events.flatMap((e) => (e.type === 'warning' && e.message.startsWith(prefix) ? [e.message] : []));

/** The output volume, with each failed block write counted (and `onFailure` told). */
function counting(output: OutputVolume, onFailure: (n: number) => void): OutputVolume {
  let failures = 0;
  return new Proxy(output, {
    get(target, prop, receiver) {
      if (prop !== 'writeBlock') return Reflect.get(target, prop, receiver);
      return async (...args: Parameters<OutputVolume['writeBlock']>) => {
        try {
          return await target.writeBlock(...args);
        } catch (error) {
          onFailure(++failures);
          throw error;
        }
      };
    },
  });
}

describe('a full disk under the output', () => {
  it('spends no attempt: the worker pauses, hands every chunk back and stops, naming the directory', async () => {
    const disk = diskFor();
    const outDir = join(disk.dir, 'out.zarr');
    const { ctx, ledger } = await job({ outputDir: outDir });
    const store = disk.store?.(outDir);
    const output = await ensureOutput(store ? { ...ctx, outputStore: store } : ctx);
    disk.fill();
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      pauseMs: PAUSE_MS,
      onEvent: (e) => events.push(e),
    });
    const all = await rows(ledger, ctx);
    expect(all.filter((r) => r.status === 'FAILED')).toEqual([]);
    // Released unspent: every chunk is claimable again with all its attempts.
    for (const r of all)
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'PENDING', 0]);
    expect(stats.failed).toBe(0);
    expect(stats.released).toBeGreaterThan(0);
    expect(events.filter((e) => e.type === 'failed')).toEqual([]);
    expect(stats.environment).toMatchObject({ code: 'ENOSPC', place: output.location });
    expect(stats.environment?.message).toContain(`the filesystem of ${output.location} is full`);
    expect(stats.environment?.message).toContain('writing output block');
    const stop = events.filter((e) => e.type === 'environment');
    expect(stop).toHaveLength(1);
    expect(stop[0]).toMatchObject({ code: 'ENOSPC', place: output.location });
    // Announced once, however many retries and chunks the pause saw.
    const paused = warnings(events, 'paused: ');
    expect(paused).toHaveLength(1);
    expect(paused[0]).toMatch(/in .*out\.zarr: .*is full.*; retrying for up to 0.4 s$/);
  });

  it('a disk full for a moment (two failed writes) finishes every chunk on its first attempt', async () => {
    const disk = diskFor();
    const outDir = join(disk.dir, 'out.zarr');
    const { ctx, ledger } = await job({ outputDir: outDir });
    const store = disk.store?.(outDir);
    const output = await ensureOutput(store ? { ...ctx, outputStore: store } : ctx);
    disk.fill();
    let failures = 0;
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output: counting(output, (n) => {
        failures = n;
        if (n === 2) disk.free();
      }),
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      onEvent: (e) => events.push(e),
    });
    expect(failures).toBe(2);
    expect(stats.environment).toBeUndefined();
    expect(stats.failed).toBe(0);
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    for (const r of await rows(ledger, ctx))
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'DONE', 1]);
    expect(warnings(events, 'paused: ')).toHaveLength(1);
    expect(warnings(events, 'resumed: ')).toHaveLength(1);
    expect(warnings(events, 'paused: ')[0]).toContain('retrying for up to 30 s');
  });
});

describe('a full disk under the work store (seam partials)', () => {
  it('spends no attempt and names the work store', async () => {
    const disk = diskFor();
    const workDir = join(disk.dir, 'work');
    const work = disk.store?.(workDir) ?? new LocalStore(workDir, { fsync: false });
    const { ctx, ledger } = await job({ work });
    const output = await ensureOutput(ctx);
    disk.fill();
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output,
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      pauseMs: PAUSE_MS,
      onEvent: (e) => events.push(e),
    });
    const all = await rows(ledger, ctx);
    expect(all.filter((r) => r.status === 'FAILED' || r.attempts !== 0)).toEqual([]);
    expect(stats.failed).toBe(0);
    expect(stats.environment).toMatchObject({ code: 'ENOSPC', place: work.location });
    expect(stats.environment?.message).toContain('writing seam partial');
    expect(stats.environment?.message).toContain(`the filesystem of ${work.location} is full`);
  });
});

/** The in-memory ledger, its completions failing `times` times as a full state directory's would. */
function failingCompletes(
  inner: MemoryLedger,
  times: number,
): { ledger: Ledger; heartbeats: () => number; failures: () => number } {
  let failures = 0;
  let heartbeats = 0;
  const ledger = new Proxy(inner, {
    get(target, prop, receiver) {
      if (prop === 'complete')
        return async (claim: Claim, o?: { skipped?: boolean }) => {
          if (failures < times) {
            failures++;
            throw new LedgerWriteError('/state', 'ENOSPC', 'appending to ledger.jsonl', {
              cause: Object.assign(new Error('ENOSPC: no space left on device, write'), {
                code: 'ENOSPC',
                syscall: 'write',
              }),
            });
          }
          return target.complete(claim, o);
        };
      if (prop === 'heartbeat')
        return async (claim: Claim, o?: { now?: number }) => {
          heartbeats++;
          return target.heartbeat(claim, o);
        };
      const value = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ledger, heartbeats: () => heartbeats, failures: () => failures };
}

describe('a ledger that cannot record a completion (LedgerWriteError)', () => {
  it('does not fail the chunk: it is handed back unspent and the worker stops', async () => {
    const { ctx, ledger: memory } = await job();
    const { ledger } = failingCompletes(memory, Number.POSITIVE_INFINITY);
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output: await ensureOutput(ctx),
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      pauseMs: PAUSE_MS,
      onEvent: (e) => events.push(e),
    });
    const all = await rows(memory, ctx);
    expect(all.filter((r) => r.status === 'FAILED' || r.attempts !== 0)).toEqual([]);
    expect(all.every((r) => r.status === 'PENDING')).toBe(true);
    expect(stats.failed).toBe(0);
    expect(events.filter((e) => e.type === 'failed')).toEqual([]);
    expect(stats.environment).toMatchObject({ code: 'ENOSPC', place: '/state' });
    expect(stats.environment?.message).toContain('ledger state directory /state');
  });

  it('keeps the lease while it retries, and completes once the ledger records again', async () => {
    const { ctx, ledger: memory } = await job();
    const { ledger, heartbeats, failures } = failingCompletes(memory, 2);
    let beatsAtFirstFailure = -1;
    const stats = await runWorker({
      ctx,
      ledger,
      output: await ensureOutput(ctx),
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      heartbeatMs: 20,
      onEvent: (e) => {
        if (e.type === 'warning' && e.message.startsWith('paused: '))
          beatsAtFirstFailure = heartbeats();
        if (e.type === 'warning' && e.message.startsWith('resumed: '))
          // The retries waited 100 + 200 ms with the lease renewed every 20 ms.
          expect(heartbeats() - beatsAtFirstFailure).toBeGreaterThan(3);
      },
    });
    expect(failures()).toBe(2);
    expect(beatsAtFirstFailure).toBeGreaterThanOrEqual(0);
    expect(stats.environment).toBeUndefined();
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    for (const r of await rows(memory, ctx))
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'DONE', 1]);
  });
});

/** The job's input, its reads failing `times` times as S3 throttling that outlived the SDK's retries. */
function throttledInput(
  ctx: JobContext,
  times: number,
): { ctx: JobContext; failures: () => number } {
  let failures = 0;
  const input = new Proxy(ctx.input, {
    get(target, prop, receiver) {
      if (prop !== 'readBox') return Reflect.get(target, prop, receiver);
      return async (...args: Parameters<JobContext['input']['readBox']>) => {
        if (failures < times) {
          failures++;
          const slowDown = new S3ServiceException({
            name: 'SlowDown',
            $fault: 'server',
            $metadata: { httpStatusCode: 503, attempts: 3 },
            message: 'Please reduce your request rate.',
          });
          throw new VolumeReadError(target.location, '', args[0], 'io', 'SlowDown', {
            cause: slowDown,
          });
        }
        return target.readBox(...args);
      };
    },
  });
  return { ctx: { ...ctx, input }, failures: () => failures };
}

describe('a throttled input', () => {
  it('a throttle that passes (two failed reads) costs no attempt', async () => {
    const planned = await job();
    const { ctx, failures } = throttledInput(planned.ctx, 2);
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger: planned.ledger,
      output: await ensureOutput(ctx),
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      onEvent: (e) => events.push(e),
    });
    expect(failures()).toBe(2);
    expect(stats.environment).toBeUndefined();
    expect(stats.done).toBe(ctx.plan.counts.chunks);
    for (const r of await rows(planned.ledger, ctx))
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'DONE', 1]);
    expect(warnings(events, 'paused: reading the input of chunk ')).toHaveLength(1);
  });

  it('a throttle that lasts stops the worker naming the input, every chunk unspent', async () => {
    const planned = await job();
    const { ctx } = throttledInput(planned.ctx, Number.POSITIVE_INFINITY);
    const stats = await runWorker({
      ctx,
      ledger: planned.ledger,
      output: await ensureOutput(ctx),
      owner: 'w1',
      model: jsModel(1, 2),
      idlePollMs: NEVER,
      pauseMs: PAUSE_MS,
    });
    expect(stats.failed).toBe(0);
    expect(stats.environment).toMatchObject({ code: 'SlowDown', place: ctx.input.location });
    expect(stats.environment?.message).toContain('throttled or unavailable');
    for (const r of await rows(planned.ledger, ctx))
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'PENDING', 0]);
  });
});

describe('heartbeats that fail through a pause', () => {
  it('are reported once per streak of failures, not at every beat', async () => {
    const { ctx, ledger: memory } = await job();
    let failing = true;
    const ledger = new Proxy(memory, {
      get(target, prop, receiver) {
        if (prop === 'heartbeat')
          return async (claim: Claim) => {
            if (failing)
              throw new LedgerWriteError('/state', 'ENOSPC', 'appending to ledger.jsonl');
            return target.heartbeat(claim);
          };
        const value = Reflect.get(target, prop, receiver);
        return typeof value === 'function' ? value.bind(target) : value;
      },
    });
    const claim = await memory.claim(ctx.jobId, 'w1');
    const reports: unknown[] = [];
    const keeper = new LeaseKeeper(ledger, claim!, 5, (e) => reports.push(e)).start();
    const beats = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await beats(100);
    expect(reports).toHaveLength(1);
    failing = false;
    await beats(50);
    failing = true;
    await beats(50);
    await keeper.stop();
    expect(reports).toHaveLength(2);
    expect(reports.every((e) => e instanceof LedgerWriteError)).toBe(true);
  });
});

describe("the chunk's own error", () => {
  it('NaN from the model still spends an attempt (regression guard)', async () => {
    const { ctx, ledger } = await job({ maxAttempts: 1 });
    const nan: PatchModel = {
      run: async (_batch, n, patch) =>
        new Float32Array(n * 2 * patch[0] * patch[1] * patch[2]).fill(Number.NaN),
    };
    const events: WorkerEvent[] = [];
    const stats = await runWorker({
      ctx,
      ledger,
      output: await ensureOutput(ctx),
      owner: 'w1',
      model: nan,
      idlePollMs: NEVER,
      onEvent: (e) => events.push(e),
    });
    expect(stats.environment).toBeUndefined();
    expect(stats.failed).toBe(ctx.plan.counts.chunks);
    for (const r of await rows(ledger, ctx)) {
      expect([r.chunkId, r.status, r.attempts]).toEqual([r.chunkId, 'FAILED', 1]);
      expect(r.lastError).toContain('NaN');
    }
  });
});
