// Ordinary accidents on a workstation, run through `tessera run`: a disk that fills up
// for a few seconds, the whole run killed again and again, a poison chunk whose cause is
// fixed, a coordinator left a zombie, outputs that would land on user data. Each one
// must lose no finished work and leave "run the same command again" working.

import { execFileSync, spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  unlinkSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { join, relative } from 'node:path';
import { loadManifest } from '../cli/job-files.ts';
import { type LocalRunResult, runLocal } from '../cli/local-run.ts';
import type { Vec3 } from '../core/geometry/index.ts';
import { LocalStore } from '../core/store/index.ts';
import { writeZarrArray } from '../core/volume/write-array.ts';
import { FIXTURE_MODELS, lcgVolume } from '../test/helpers/job-dir.ts';
import {
  BIN,
  type Judged,
  judgeFailure,
  judgeSuccess,
  LOCAL,
  type LocalContext,
  type LocalJob,
  localJob,
} from './local-scenarios.ts';
import { Rng } from './rng.ts';
import type { Trial } from './trial.ts';

export const ACCIDENT_ROWS = {
  stateFull: 'state directory full for 3 s (tmpfs)',
  outputFull: 'output directory full for 3 s (tmpfs)',
  repeatedKills: 'whole run SIGKILLed 3 times (maxAttempts 2), run again',
  doubleCtrlC: 'double Ctrl-C (maxAttempts 1), run again',
  fixThenRetry: 'poison input fixed, then --retry-failed',
  zombie: 'coordinator killed, left a zombie, run again',
  outputRefused: 'output on /, ., the input (symlink), inside the input or state dir',
} as const;

const REALISTIC = join(FIXTURE_MODELS, 'realistic.onnx');
const FULL_FOR_MS = 3000;

// ---- a filesystem that fills up for a few seconds --------------------------------------------

/** Mounts a tmpfs of `bytes` on `dir` (created); the returned function unmounts it. */
function mountTmpfs(dir: string, bytes: number): () => void {
  mkdirSync(dir, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir]);
  return () => {
    // Lazy: a worker that is still exiting may hold a file open there.
    execFileSync('umount', ['-l', dir]);
  };
}

/** Fills the filesystem of `dir` to the last byte; returns the filler's path and size. */
function fillUp(dir: string): { path: string; bytes: number } {
  const path = join(dir, '.filler');
  const fd = openSync(path, 'w');
  const block = Buffer.alloc(64 * 1024, 1);
  let bytes = 0;
  try {
    for (let size = block.length; size >= 1; ) {
      try {
        bytes += writeSync(fd, block, 0, size);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
        size = Math.floor(size / 2);
      }
    }
  } finally {
    closeSync(fd);
  }
  return { path, bytes };
}

async function diskFull(c: LocalContext, trial: number, where: 'state' | 'output'): Promise<Trial> {
  const row = where === 'state' ? ACCIDENT_ROWS.stateFull : ACCIDENT_ROWS.outputFull;
  const rng = Rng.for(c.seed, `disk-full-${where}`, trial);
  const after = rng.int(2, 8);
  const t0 = Date.now();
  const job = await localJob(REALISTIC, { seed: 300 + trial, maxAttempts: 2 });
  const mountAt = where === 'state' ? job.stateDir : join(job.dir, 'output.zarr');
  let unmount: (() => void) | undefined;
  try {
    unmount = mountTmpfs(mountAt, 4 * 1024 * 1024);
    const lines: string[] = [];
    let done = 0;
    let filled: { path: string; bytes: number } | undefined;
    const result = await runLocal(await loadManifest(job.path), {
      workers: 2,
      stateDir: job.stateDir,
      leaseMs: 10_000,
      log: (l) => lines.push(l),
      onWorker: (child) => {
        child.on('message', (m: { type?: string; event?: { type?: string } }) => {
          if (m.type !== 'event' || m.event?.type !== 'done' || filled) return;
          if (++done < after) return;
          filled = fillUp(mountAt);
          const f = filled;
          setTimeout(() => unlinkSync(f.path), FULL_FOR_MS);
        });
      },
    });
    const j = await judgeSuccess(job, result);
    spentAttempts(j, 1);
    const paused = lines.filter((l) => /paused|ENOSPC|full/i.test(l));
    if (filled && paused.length === 0)
      j.violations.push('the disk filled up and nothing in the log says so');
    return {
      ...j,
      row,
      path: 'local',
      injected: filled ? 1 : 0,
      dupLive: 0,
      notes: [
        `filled ${where} dir after ${after} chunk(s) with ${filled?.bytes ?? 0} bytes for ${FULL_FOR_MS} ms; ${paused.length} log line(s) about it${paused[0] ? `, first: "${paused[0].slice(0, 160)}"` : ''}`,
      ],
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    unmount?.();
    job.cleanup();
  }
}

export const stateDirFull = (c: LocalContext, t: number): Promise<Trial> => diskFull(c, t, 'state');
export const outputDirFull = (c: LocalContext, t: number): Promise<Trial> =>
  diskFull(c, t, 'output');

/** Chunks that used more than `max` attempts: a fault that was not theirs spent one. */
function spentAttempts(j: Judged, max: number): void {
  const over = j.rows.filter((r) => r.attempts > max);
  if (over.length > 0)
    j.violations.push(
      `${over.length} chunk(s) spent more than ${max} attempt(s) on faults that were not theirs (e.g. ${over[0]!.chunkId}: ${over[0]!.attempts}, last error ${over[0]!.lastError ?? 'none'})`,
    );
}

// ---- the whole run killed, again and again ---------------------------------------------------

function doneLines(job: LocalJob): number {
  const journal = join(job.stateDir, 'ledger', 'ledger.jsonl');
  return existsSync(journal)
    ? readFileSync(journal, 'utf8')
        .split('\n')
        .filter((l) => l.includes('"DONE"')).length
    : 0;
}

/** Starts `tessera run` in its own process group; resolves once `after` chunks are DONE. */
async function runUntil(
  job: LocalJob,
  after: number,
): Promise<{ pid: number; exited: () => boolean; exit: Promise<void> }> {
  const child = spawn(
    process.execPath,
    [BIN, 'run', job.path, '--state', job.stateDir, '--workers', '2'],
    { detached: true, stdio: 'ignore' },
  );
  let exited = false;
  const exit = new Promise<void>((r) =>
    child.once('exit', () => {
      exited = true;
      r();
    }),
  );
  const deadline = Date.now() + 120_000;
  while (doneLines(job) < after && !exited && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 25));
  return { pid: child.pid!, exited: () => exited, exit };
}

export async function repeatedKills(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'repeated-kills', trial);
  const t0 = Date.now();
  const job = await localJob(REALISTIC, { seed: 400 + trial, maxAttempts: 2 });
  try {
    let landed = 0;
    const at: number[] = [];
    for (let k = 0; k < 3; k++) {
      const after = doneLines(job) + rng.int(1, 3);
      at.push(after);
      const run = await runUntil(job, after);
      if (!run.exited()) {
        process.kill(-run.pid, 'SIGKILL');
        landed++;
      }
      await run.exit;
    }
    return await rerunAndJudge(
      job,
      ACCIDENT_ROWS.repeatedKills,
      landed,
      t0,
      (result) =>
        `killed at ${at.join(', ')} DONE journal lines; the last run inferred ${result.inferredThisRun}`,
    );
  } finally {
    job.cleanup();
  }
}

/**
 * The same command run again after the whole run was stopped: it must succeed, equal the
 * reference, and no chunk may have spent an attempt on the stop.
 */
async function rerunAndJudge(
  job: LocalJob,
  row: string,
  injected: number,
  t0: number,
  note: (result: LocalRunResult) => string,
): Promise<Trial> {
  const result = await runLocal(await loadManifest(job.path), {
    workers: 2,
    stateDir: job.stateDir,
  });
  const j = await judgeSuccess(job, result);
  spentAttempts(j, 1);
  return {
    ...j,
    row,
    path: 'local',
    injected,
    dupLive: 0,
    notes: [note(result)],
    seconds: (Date.now() - t0) / 1000,
  };
}

/** Ctrl-C twice: the terminal sends SIGINT to the whole foreground process group. */
export async function doubleCtrlC(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'double-ctrl-c', trial);
  const after = rng.int(1, 6);
  // A first Ctrl-C stops a small run in a few hundred ms: the second must come sooner.
  const gapMs = rng.int(2, 40);
  const t0 = Date.now();
  const job = await localJob(REALISTIC, { seed: 500 + trial, maxAttempts: 1 });
  try {
    const run = await runUntil(job, after);
    let landed = 0;
    if (!run.exited()) {
      process.kill(-run.pid, 'SIGINT');
      await new Promise((r) => setTimeout(r, gapMs));
      if (!run.exited()) {
        process.kill(-run.pid, 'SIGINT');
        landed++;
      }
    }
    await run.exit;
    return await rerunAndJudge(
      job,
      ACCIDENT_ROWS.doubleCtrlC,
      landed,
      t0,
      () =>
        `SIGINT to the process group after ${after} chunk(s), again ${gapMs} ms later (${landed ? 'landed: the run was still stopping' : 'the run had already exited'})`,
    );
  } finally {
    job.cleanup();
  }
}

// ---- a poison chunk whose cause is fixed -----------------------------------------------------

export async function fixThenRetry(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'fix-then-retry', trial);
  const bad: Vec3 = [
    rng.int(0, LOCAL.shape[0] - 1),
    rng.int(0, LOCAL.shape[1] - 1),
    rng.int(0, LOCAL.shape[2] - 1),
  ];
  const t0 = Date.now();
  const clean = Float32Array.from(lcgVolume(LOCAL.shape, 600 + trial), (v) => v / 255);
  const data = clean.slice();
  data[(bad[0] * LOCAL.shape[1] + bad[1]) * LOCAL.shape[2] + bad[2]] = Number.NaN;
  const job = await localJob(join(FIXTURE_MODELS, 'tiny.onnx'), { data, maxAttempts: 2 });
  try {
    const m = await loadManifest(job.path);
    const first = await runLocal(m, { workers: 2, stateDir: job.stateDir });
    const poisoned = new Set(
      [...job.plan.chunks()]
        .filter((ch) => [...job.plan.patches(ch)].some((p) => p.containsPoint(bad)))
        .map((ch) => ch.id),
    );
    const failed = await judgeFailure(job, first, poisoned, 2);
    const violations = [...failed.violations];
    if (!/--retry-failed/.test(first.message ?? ''))
      violations.push(`the FAILED message does not say how to retry: "${first.message}"`);
    // The cause is fixed: the input is written again without the NaN.
    await writeZarrArray(new LocalStore(join(job.dir, 'input.zarr'), { fsync: false }), {
      data: clean,
      shape: [...LOCAL.shape],
      chunkShape: [7, 9, 11],
    });
    const tokens = new Map(failed.rows.map((r) => [r.chunkId, r.token]));
    const again = await runLocal(m, { workers: 2, stateDir: job.stateDir });
    if (again.status !== 'FAILED')
      violations.push(`the same command without --retry-failed ended ${again.status}`);
    const retried = await runLocal(m, { workers: 2, stateDir: job.stateDir, retryFailed: true });
    const j = await judgeSuccess({ ...job, data: clean }, retried);
    for (const r of j.rows)
      if (!poisoned.has(r.chunkId) && r.token !== tokens.get(r.chunkId))
        violations.push(`chunk ${r.chunkId} was DONE before the retry and was inferred again`);
    return {
      ...j,
      violations: [...violations, ...j.violations],
      row: ACCIDENT_ROWS.fixThenRetry,
      path: 'local',
      injected: 1,
      dupLive: 0,
      notes: [
        `NaN at [${bad.join(', ')}] poisoned ${poisoned.size} chunk(s); first run ${first.status}, retry inferred ${retried.inferredThisRun}`,
      ],
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    job.cleanup();
  }
}

// ---- a coordinator killed and never reaped ---------------------------------------------------

function processState(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.[0];
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined; // gone, reaped
    throw e;
  }
}

/**
 * `tessera run` under a parent that never reaps (a container's PID 1 without init): its
 * process group is SIGKILLed, the coordinator stays a zombie, and the rerun must go on.
 */
export async function zombieCoordinator(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'zombie', trial);
  const after = rng.int(1, 8);
  const t0 = Date.now();
  const job = await localJob(REALISTIC, { seed: 700 + trial });
  // A parent that starts the run in a session of its own, prints its pid and never
  // waits for it (SIGCHLD left at its default): its dead child stays a zombie.
  const parent = spawn(
    'python3',
    [
      '-c',
      'import subprocess, sys, time\n' +
        'p = subprocess.Popen(sys.argv[1:], start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)\n' +
        'print(p.pid, flush=True)\n' +
        'time.sleep(120)\n',
      process.execPath,
      BIN,
      'run',
      job.path,
      '--state',
      job.stateDir,
      '--workers',
      '2',
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  const coordinatorPid = new Promise<number>((resolve) =>
    parent.stdout.once('data', (b: Buffer) => resolve(Number(b.toString().trim()))),
  );
  try {
    const deadline = Date.now() + 120_000;
    while (doneLines(job) < after && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    const coordinator = await coordinatorPid;
    let zombie = false;
    if (Number.isInteger(coordinator) && coordinator > 0) {
      process.kill(-coordinator, 'SIGKILL');
      for (let i = 0; i < 100 && !zombie; i++) {
        zombie = processState(coordinator) === 'Z';
        if (!zombie) await new Promise((r) => setTimeout(r, 20));
      }
    }
    const result = await runLocal(await loadManifest(job.path), {
      workers: 2,
      stateDir: job.stateDir,
    });
    const j = await judgeSuccess(job, result);
    if (zombie && processState(coordinator) !== 'Z')
      j.violations.push('the zombie was reaped during the rerun: the check did not meet one');
    return {
      ...j,
      row: ACCIDENT_ROWS.zombie,
      path: 'local',
      injected: zombie ? 1 : 0,
      dupLive: 0,
      notes: [
        `coordinator ${coordinator} killed after ${after} chunk(s), ${zombie ? 'a zombie' : 'not seen as a zombie'} during the rerun`,
      ],
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    parent.kill('SIGKILL');
    job.cleanup();
  }
}

// ---- outputs that would land on user data ----------------------------------------------------

/** Every file under `dir` with its size and mtime: what a refused run must leave alone. */
function snapshot(dir: string): string {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else {
        const s = statSync(p);
        out.push(`${relative(dir, p)} ${s.size} ${s.mtimeMs}`);
      }
    }
  };
  walk(dir);
  return out.sort().join('\n');
}

export async function outputRefused(_c: LocalContext, _trial: number): Promise<Trial> {
  const t0 = Date.now();
  const job = await localJob(join(FIXTURE_MODELS, 'tiny.onnx'));
  try {
    const violations: string[] = [];
    const notes: string[] = [];
    symlinkSync(join(job.dir, 'input.zarr'), join(job.dir, 'link-to-input'));
    const cases: { url: string; names: RegExp }[] = [
      { url: '/', names: /\/|root/i },
      { url: '.', names: /manifest/i },
      { url: 'link-to-input', names: /input/i },
      { url: 'input.zarr/out', names: /input/i },
      { url: 'state/out', names: /state/i },
    ];
    const manifest = JSON.parse(readFileSync(job.path, 'utf8')) as { output: { url: string } };
    const rootHadZarr = existsSync('/zarr.json');
    let refused = 0;
    for (const k of cases) {
      mkdirSync(job.stateDir, { recursive: true });
      const before = snapshot(job.dir);
      writeFileSync(
        job.path,
        JSON.stringify({ ...manifest, output: { ...manifest.output, url: k.url } }),
      );
      let result: LocalRunResult | undefined;
      let error: unknown;
      try {
        result = await runLocal(await loadManifest(job.path), { stateDir: job.stateDir });
      } catch (e) {
        error = e;
      }
      const message = error instanceof Error ? error.message : String(result?.message ?? '');
      if (error === undefined) violations.push(`output.url "${k.url}" was not refused`);
      else {
        refused++;
        if (!k.names.test(message))
          violations.push(
            `output.url "${k.url}": the refusal does not name the collision: ${message}`,
          );
      }
      // The manifest itself was rewritten for the case: compare everything else.
      const after = snapshot(job.dir);
      const changed = diffLines(before, after).filter((l) => !l.startsWith('manifest.json'));
      if (changed.length > 0)
        violations.push(
          `output.url "${k.url}" changed files before the refusal: ${changed.slice(0, 3).join(', ')}`,
        );
      notes.push(`"${k.url}": ${message.split('\n')[0]?.slice(0, 120)}`);
      rmSync(job.stateDir, { recursive: true, force: true });
    }
    if (!rootHadZarr && existsSync('/zarr.json')) violations.push('a zarr.json was written into /');
    return {
      row: ACCIDENT_ROWS.outputRefused,
      path: 'local',
      outcome: refused === cases.length ? 'REFUSED' : 'ACCEPTED',
      expected: 'REFUSED',
      injected: cases.length,
      lost: 0,
      divergent: 0,
      reinferred: 0,
      dupLive: 0,
      equal: undefined,
      violations,
      notes,
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    job.cleanup();
  }
}

function diffLines(a: string, b: string): string[] {
  const sa = new Set(a.split('\n'));
  const sb = new Set(b.split('\n'));
  return [...[...sa].filter((l) => !sb.has(l)), ...[...sb].filter((l) => !sa.has(l))].filter(
    (l) => l !== '',
  );
}
