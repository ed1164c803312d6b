// The faults that are not AWS's: run with the local pipeline (`tessera run`: a journaled
// local ledger in the parent, forked worker processes, real Zarr files on disk).

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadManifest } from '../cli/job-files.ts';
import { type LocalRunResult, runLocal } from '../cli/local-run.ts';
import { Box, Plan, type Vec3 } from '../core/geometry/index.ts';
import { type ChunkRow, LocalLedger } from '../core/ledger/index.ts';
import {
  FIXTURE_MODELS,
  lcgVolume,
  readOutput,
  referenceFor,
  tempDir,
  writeJobDir,
} from '../test/helpers/job-dir.ts';
import { compareChunks } from './compare.ts';
import { writeBrokenModels } from './models.ts';
import { Rng } from './rng.ts';
import type { Trial } from './trial.ts';

export const BIN = new URL('../bin/tessera.js', import.meta.url).pathname;

/** 18 chunks of 8 patches each. */
export const LOCAL = {
  shape: [16, 40, 40] as Vec3,
  patch: [6, 10, 10] as Vec3,
  overlap: [2, 2, 2] as Vec3,
  chunk: [10, 18, 18] as Vec3,
  blend: 'bump' as const,
  channels: 2,
};

export interface LocalContext {
  seed: number;
  log: (line: string) => void;
}

export interface LocalJob {
  dir: string;
  path: string;
  stateDir: string;
  data: Uint8Array | Float32Array;
  model: string;
  plan: Plan;
  cleanup: () => void;
}

export async function localJob(
  model: string,
  o: { data?: Uint8Array | Float32Array; maxAttempts?: number; seed?: number } = {},
): Promise<LocalJob> {
  const t = tempDir('tessera-faults-');
  const data = o.data ?? lcgVolume(LOCAL.shape, o.seed ?? 7);
  const path = await writeJobDir(t.dir, {
    shape: LOCAL.shape,
    data,
    manifest: {
      model: { url: model, patchShape: LOCAL.patch, outputChannels: LOCAL.channels },
      overlap: LOCAL.overlap,
      chunkShape: LOCAL.chunk,
      blend: LOCAL.blend,
      maxAttempts: o.maxAttempts ?? 3,
    },
  });
  const plan = new Plan({
    volumeShape: LOCAL.shape,
    patchShape: LOCAL.patch,
    overlap: LOCAL.overlap,
    chunkShape: LOCAL.chunk,
  });
  return {
    dir: t.dir,
    path,
    stateDir: join(t.dir, 'state'),
    data,
    model,
    plan,
    cleanup: t.cleanup,
  };
}

export async function rowsOf(job: LocalJob, jobId: string): Promise<ChunkRow[]> {
  const ledger = await LocalLedger.open(join(job.stateDir, 'ledger'));
  try {
    const rows: ChunkRow[] = [];
    for await (const r of ledger.list(jobId)) rows.push(r);
    return rows;
  } finally {
    await ledger.close();
  }
}

export type Judged = Pick<
  Trial,
  'outcome' | 'expected' | 'lost' | 'divergent' | 'reinferred' | 'equal' | 'violations'
> & { rows: ChunkRow[] };

/** A run that must succeed: every chunk DONE, output equal to the reference. */
export async function judgeSuccess(job: LocalJob, result: LocalRunResult): Promise<Judged> {
  const jobId = (await loadManifest(job.path)).jobId;
  const rows = await rowsOf(job, jobId);
  const got = await readOutput(job.dir, Box.ofShape(LOCAL.shape));
  const expected = await referenceFor({
    data: job.data,
    shape: LOCAL.shape,
    model: job.model,
    patchShape: LOCAL.patch,
    overlap: LOCAL.overlap,
    blend: LOCAL.blend,
    outputChannels: LOCAL.channels,
  });
  const chunks = compareChunks({ plan: job.plan, rows, got, expected, channels: LOCAL.channels });
  const lost = chunks.filter((c) => c.verdict === 'lost').length;
  const divergent = chunks.filter((c) => c.verdict === 'divergent').length;
  return {
    outcome: result.status,
    expected: 'SUCCEEDED',
    lost,
    divergent,
    reinferred: rows.filter((r) => r.token > 1).length,
    equal: result.status === 'SUCCEEDED' && lost === 0 && divergent === 0,
    violations: [],
    rows,
  };
}

/** A run that must fail, naming exactly `expectFailed`; every other chunk DONE. */
export async function judgeFailure(
  job: LocalJob,
  result: LocalRunResult,
  expectFailed: ReadonlySet<string>,
  maxAttempts: number,
): Promise<Judged> {
  const jobId = (await loadManifest(job.path)).jobId;
  const rows = await rowsOf(job, jobId);
  const violations: string[] = [];
  let lost = 0;
  let divergent = 0;
  for (const r of rows) {
    if (expectFailed.has(r.chunkId)) {
      if (r.status !== 'FAILED') divergent++;
      else if (r.attempts !== maxAttempts)
        violations.push(
          `poison chunk ${r.chunkId} used ${r.attempts} attempts, not ${maxAttempts}`,
        );
      if (!result.message?.includes(`chunk ${r.chunkId}`) && expectFailed.size <= 10)
        violations.push(`the failure message does not name chunk ${r.chunkId}`);
    } else if (r.status === 'FAILED') divergent++;
    else if (r.status !== 'DONE' && r.status !== 'SKIPPED') lost++;
  }
  return {
    outcome: result.status,
    expected: 'FAILED',
    lost,
    divergent,
    reinferred: rows.filter((r) => r.token > 1 && !expectFailed.has(r.chunkId)).length,
    equal: undefined,
    violations,
    rows,
  };
}

// ---- workers SIGKILLed at random moments; the coordinator replaces them ---------------------

export async function localKills(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'local-kills', trial);
  const kills = Array.from({ length: 3 }, () => ({
    at: rng.int(1, 10),
    delayMs: rng.int(0, 250),
  })).sort((a, b) => a.at - b.at);
  const t0 = Date.now();
  const job = await localJob(join(FIXTURE_MODELS, 'realistic.onnx'), { seed: trial + 1 });
  try {
    let claimed = 0;
    let landed = 0;
    let next = 0;
    const result = await runLocal(await loadManifest(job.path), {
      workers: 2,
      stateDir: job.stateDir,
      leaseMs: 5000,
      onWorker: (child) => {
        child.on('message', (m: { type?: string; event?: { type?: string } }) => {
          if (m.type !== 'event' || m.event?.type !== 'claimed') return;
          claimed++;
          const k = kills[next];
          if (k && claimed >= k.at) {
            next++;
            setTimeout(() => {
              if (child.exitCode === null && child.signalCode === null) {
                child.kill('SIGKILL');
                landed++;
              }
            }, k.delayMs);
          }
        });
      },
    });
    const j = await judgeSuccess(job, result);
    return {
      ...j,
      row: 'local workers SIGKILLed at random moments',
      path: 'local',
      injected: landed,
      dupLive: 0,
      notes: [
        `kills after claims ${kills.map((k) => `#${k.at}+${k.delayMs}ms`).join(', ')}; ${landed} landed; ${result.report?.attempts.total ?? '?'} attempts for ${result.chunks} chunks`,
      ],
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    job.cleanup();
  }
}

// ---- the whole run SIGKILLed (power cut), then run again --------------------------------------

export async function localFleetKill(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'local-fleet', trial);
  const after = rng.int(1, 12);
  const t0 = Date.now();
  const job = await localJob(join(FIXTURE_MODELS, 'realistic.onnx'), { seed: 100 + trial });
  try {
    const child = spawn(
      process.execPath,
      [BIN, 'run', job.path, '--state', job.stateDir, '--workers', '2'],
      { detached: true, stdio: 'ignore' },
    );
    const journal = join(job.stateDir, 'ledger', 'ledger.jsonl');
    const doneLines = (): number =>
      existsSync(journal)
        ? readFileSync(journal, 'utf8')
            .split('\n')
            .filter((l) => l.includes('"DONE"')).length
        : 0;
    const deadline = Date.now() + 120_000;
    let exited = false;
    child.once('exit', () => {
      exited = true;
    });
    while (doneLines() < after && !exited && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 25));
    const landed = !exited;
    if (landed) process.kill(-child.pid!, 'SIGKILL');
    if (!exited) await new Promise((r) => child.once('exit', r));
    const jobId = (await loadManifest(job.path)).jobId;
    const before = await rowsOf(job, jobId);
    const doneBefore = before.filter((r) => r.status === 'DONE');
    const result = await runLocal(await loadManifest(job.path), {
      workers: 2,
      stateDir: job.stateDir,
    });
    const j = await judgeSuccess(job, result);
    const now = new Map(j.rows.map((r) => [r.chunkId, r]));
    for (const r of doneBefore)
      if (now.get(r.chunkId)?.token !== r.token)
        j.violations.push(`chunk ${r.chunkId} was DONE before the kill and was inferred again`);
    return {
      ...j,
      row: 'local run SIGKILLed (process group), run again',
      path: 'local',
      injected: landed ? 1 : 0,
      dupLive: 0,
      notes: [
        `killed after ${doneLines()} DONE journal lines (${doneBefore.length} chunks); the second run inferred ${result.inferredThisRun}`,
      ],
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    job.cleanup();
  }
}

// ---- a poison chunk: NaN in the input --------------------------------------------------------

export async function poisonChunk(c: LocalContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'poison', trial);
  const bad: Vec3 = [
    rng.int(0, LOCAL.shape[0] - 1),
    rng.int(0, LOCAL.shape[1] - 1),
    rng.int(0, LOCAL.shape[2] - 1),
  ];
  const t0 = Date.now();
  const data = Float32Array.from(lcgVolume(LOCAL.shape, 3 + trial), (v) => v / 255);
  data[(bad[0] * LOCAL.shape[1] + bad[1]) * LOCAL.shape[2] + bad[2]] = Number.NaN;
  const job = await localJob(join(FIXTURE_MODELS, 'tiny.onnx'), { data, maxAttempts: 2 });
  try {
    const result = await runLocal(await loadManifest(job.path), {
      workers: 2,
      stateDir: job.stateDir,
    });
    const expectFailed = new Set(
      [...job.plan.chunks()]
        .filter((ch) => [...job.plan.patches(ch)].some((p) => p.containsPoint(bad)))
        .map((ch) => ch.id),
    );
    const j = await judgeFailure(job, result, expectFailed, 2);
    return {
      ...j,
      row: 'poison chunk (NaN voxel in the input)',
      path: 'local',
      injected: 1,
      dupLive: 0,
      notes: [`NaN at [${bad.join(', ')}] poisons ${expectFailed.size} chunk(s)`],
      seconds: (Date.now() - t0) / 1000,
    };
  } finally {
    job.cleanup();
  }
}

// ---- models that go wrong --------------------------------------------------------------------

const UNLOADABLE_BOUND_MS = 30_000;

/**
 * Models whose fault shows before any patch runs (one that cannot be loaded, or whose
 * declared output cannot fit the manifest: a fixed wrong shape, 3 channels for 2) fail the
 * run once, when it opens the model: FAILED at once, saying why, no worker started, no
 * job rows, no attempt spent. Only a model that goes wrong on the data (NaN) reaches the
 * chunks.
 */
const REFUSED_AT_PLAN: ReadonlySet<BadModel> = new Set([
  'unloadable',
  'throws',
  'wrong-shape',
  'three-channels',
]);

async function judgeRefusedAtPlan(
  job: LocalJob,
  result: LocalRunResult,
  spawned: number,
): Promise<Judged> {
  const jobId = (await loadManifest(job.path)).jobId;
  const ledger = await LocalLedger.open(join(job.stateDir, 'ledger'));
  const planned = await ledger.getJob(jobId).finally(() => ledger.close());
  const violations: string[] = [];
  if (spawned > 0)
    violations.push(`${spawned} worker process(es) started for a model refused at plan`);
  if (!/before any chunk ran/.test(result.message ?? '') || !/model/i.test(result.message ?? ''))
    violations.push(
      `the run's message does not say the model was refused before any chunk ran: "${(result.message ?? '').split('\n')[0]}"`,
    );
  if (planned) violations.push('a model refused at plan left job rows in the ledger');
  return {
    outcome: result.status,
    expected: 'FAILED',
    lost: 0,
    divergent: 0,
    reinferred: 0,
    equal: undefined,
    violations,
    rows: [],
  };
}

export type BadModel = 'unloadable' | 'throws' | 'nan' | 'wrong-shape' | 'three-channels';

export const BAD_MODEL_ROWS: Record<BadModel, string> = {
  unloadable: 'model cannot be loaded (truncated file)',
  throws: 'model throws (onnxruntime error on run)',
  nan: 'model returns NaN',
  'wrong-shape': 'model returns the wrong spatial shape',
  'three-channels': 'model returns 3 channels, manifest says 2',
};

export async function badModel(c: LocalContext, trial: number, kind: BadModel): Promise<Trial> {
  const t0 = Date.now();
  const scratch = tempDir('tessera-models-');
  try {
    const broken = writeBrokenModels(scratch.dir);
    c.log(`model-${kind} #${trial + 1}: 2 workers, maxAttempts 2`);
    const model =
      kind === 'unloadable'
        ? broken.truncated
        : kind === 'throws'
          ? broken.throws
          : kind === 'three-channels'
            ? broken.threeChannels
            : join(FIXTURE_MODELS, `${kind}.onnx`);
    const job = await localJob(model, { maxAttempts: 2, seed: 50 + trial });
    try {
      let spawned = 0;
      // A run that cannot fail on its own (workers that die before claiming are replaced
      // without using up attempts) is stopped after a bound and counted as a failure.
      const stop = new AbortController();
      const timer = setTimeout(() => stop.abort(), UNLOADABLE_BOUND_MS);
      const result = await runLocal(await loadManifest(job.path), {
        workers: 2,
        stateDir: job.stateDir,
        onWorker: () => spawned++,
        signal: stop.signal,
      }).finally(() => clearTimeout(timer));
      const all = new Set([...job.plan.chunks()].map((ch) => ch.id));
      const j = REFUSED_AT_PLAN.has(kind)
        ? await judgeRefusedAtPlan(job, result, spawned)
        : await judgeFailure(job, result, all, 2);
      const failures = result.report?.failures ?? [];
      return {
        ...j,
        row: BAD_MODEL_ROWS[kind],
        path: 'local',
        injected: 1,
        dupLive: 0,
        notes: [
          `${result.status}; ${failures.length} chunk(s) reported failed; ${spawned} worker process(es); ${REFUSED_AT_PLAN.has(kind) ? 'refused at plan' : 'last error'}: ${(failures[0]?.lastError ?? result.message ?? '').replace(/\s+/g, ' ').slice(0, 200)}`,
        ],
        seconds: (Date.now() - t0) / 1000,
      };
    } finally {
      job.cleanup();
    }
  } finally {
    scratch.cleanup();
  }
}
