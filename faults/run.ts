// The fault matrix (`npm run test:faults`): every fault a multi-day spot run meets, each
// injected on a seeded schedule into real jobs, each job checked chunk by chunk against
// the whole-volume reference. Prints the table, writes faults/RESULTS.md, and exits 1 if
// any chunk was lost, any output diverged, or any scenario check failed.
//
//   node --import tsx faults/run.ts [--trials N] [--seed S] [--json] [--only TEXT]
//
// --trials N  trials per fault (default: per-fault counts sized to ~10 minutes on 2 cores)
// --seed S    seed of every schedule (default: random; printed, so a run can be replayed)
// --json      print the results as one JSON object after the table
// --only TEXT run only the faults whose id or row name contains TEXT (repeatable)
//
// Cloud faults start s3rver and DynamoDB Local on loopback themselves (Java 17 needed).

import { randomInt } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import {
  ACCIDENT_ROWS,
  doubleCtrlC,
  fixThenRetry,
  outputDirFull,
  outputRefused,
  repeatedKills,
  stateDirFull,
  zombieCoordinator,
} from './accident-scenarios.ts';
import { type CloudLab, startCloudLab } from './cloud.ts';
import {
  type CloudContext,
  clockSkew,
  duplicateEvents,
  fleetKill,
  gracefulStop,
  KILL_ROWS,
  killPoints,
  networkFaults,
  prepareStepsJob,
  reupload,
  type StepsJob,
  staleOwner,
  stepKilled,
} from './cloud-scenarios.ts';
import {
  BAD_MODEL_ROWS,
  type BadModel,
  badModel,
  type LocalContext,
  localFleetKill,
  localKills,
  poisonChunk,
} from './local-scenarios.ts';
import { failures, textTable, writeResults } from './report.ts';
import { emptyTrial, passed, type Row, type Trial } from './trial.ts';

interface Entry {
  id: string;
  path: 'cloud' | 'local';
  /** Rows this entry reports into (a kill-points job reports four). */
  rows: string[];
  trials: number;
  run(trial: number): Promise<Trial | Trial[]>;
}

const { values } = parseArgs({
  options: {
    trials: { type: 'string' },
    seed: { type: 'string' },
    json: { type: 'boolean', default: false },
    only: { type: 'string', multiple: true },
  },
});
const trialsArg = values.trials === undefined ? undefined : Number(values.trials);
if (trialsArg !== undefined && (!Number.isInteger(trialsArg) || trialsArg < 1))
  throw new Error(`--trials must be a positive integer, got ${values.trials}`);
const seed = values.seed === undefined ? randomInt(2 ** 31) : Number(values.seed);
if (!Number.isSafeInteger(seed)) throw new Error(`--seed must be an integer, got ${values.seed}`);
const only = values.only ?? [];
const log = (line: string): void => {
  process.stderr.write(`[faults ${new Date().toISOString().slice(11, 19)}] ${line}\n`);
};

let lab: CloudLab | undefined;
const cloud = (): CloudContext => {
  if (!lab) throw new Error('the cloud lab is not running');
  return { lab, seed, log };
};
const local: LocalContext = { seed, log };
let steps: Promise<StepsJob> | undefined;
const stepsJob = (): Promise<StepsJob> => {
  steps ??= prepareStepsJob(cloud());
  return steps;
};

const entries: Entry[] = [
  {
    id: 'kill-points',
    path: 'cloud',
    rows: Object.values(KILL_ROWS),
    trials: 4,
    run: (t) => killPoints(cloud(), t),
  },
  {
    id: 'sigterm',
    path: 'cloud',
    rows: ['SIGTERM → release'],
    trials: 2,
    run: (t) => gracefulStop(cloud(), t, 'SIGTERM'),
  },
  {
    id: 'spot',
    path: 'cloud',
    rows: ['spot interruption notice → release'],
    trials: 2,
    run: (t) => gracefulStop(cloud(), t, 'spot'),
  },
  {
    id: 'fleet',
    path: 'cloud',
    rows: ['whole fleet SIGKILLed, new fleet started'],
    trials: 2,
    run: (t) => fleetKill(cloud(), t),
  },
  {
    id: 'dynamodb-faults',
    path: 'cloud',
    rows: ['DynamoDB throttling/5xx/drops at 10%'],
    trials: 2,
    run: (t) => networkFaults(cloud(), t, 'dynamodb', 0.1),
  },
  {
    id: 's3-faults',
    path: 'cloud',
    rows: ['S3 SlowDown/5xx/drops at 10%'],
    trials: 2,
    run: (t) => networkFaults(cloud(), t, 's3', 0.1),
  },
  {
    id: 'clock-within',
    path: 'cloud',
    rows: ['clocks ±1-3 s apart (within SKEW_MS)'],
    trials: 2,
    run: (t) => clockSkew(cloud(), t, false),
  },
  {
    id: 'clock-beyond',
    path: 'cloud',
    rows: ['clock 8-12 s ahead (beyond SKEW_MS 5 s)'],
    trials: 1,
    run: (t) => clockSkew(cloud(), t, true),
  },
  {
    id: 'fencing',
    path: 'cloud',
    rows: ['lease expires while owner alive (SIGSTOP/SIGCONT)'],
    trials: 3,
    run: (t) => staleOwner(cloud(), t),
  },
  {
    id: 'events',
    path: 'cloud',
    rows: ['duplicate + out-of-order S3 events'],
    trials: 2,
    run: (t) => duplicateEvents(cloud(), t),
  },
  {
    id: 'reupload',
    path: 'cloud',
    rows: ['manifest re-uploaded while its job runs'],
    trials: 1,
    run: (t) => reupload(cloud(), t),
  },
  {
    id: 'blend-killed',
    path: 'cloud',
    rows: ['blend step SIGKILLed, re-run'],
    trials: 3,
    run: async (t) => stepKilled(cloud(), t, await stepsJob(), 'blend'),
  },
  {
    id: 'finalize-killed',
    path: 'cloud',
    rows: ['finalize step SIGKILLed, re-run'],
    trials: 3,
    run: async (t) => stepKilled(cloud(), t, await stepsJob(), 'finalize'),
  },
  {
    id: 'local-kills',
    path: 'local',
    rows: ['local workers SIGKILLed at random moments'],
    trials: 2,
    run: (t) => localKills(local, t),
  },
  {
    id: 'local-fleet',
    path: 'local',
    rows: ['local run SIGKILLed (process group), run again'],
    trials: 2,
    run: (t) => localFleetKill(local, t),
  },
  {
    id: 'poison',
    path: 'local',
    rows: ['poison chunk (NaN voxel in the input)'],
    trials: 2,
    run: (t) => poisonChunk(local, t),
  },
  ...(
    [
      ['state-full', ACCIDENT_ROWS.stateFull, 2, stateDirFull],
      ['output-full', ACCIDENT_ROWS.outputFull, 2, outputDirFull],
      ['repeated-kills', ACCIDENT_ROWS.repeatedKills, 2, repeatedKills],
      ['double-ctrl-c', ACCIDENT_ROWS.doubleCtrlC, 2, doubleCtrlC],
      ['fix-then-retry', ACCIDENT_ROWS.fixThenRetry, 1, fixThenRetry],
      ['zombie', ACCIDENT_ROWS.zombie, 1, zombieCoordinator],
      ['output-refused', ACCIDENT_ROWS.outputRefused, 1, outputRefused],
    ] as const
  ).map(
    ([id, row, trials, run]): Entry => ({
      id,
      path: 'local',
      rows: [row],
      trials,
      run: (t) => run(local, t),
    }),
  ),
  ...(Object.keys(BAD_MODEL_ROWS) as BadModel[]).map(
    (kind): Entry => ({
      id: `model-${kind}`,
      path: 'local',
      rows: [BAD_MODEL_ROWS[kind]],
      trials: 1,
      run: (t) => badModel(local, t, kind),
    }),
  ),
];

const selected = entries.filter(
  (e) =>
    only.length === 0 || only.some((o) => e.id.includes(o) || e.rows.some((r) => r.includes(o))),
);
if (selected.length === 0) throw new Error(`--only ${only.join(', ')} matches no fault`);

const startedAt = new Date();
const rows = new Map<string, Row>();
const record = (x: Trial & { rows?: unknown }): void => {
  // Scenarios may carry the job's ledger rows along; the results keep only the figures.
  const { rows: _rows, ...t } = x;
  const row = rows.get(t.row) ?? { row: t.row, path: t.path, trials: [] };
  row.trials.push(t);
  rows.set(t.row, row);
};

log(`seed ${seed}; ${selected.length} fault(s)`);
try {
  if (selected.some((e) => e.path === 'cloud')) {
    const t0 = Date.now();
    lab = await startCloudLab();
    log(
      `emulators up in ${((Date.now() - t0) / 1000).toFixed(1)} s: s3rver ${lab.s3.endpoint}, DynamoDB Local ${lab.ddb.endpoint}`,
    );
  }
  for (const e of selected) {
    const n = trialsArg ?? e.trials;
    for (let t = 0; t < n; t++) {
      const t0 = Date.now();
      let out: Trial[];
      try {
        const r = await e.run(t);
        out = Array.isArray(r) ? r : [r];
      } catch (err) {
        const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
        out = e.rows.map((row) => ({
          ...emptyTrial(row, e.path),
          outcome: 'ERROR',
          violations: [`the scenario threw: ${message.split('\n').slice(0, 3).join(' | ')}`],
          seconds: (Date.now() - t0) / 1000,
        }));
      }
      for (const x of out) {
        record(x);
        log(
          `${e.id} #${t + 1}: ${x.row}: ${passed(x) ? 'ok' : 'FAILED'} (${x.outcome}, lost ${x.lost}, divergent ${x.divergent}, ${x.seconds.toFixed(1)} s) ${x.notes.join(' ')}${x.violations.length ? ` — ${x.violations.join('; ')}` : ''}`,
        );
      }
    }
  }
} finally {
  await lab?.stop();
}

const ordered = entries.flatMap((e) => e.rows).flatMap((r) => (rows.has(r) ? [rows.get(r)!] : []));
const seconds = (Date.now() - startedAt.getTime()) / 1000;
const command = `node --import tsx faults/run.ts${trialsArg ? ` --trials ${trialsArg}` : ''} --seed ${seed}${only.map((o) => ` --only ${o}`).join('')}`;
process.stdout.write(`\n${textTable(ordered)}\n\n`);
const failed = failures(ordered);
for (const f of failed) process.stdout.write(`FAILED ${f}\n`);
process.stdout.write(
  `${failed.length === 0 ? 'all trials passed' : `${failed.length} trial(s) failed`} in ${seconds.toFixed(0)} s (seed ${seed})\n`,
);
writeResults(fileURLToPath(new URL('./RESULTS.md', import.meta.url)), {
  seed,
  trials: trialsArg,
  command,
  startedAt,
  seconds,
  rows: ordered,
});
if (values.json) process.stdout.write(`${JSON.stringify({ seed, seconds, rows: ordered })}\n`);
process.exitCode = failed.length === 0 ? 0 : 1;
