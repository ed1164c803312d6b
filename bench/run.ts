// `npm run bench [-- --json] [-- --device gpu] [-- --quick]`: what Tessera costs around
// inference, measured side by side in one run. Writes bench/RESULTS.md.
//
//   efficiency      voxels/s of `tessera run` end to end ÷ voxels/s of bare session.run
//                   over exactly the same patches (target ≥ 0.90)
//   framework       the same job with a no-op model: Tessera's own CPU cost, and the
//                   efficiency ceiling it implies where inference fills every core
//   redundancy      patch voxels inferred ÷ whole-volume sliding window (exactly 1.0),
//                   beside chunkflow-style margin cropping for the same chunk shape
//   blend_fraction  (blend + finalize) ÷ total (target ≤ 0.05)
//   scaling         time and peak worker RSS at 1×, 2×, 4× the volume
//   plan rate       a 10^6-chunk plan, closed-form and lazy (target ≤ 5 s)
//   ledger/claims   DynamoDB Local: batched writes of 10^5 rows; 8 concurrent claimers
//   plan-ledger     DynamoDB Local: 10^6 rows planned in ranges (the PlanRange code), rows/s
//                   and the write rate each partition key sees against 1,000 WCU/s
//   seams           at the default layout ÷ 4: PUTs per chunk (target ≤ 10), partial bytes
//                   ÷ output bytes (target ≤ 0.25), ledger writes per chunk; unsharded and
//                   with output.shardShape = defaultShardShape (see seams.ts)

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { loadManifest } from '../cli/job-files.ts';
import { runLocal } from '../cli/local-run.ts';
import { Plan, type Vec3 } from '../core/geometry/index.ts';
import { patchStarts } from '../core/reference/index.ts';
import { bareInference } from './baseline.ts';
import { costsBench, costsTable } from './costs.ts';
import {
  type BenchManifestOptions,
  benchVolume,
  NOOP_MODEL,
  REALISTIC_MODEL,
  writeBenchJob,
} from './fixture.ts';
import { ledgerBench } from './ledger.ts';
import { planLedgerBench } from './plan-ledger.ts';
import { type SeamsFigures, seamsBench } from './seams.ts';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean' },
    device: { type: 'string', default: 'cpu' },
    quick: { type: 'boolean' },
    'skip-ledger': { type: 'boolean' },
    only: { type: 'string' },
  },
});
// --only efficiency,framework,longer,scaling,plan,ledger,plan-ledger,seams,costs runs those sections
// alone (RESULTS.md is then not rewritten, except its Seams and costs tables when those run).
const only = values.only?.split(',');
const want = (section: string): boolean => only === undefined || only.includes(section);
const device = values.device === 'gpu' ? 'gpu' : 'cpu';
const quick = values.quick === true;
const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};

const MAIN_SHAPE: Vec3 = quick ? [64, 256, 256] : [128, 512, 512];
const JOB: BenchManifestOptions = {
  patchShape: [32, 128, 128],
  overlap: [8, 32, 32],
  // Chunk pitch (patches per chunk × stride) is [48, 288, 288]; blocks of a third of it
  // keep each chunk at ~27 owned objects and put each seam band inside one block.
  chunkShape: [64, 320, 320],
  blockShape: [16, 96, 96],
  dtype: 'float32',
  device,
};
const BATCH = 2;

async function endToEnd(
  shape: Vec3,
  model = REALISTIC_MODEL,
): Promise<{
  seconds: number;
  report: NonNullable<Awaited<ReturnType<typeof runLocal>>['report']>;
  rss: number;
  cpu: NonNullable<Awaited<ReturnType<typeof runLocal>>['cpuSeconds']>;
  plan: Plan;
  data: Uint8Array;
}> {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-bench-'));
  try {
    const { manifestPath, data } = await writeBenchJob(dir, shape, { ...JOB, model });
    const loaded = await loadManifest(manifestPath);
    const t0 = performance.now();
    const result = await runLocal(loaded, { workers: 1, batchSize: BATCH });
    const seconds = (performance.now() - t0) / 1000;
    if (result.status !== 'SUCCEEDED' || !result.report)
      throw new Error(`bench run failed: ${result.message}`);
    const plan = jobPlan(shape);
    return {
      seconds,
      report: result.report,
      rss: result.peakWorkerRssBytes,
      cpu: result.cpuSeconds ?? { workers: 0, workerMainThreads: 0, coordinator: 0 },
      plan,
      data,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function jobPlan(shape: Vec3): Plan {
  return new Plan({
    volumeShape: shape,
    patchShape: JOB.patchShape,
    overlap: JOB.overlap,
    chunkShape: JOB.chunkShape,
    blockShape: JOB.blockShape,
  });
}

function slidingWindowPatchVoxels(plan: Plan): number {
  // Counted independently of the chunk plan, from the reference grid.
  const per = [0, 1, 2].map(
    (a) =>
      patchStarts(
        plan.region.start[a]!,
        plan.region.stop[a]!,
        plan.patchShape[a]!,
        plan.overlap[a]!,
      ).length,
  );
  return per[0]! * per[1]! * per[2]! * plan.patchShape[0] * plan.patchShape[1] * plan.patchShape[2];
}

const results: Record<string, unknown> = {};

/**
 * `tessera run` on `shape`, then bare session.run over exactly its patches. With
 * `bracket`, bare inference also runs before, and the mean of the two is the
 * denominator: on a shared machine whose speed drifts during the measurement (seen
 * here: the same bare batch at 300 and at 478 ms within the hour), the drift does not
 * land on one side of the ratio only; how far the two differ is reported.
 */
async function efficiencyRun(shape: Vec3, bracket = false) {
  const bareOver = (plan: Plan, volume: Uint8Array) =>
    bareInference({ plan, volume, model: REALISTIC_MODEL, batchSize: BATCH, device });
  const before = bracket ? await bareOver(jobPlan(shape), benchVolume(shape)) : undefined;
  const run = await endToEnd(shape);
  const after = await bareOver(run.plan, run.data);
  if (!before) return { run, bare: after };
  const bare = {
    ...after,
    seconds: (before.seconds + after.seconds) / 2,
    cpuSeconds: (before.cpuSeconds + after.cpuSeconds) / 2,
  };
  return { run, bare, bareBeforeAfter: [before.seconds, after.seconds] as const };
}

// 1-3: efficiency, redundancy, blend fraction on the main volume.
const voxels = jobPlan(MAIN_SHAPE).counts.regionVoxels;
if (want('efficiency')) {
  log(`efficiency: ${MAIN_SHAPE.join('×')} uint8 → float32, realistic model, ${device}`);
  const { run: main, bare, bareBeforeAfter } = await efficiencyRun(MAIN_SHAPE, true);
  const t = main.report.timings;
  results.efficiency = {
    value: round(bare.seconds / main.seconds),
    tesseraVoxelsPerSecond: Math.round(voxels / main.seconds),
    bareVoxelsPerSecond: Math.round(voxels / bare.seconds),
    tesseraSeconds: round(main.seconds),
    bareSeconds: round(bare.seconds),
    bareSecondsBeforeAndAfter: bareBeforeAfter?.map(round),
    patches: bare.patches,
    device: bare.device,
    // Where the CPU went (core-seconds). On a machine whose cores inference already fills,
    // everything beyond bare inference's CPU is time inference waits for.
    cpuSeconds: {
      bareInference: round(bare.cpuSeconds),
      tesseraWorkers: round(main.cpu.workers),
      tesseraWorkerMainThreads: round(main.cpu.workerMainThreads),
      tesseraCoordinator: round(main.cpu.coordinator),
      beyondInference: round(main.cpu.workers + main.cpu.coordinator - bare.cpuSeconds),
    },
  };
  results.redundancy = {
    value: main.plan.counts.patchVoxels / slidingWindowPatchVoxels(main.plan),
    inferredPatches: main.report.patches.inferred,
    marginCropping: round(
      main.plan.counts.marginCroppingPatchVoxels / slidingWindowPatchVoxels(main.plan),
    ),
  };
  results.blend_fraction = {
    value: round(((t.blend ?? 0) + (t.finalize ?? 0)) / main.seconds),
    timings: t,
  };
  log(JSON.stringify({ efficiency: results.efficiency, blend_fraction: results.blend_fraction }));
}

// Tessera's own cost, measured alone: the same job with a model that does no arithmetic.
// On a machine whose cores inference fills, this CPU is what efficiency pays for:
// efficiency ≤ bare CPU ÷ (bare CPU + this). On a GPU it must stay below the device time.
if (want('framework')) {
  const noop = await endToEnd(MAIN_SHAPE, NOOP_MODEL);
  const coreSeconds = noop.cpu.workers + noop.cpu.coordinator;
  // Without the efficiency section, bare inference runs here once for the ceiling's CPU.
  const measured = results.efficiency as { cpuSeconds: { bareInference: number } } | undefined;
  const bareCpu =
    measured?.cpuSeconds.bareInference ??
    (
      await bareInference({
        plan: noop.plan,
        volume: noop.data,
        model: REALISTIC_MODEL,
        batchSize: BATCH,
        device,
      })
    ).cpuSeconds;
  results.framework = {
    seconds: round(noop.seconds),
    coreSeconds: round(coreSeconds),
    workerMainThreads: round(noop.cpu.workerMainThreads),
    coordinator: round(noop.cpu.coordinator),
    coreNanosecondsPerVoxel: round((coreSeconds / voxels) * 1e9),
    efficiencyCeiling: round(bareCpu / (bareCpu + coreSeconds)),
  };
  log(JSON.stringify({ framework: results.framework }));
}

// Efficiency on twice the volume: what start-up (process and model) and finalize cost
// per voxel halves, as it keeps falling on real volumes (10^9–10^12 voxels).
if (want('longer') && !quick) {
  const shape: Vec3 = [2 * MAIN_SHAPE[0], MAIN_SHAPE[1], MAIN_SHAPE[2]];
  const { run, bare: b } = await efficiencyRun(shape);
  results.efficiency_2x = {
    shape,
    value: round(b.seconds / run.seconds),
    tesseraSeconds: round(run.seconds),
    bareSeconds: round(b.seconds),
  };
  log(JSON.stringify({ efficiency_2x: results.efficiency_2x }));
}

// 4: scaling, with efficiency measured at each factor (a smaller base so three runs fit
// the time budget; at least one chunk deep, so every factor runs full-size chunks and
// only the volume grows).
const scaling: Record<string, unknown>[] = [];
if (want('scaling')) {
  const model = modelRss();
  const modelBytes = model.median;
  const base: Vec3 = quick ? [16, 128, 128] : [64, 256, 256];
  for (const k of [1, 2, 4]) {
    const shape: Vec3 = [base[0] * k, base[1], base[2]];
    const { run: r, bare: b } = await efficiencyRun(shape);
    const chunkBytes = chunkIoBytes();
    scaling.push({
      factor: k,
      shape,
      seconds: round(r.seconds),
      voxelsPerSecond: Math.round(r.plan.counts.regionVoxels / r.seconds),
      efficiency: round(b.seconds / r.seconds),
      peakWorkerRssMiB: round(r.rss / 2 ** 20),
      // Target: 3 × (chunk input + output bytes) + the model as a worker holds it (measured
      // alone, see model-rss.ts).
      rssBoundMiB: round((3 * chunkBytes + modelBytes) / 2 ** 20),
      modelRssMiB: round(modelBytes / 2 ** 20),
      modelRssRangeMiB: [round(model.min / 2 ** 20), round(model.max / 2 ** 20)],
    });
    log(JSON.stringify(scaling[scaling.length - 1]));
  }
}
if (want('scaling')) results.scaling = scaling;

// 5: plan rate.
if (want('plan')) {
  const t0 = performance.now();
  const plan = new Plan({
    volumeShape: [12_800, 25_600, 25_600],
    patchShape: [128, 128, 128],
    overlap: [32, 32, 32],
    chunkShape: [128, 256, 256],
  });
  let n = 0;
  for (let i = 0; i < plan.counts.chunks; i++)
    if (plan.chunkId(plan.chunkCoordAt(i)).length > 0) n++;
  results.plan_rate = {
    chunks: plan.counts.chunks,
    seconds: round((performance.now() - t0) / 1000),
    enumerated: n,
  };
  log(JSON.stringify(results.plan_rate));
}

// 6: ledger writes and claims against DynamoDB Local.
if (!values['skip-ledger'] && want('ledger')) {
  results.ledger = await ledgerBench({
    rows: quick ? 10_000 : 100_000,
    claimers: 8,
    claimChunks: quick ? 400 : 2000,
    log,
  });
  log(JSON.stringify(results.ledger));
}

// 7: a large plan's ledger rows, in ranges, against DynamoDB Local.
if (!values['skip-ledger'] && want('plan-ledger')) {
  results.planLedger = await planLedgerBench({ zChunks: quick ? 1 : 100, log });
  log(JSON.stringify(results.planLedger));
}

if (want('calibrate')) results.calibrate = await (await import('./calibrate.ts')).calibrateBench();
// 8: seams at the default layout scaled down (seams.ts), unsharded and sharded.
if (want('seams')) {
  const chunksPerAxis = quick ? 2 : 3;
  const unsharded = await seamsBench({ sharded: false, chunksPerAxis });
  log(JSON.stringify({ seams: unsharded }));
  const sharded = await seamsBench({ sharded: true, chunksPerAxis });
  log(JSON.stringify({ seamsSharded: sharded }));
  results.seams = seamsResult(unsharded, sharded);
  if (only !== undefined) writeSeamsTable(results.seams as SeamsResult);
}

// 9: per-stage costs in core-ns per voxel beside their floors (costs.ts).
if (want('costs')) {
  const rows = await costsBench({ chunkShape: JOB.chunkShape, volumeVoxels: voxels });
  log(JSON.stringify({ costs: rows }));
  results.costs = rows;
  if (only !== undefined) writeCostsTable(costsTable(rows, new Date().toISOString()));
}

/** `--only costs`: the costs table of RESULTS.md replaced (or added), the rest left as it is. */
function writeCostsTable(table: string): void {
  const path = resultsPath();
  const old = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const marked = /<!-- costs -->[\s\S]*<!-- \/costs -->/;
  const text = marked.test(old)
    ? old.replace(marked, () => table)
    : old.includes('\nRaw: ')
      ? old.replace('\nRaw: ', () => `\n${table}\n\nRaw: `)
      : `${old}\n${table}\n`;
  writeFileSync(path, text);
}

interface SeamsResult {
  putsPerChunk: number;
  partialRatio: number;
  ledgerWritesPerChunk: number;
  unsharded: SeamsFigures;
  /** Undefined while the workers do not write output.shardShape yet ("not wired"). */
  sharded: SeamsFigures | undefined;
  shardedStatus: 'measured' | 'not wired';
  /** The sharded run's output.shardShape (defaultShardShape of the plan). */
  shardShape: number[];
}

/** The headline figures are the sharded run's once the workers write shards, else unsharded. */
function seamsResult(unsharded: SeamsFigures, sharded: SeamsFigures): SeamsResult {
  const wired = sharded.shardedWritten;
  const head = wired ? sharded : unsharded;
  return {
    putsPerChunk: head.putsPerChunk,
    partialRatio: head.partialRatio,
    ledgerWritesPerChunk: head.ledgerWritesPerChunk,
    unsharded,
    sharded: wired ? sharded : undefined,
    shardedStatus: wired ? 'measured' : 'not wired',
    shardShape: [...(sharded.shardShape ?? [])],
  };
}

function seamsTable(s: SeamsResult): string {
  const u = s.unsharded;
  const row = (name: string, f: SeamsFigures | undefined): string =>
    f
      ? `| ${name} | ${f.putsPerChunk} (${f.outputPutsPerChunk} output + ${f.partialPutsPerChunk} ${f.shardShape ? 'pieces' : 'partials'}) | ${f.partialRatio} (${mib(f.partialBytes)} ÷ ${mib(f.outputBytes)} MiB)${f.shardShape ? `; seam partials alone ${f.seamPartialRatio}` : ''} | ${f.middleChunk.partialPuts}, ${f.middleChunk.partialRatio} | ${f.ledgerWritesPerChunk} (reads ${f.ledgerReadsPerChunk}) | ${f.leftoverSeamBlocks} | ${f.seconds} |`
      : `| ${name} | not wired (the workers write one object per block whatever output.shardShape says) | | | | | |`;
  return `<!-- seams -->
Seams (issue 16): the real pipeline in memory (openJob, planJob, runWorker, the Blend step over what workers left), at the default layout ÷ ${u.layout.scale} (patch ${u.layout.patchShape.join('×')}, overlap ${u.layout.overlap.join('×')}, chunk ${u.layout.chunkShape.join('×')}, block ${u.layout.blockShape.join('×')}), ${u.volumeShape.join('×')} voxels = ${u.chunks} chunks, 1 worker, float32 × 2 channels, a JS model (x, 1 − x). Counted by a Store wrapper (set() calls and bytes by key) and a Ledger wrapper. Sharded: output.shardShape = defaultShardShape = ${s.shardShape.join('×')}. Unsharded, a chunk leaves a partial (cropped to its footprint in the block, zstd) for each seam block it is not the last contributor of; sharded, one piece per shard it does not assemble, holding its final blocks of that shard and its band partials, so pieces count whole and "seam partials alone" leaves their final blocks out. Middle chunk: the one with neighbours on every side, as an interior chunk of a large job has (claimed in index order, as here).

| output | PUTs per chunk (target ≤ 10) | partial bytes ÷ output bytes (target ≤ 0.25) | middle chunk: partials, their bytes ÷ one pitch's output bytes | ledger writes per chunk | seam blocks left to the Blend step | seconds |
| --- | --- | --- | --- | --- | --- | --- |
${row('unsharded', u)}
${row('sharded', s.sharded)}
<!-- /seams -->`;
}

/** `--only seams`: the Seams table of RESULTS.md replaced (or added), the rest left as it is. */
function writeSeamsTable(s: SeamsResult): void {
  const path = resultsPath();
  const old = existsSync(path) ? readFileSync(path, 'utf8') : '';
  const table = seamsTable(s);
  const marked = /<!-- seams -->[\s\S]*<!-- \/seams -->/;
  const text = marked.test(old)
    ? old.replace(marked, () => table)
    : old.includes('\nRaw: ')
      ? old.replace('\nRaw: ', () => `\n${table}\n\nRaw: `)
      : `${old}\n${table}\n`;
  writeFileSync(path, text);
}

function mib(bytes: number): number {
  return round(bytes / 2 ** 20);
}

/**
 * The model term, measured alone three times: its peak RSS varies run to run (seen here
 * 260–360 MiB for the same model and batch: glibc grows a malloc arena per thread that
 * meets contention), so the median is the bound's term and the range is reported.
 */
function modelRss(): { median: number; min: number; max: number } {
  const runs = [0, 1, 2].map(modelRssBytes).sort((a, b) => a - b);
  return { median: runs[1]!, min: runs[0]!, max: runs[2]! };
}

function modelRssBytes(): number {
  const child = spawnSync(
    process.execPath,
    [
      '--import',
      'tsx',
      new URL('./model-rss.ts', import.meta.url).pathname,
      REALISTIC_MODEL,
      JSON.stringify(JOB.patchShape),
      String(BATCH),
      device,
    ],
    { encoding: 'utf8' },
  );
  const bytes = Number(child.stdout.trim());
  if (child.status !== 0 || !Number.isFinite(bytes))
    throw new Error(`measuring the model's memory failed: ${child.stderr}`);
  return bytes;
}

function chunkIoBytes(): number {
  const [pz, py, px] = JOB.patchShape;
  const per = JOB.chunkShape.map((c, a) =>
    Math.max(1, Math.floor((c - [pz, py, px][a]!) / ([pz, py, px][a]! - JOB.overlap[a]!)) + 1),
  );
  const read = per.map((k, a) => (k - 1) * ([pz, py, px][a]! - JOB.overlap[a]!) + [pz, py, px][a]!);
  const vox = read[0]! * read[1]! * read[2]!;
  return vox * (4 /* normalised input */ + 2 * 4) /* Σw·f, 2 channels (Σw comes from geometry) */;
}

function round(v: number): number {
  return Math.round(v * 1000) / 1000;
}

const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
results.machine = machine;
results.when = new Date().toISOString();
if (only === undefined) writeResults(results);
if (values.json) process.stdout.write(`${JSON.stringify(results)}\n`);
else process.stdout.write(`${JSON.stringify(results, null, 2)}\n`);

function cpuLine(e: Record<string, unknown>): string {
  const c = e.cpuSeconds as Record<string, number> | undefined;
  if (!c) return 'not measured';
  return `bare inference ${c.bareInference}; Tessera's workers ${c.tesseraWorkers} (their main threads ${c.tesseraWorkerMainThreads}), coordinator ${c.tesseraCoordinator}; beyond bare inference ${c.beyondInference}`;
}

function bareBracket(e: Record<string, unknown>): string {
  const b = e.bareSecondsBeforeAndAfter as number[] | undefined;
  return b ? `${b[0]} s before the run, ${b[1]} s after` : `${e.bareSeconds} s`;
}

function longerLine(l: Record<string, unknown> | undefined): string {
  if (!l) return 'not measured';
  return `${l.value} (${(l.shape as number[]).join('×')}: ${l.tesseraSeconds} s vs ${l.bareSeconds} s)`;
}

function modelRange(scaling: Record<string, unknown>[]): string {
  const s = scaling[0];
  if (!s) return '';
  const [lo, hi] = s.modelRssRangeMiB as [number, number];
  return `: ${s.modelRssMiB} MiB, range ${lo}–${hi}`;
}

function frameworkLine(f: Record<string, number> | undefined): string {
  if (!f) return 'not measured';
  return `${f.seconds} s end to end, ${f.coreSeconds} core-seconds (worker main threads ${f.workerMainThreads}, coordinator ${f.coordinator}), ${f.coreNanosecondsPerVoxel} core-ns per voxel; with inference filling every core, efficiency can be at most ${f.efficiencyCeiling} here`;
}

function resultsPath(): string {
  return new URL(
    `./RESULTS${device === 'gpu' ? '-gpu' : ''}${quick ? '-quick' : ''}.md`,
    import.meta.url,
  ).pathname;
}

function writeResults(r: Record<string, unknown>): void {
  const path = resultsPath();
  const e = r.efficiency as Record<string, number>;
  const text = `# Benchmark results (${device}${quick ? ', quick' : ''})

Machine: ${machine}. Measured ${r.when}. Reproduce: \`npm run bench${device === 'gpu' ? ' -- --device gpu' : ''}\`.

| figure | value | target |
| --- | --- | --- |
| efficiency (tessera run ÷ bare session.run) | ${e.value} (${e.tesseraVoxelsPerSecond} vs ${e.bareVoxelsPerSecond} voxels/s; bare inference ${bareBracket(e)}) | ≥ 0.90 |
| efficiency on twice the volume | ${longerLine(r.efficiency_2x as Record<string, unknown> | undefined)} | ≥ 0.90 |
| redundancy | ${(r.redundancy as Record<string, number>).value} (margin cropping: ${(r.redundancy as Record<string, number>).marginCropping}) | 1.0 |
| blend_fraction | ${(r.blend_fraction as Record<string, number>).value} | ≤ 0.05 |
| plan rate | ${JSON.stringify(r.plan_rate)} | ≤ 5 s for 10^6 chunks |

Where the CPU went (core-seconds, efficiency run): ${cpuLine(e)}.

Tessera's own cost (the same job with a model that does no arithmetic, \`identity2.onnx\`): ${frameworkLine(r.framework as Record<string, number> | undefined)}.

Scaling (bound = 3 × (chunk input + output bytes) + the model as a worker holds it — worker code, inference thread, running batches — measured alone, median of 3 runs${modelRange(r.scaling as Record<string, unknown>[])}):

| factor | shape | seconds | voxels/s | efficiency | peak worker RSS MiB | bound MiB |
| --- | --- | --- | --- | --- | --- | --- |
${(r.scaling as Record<string, unknown>[]).map((s) => `| ${s.factor}× | ${(s.shape as number[]).join('×')} | ${s.seconds} | ${s.voxelsPerSecond} | ${s.efficiency} | ${s.peakWorkerRssMiB} | ${s.rssBoundMiB} |`).join('\n')}

Ledger (DynamoDB Local): ${r.ledger ? `\`${JSON.stringify(r.ledger)}\`` : 'skipped'}

Large plan in ranges (DynamoDB Local, plan-ledger): ${r.planLedger ? `\`${JSON.stringify(r.planLedger)}\`` : 'skipped'}

${r.seams ? seamsTable(r.seams as SeamsResult) : 'Seams: not measured'}

Raw: \`${JSON.stringify(r)}\`
`;
  writeFileSync(path, text);
}
