// `tessera plan <manifest.json>`: what a run would do and cost, without doing it.

import { ttaFactor } from '../core/infer/tta.ts';
import { checkJobFits, type JobFit, openJob } from '../core/pipeline/index.ts';
import {
  CLOUD_WORKER_MEMORY_MIB,
  describeWorkerMemory,
  formatBytes,
  type MemoryBudget,
  parseMemorySize,
} from '../core/pipeline/memory-estimate.ts';
import { MemoryStore } from '../core/store/index.ts';
import { intOption, listOption, parse } from './args.ts';
import { loadManifest } from './job-files.ts';
import { cloudLines, knobsFrom, planCloud, refusal } from './plan-cloud.ts';
import {
  type CostEstimate,
  calibrate,
  type EmptyScan,
  estimateCost,
  readJobModel,
  scanEmpty,
  type Throughput,
} from './plan-cost.ts';
import { type ModelSides, modelLines } from './plan-model.ts';
import { normalisationLines, sampleModelInputs } from './plan-normalisation.ts';
import { calibrateRun, type RunPrediction, runLines } from './plan-predict.ts';
import { S3_PUT_PER_1000, workerPrice } from './prices.ts';
import { formatRate, formatSeconds } from './progress.ts';

const USAGE = `Usage: tessera plan <manifest.json> [--json] [--throughput VOXELS_PER_S | --calibrate]
                    [--batch N] [--memory SIZE] [--workers N | --cloud]
                    [--price-per-hour USD] [--scan-empty] [--knob NAME=VALUE ...]

Prints chunk, patch, block and voxel counts and the inference saved compared with
chunk-margin cropping (chunkflow's scheme), without running anything.

Checks, before any chunk runs (exit 1 naming the field to change when one fails):
  the model's inputs and outputs (names, dtypes, shapes) against the manifest
  (model.output, model.outputChannels, model.patchShape, the input's channels), and
  each worker's peak memory (chunk input, accumulation, output buffers, the model's
  batch, the model) against the memory the workers will share:
  --memory SIZE      the budget, e.g. 8G or 512M; default this machine's memory (or
                     its container's limit), or with --cloud the stack's worker memory
  --workers N        local workers sharing it, as \`tessera run --workers\` (default
                     compute.maxWorkers)
  --cloud            size for one AWS Batch worker of compute.device instead, and print
                     the job's figures on the stack: objects and PUTs per chunk, partial
                     bytes, ledger writes and WCU, fleet, blend Map and state machine
                     sizes, dollars (compute, Lambda, requests, storage, ledger), and each
                     AWS or stack limit, ok or not, with the knob that fixes it (exit 1
                     when one does not hold)
  --knob NAME=VALUE  with --cloud: a stack knob as deployed (cdk -c tessera:NAME=VALUE),
                     e.g. --knob maxChunks=5000000; repeatable; default the stack's defaults
  --batch N          patches per model call, as the workers' --batch (default 4)

Cost estimate (with --throughput or --calibrate):
  --throughput V     patch voxels per second one worker infers (e.g. from a benchmark)
  --calibrate        measure it here: the manifest's model on real patches of the input,
                     3 timed batches after a warm-up (this machine, not a cloud GPU)
  --price-per-hour   USD per worker-hour; default: the manifest's device at the spot or
                     on-demand price of the stack's worker type (see README "Cost")
  --scan-empty       with input.skipBelow: read the input once, chunk by chunk, and count
                     the chunks that will be skipped as empty (can be slow: it reads
                     every input voxel)
Requests: objects each chunk writes (owned blocks + seam partials) and the S3 PUT cost
($${S3_PUT_PER_1000} per 1,000) are printed always.`;

export async function planCommand(args: string[]): Promise<number> {
  // How long this process took to start (node, the loader, the modules): a run pays it too.
  const cliStartSeconds = process.uptime();
  const { values, positionals, help } = parse(
    args,
    {
      json: { type: 'boolean' },
      throughput: { type: 'string' },
      calibrate: { type: 'boolean' },
      batch: { type: 'string' },
      memory: { type: 'string' },
      workers: { type: 'string', short: 'w' },
      cloud: { type: 'boolean' },
      'price-per-hour': { type: 'string' },
      'scan-empty': { type: 'boolean' },
      knob: { type: 'string', multiple: true },
    },
    USAGE,
  );
  if (help) return 0;
  const [path] = positionals;
  if (!path) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  if (values.throughput !== undefined && values.calibrate)
    throw new Error('give --throughput or --calibrate, not both');
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const loaded = await loadManifest(path);
  const ctx = await openJob(loaded.manifest, {
    jobId: loaded.jobId,
    work: new MemoryStore(),
    baseDir: loaded.baseDir,
  });
  const { plan } = ctx;
  const m = loaded.manifest;
  const c = plan.counts;
  const saved = 1 - c.patchVoxels / c.marginCroppingPatchVoxels;
  if (values.cloud && values.workers !== undefined)
    throw new Error('give --workers (a local run) or --cloud (one Batch worker each), not both');
  const batchSize = intOption(values.batch, 'batch', 4);
  const cloudMemory = CLOUD_WORKER_MEMORY_MIB[m.compute.device] * 2 ** 20;
  const budget: MemoryBudget | undefined =
    values.memory !== undefined
      ? { bytes: parseMemorySize(String(values.memory)), source: `--memory ${values.memory}` }
      : values.cloud
        ? { bytes: cloudMemory, source: `the stack's ${m.compute.device.toUpperCase()} worker` }
        : undefined;
  // Refuses here, once, what would fail every chunk: a model that does not fit the
  // manifest, workers that do not fit in memory.
  const fit = checkJobFits(ctx, {
    model: await readJobModel(m, loaded.baseDir),
    memory: budget,
    workers: values.cloud ? 1 : intOption(values.workers, 'workers', m.compute.maxWorkers),
    batchSize,
  });

  // What the model will receive, from a fixed sample of the input (see plan-normalisation.ts).
  const inputs = await sampleModelInputs(ctx);

  let throughput: Throughput | undefined;
  let prediction: RunPrediction | undefined;
  if (values.throughput !== undefined) {
    const v = Number(values.throughput);
    if (!Number.isFinite(v) || v <= 0)
      throw new Error(
        `--throughput must be a positive number of voxels per second, got "${values.throughput}"`,
      );
    throughput = { voxelsPerSecond: v, source: 'given with --throughput' };
  } else if (values.calibrate) {
    log('calibrating: running the model on patches of the input…');
    throughput = await calibrate(ctx, loaded.baseDir, { batchSize, log });
    log('calibrating: two sample runs of the job at the middle of the input…');
    prediction = await calibrateRun(loaded, plan, {
      workers: fit.workers,
      batchSize,
      cliStartSeconds,
      log,
    });
  }
  let skipped: EmptyScan | undefined;
  if (values['scan-empty']) {
    if (m.input.skipBelow === undefined)
      throw new Error('--scan-empty needs input.skipBelow in the manifest');
    log(`scanning ${c.chunks} chunks of the input for empty ones (below ${m.input.skipBelow})…`);
    skipped = await scanEmpty(ctx);
  }
  const price = workerPrice(m.compute.device, m.compute.spot, values['price-per-hour']);
  // model.tta runs the model this many times per patch: the throughput is the bare model's.
  const transforms = ttaFactor(m.model);
  const cost = throughput
    ? estimateCost(plan, {
        throughput,
        ttaTransforms: transforms,
        device: m.compute.device,
        price,
        ...(skipped ? { skipped } : {}),
      })
    : undefined;

  const knobs = listOption(values, 'knob');
  if (knobs.length > 0 && !values.cloud)
    throw new Error('--knob describes the stack: give it with --cloud');
  const cloud = values.cloud ? planCloud(ctx, knobsFrom(knobs), cost) : undefined;
  const refused = cloud ? refusal(cloud) : undefined;
  if (refused) log(`refused: ${refused}`);

  const summary = {
    jobId: loaded.jobId,
    volumeShape: plan.volumeShape,
    region: plan.region.toJSON(),
    patchShape: plan.patchShape,
    stride: plan.stride,
    chunkGrid: plan.chunkGrid,
    patchesPerChunk: plan.patchesPerChunk,
    blockShape: plan.blockShape,
    counts: c,
    redundancy: 1,
    tta: { transforms, modelPatchVoxels: c.patchVoxels * transforms },
    marginCroppingRedundancy: c.marginCroppingPatchVoxels / c.patchVoxels,
    inferenceSavedVsMarginCropping: saved,
    objectsPerChunk: {
      ownedBlocks: c.ownedBlocks / c.chunks,
      seamPartials: c.seamPartials / c.chunks,
    },
    memory: {
      perWorkerBytes: fit.memory.bytes,
      parts: fit.memory.parts,
      batchSize: fit.memory.batchSize,
      workers: fit.workers,
      budgetBytes: fit.budget.bytes,
      budgetSource: fit.budget.source,
    },
    ...(fit.model
      ? {
          model: {
            output: fit.model.io.outputName,
            inputs: fit.model.signature.signature.inputs,
            outputs: fit.model.signature.signature.outputs,
          },
        }
      : {}),
    warnings: [...fit.warnings, ...inputs.warnings],
    input: inputs,
    ...(skipped ? { empty: skipped } : {}),
    ...(cost ? { cost } : {}),
    ...(prediction ? { run: prediction } : {}),
    ...(cloud ? { cloud } : {}),
  };
  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary)}\n`);
    return refused ? 1 : 0;
  }
  const v = (x: readonly number[]): string => x.join('×');
  const lines = [
    `job        ${loaded.jobId}`,
    `volume     ${v(plan.volumeShape)} (z×y×x), region ${plan.region}`,
    `patches    ${v(plan.patchGrid)} = ${c.patches} of ${v(plan.patchShape)}, stride ${v(plan.stride)}`,
    `chunks     ${v(plan.chunkGrid)} = ${c.chunks}, ${v(plan.patchesPerChunk)} patches each`,
    `blocks     ${c.blocks} output blocks of ${v(plan.blockShape)}: ${c.ownedBlocks} written by one chunk, ${c.seamBlocks} seam blocks blended`,
    `voxels     ${c.regionVoxels} in the region, ${c.patchVoxels} patch voxels inferred`,
    ...(summary.tta.transforms > 1
      ? [
          `tta        model.tta: each patch inferred ${summary.tta.transforms} times (transformed, averaged before blending): ${summary.tta.modelPatchVoxels} patch voxels through the model, ${summary.tta.transforms}× the inference`,
        ]
      : []),
    `savings    margin cropping would infer ${c.marginCroppingPatchVoxels} patch voxels (${summary.marginCroppingRedundancy.toFixed(2)}×); Tessera infers each patch once (${(saved * 100).toFixed(1)}% less)`,
    requestsLine(plan.counts),
    ...fitLines(fit, {
      inputChannels: ctx.input.channels,
      outputChannels: m.model.outputChannels,
      patchShape: m.model.patchShape,
      outputPatchShape: m.model.outputPatchShape,
    }),
    ...normalisationLines(inputs, ctx.input.dtype),
  ];
  if (skipped)
    lines.push(
      `empty      ${skipped.chunks} of ${c.chunks} chunks lie entirely below ${skipped.threshold} and will be skipped ` +
        `(${((100 * skipped.patchVoxels) / c.patchVoxels).toFixed(1)}% of the patch voxels; scanned in ${skipped.seconds.toFixed(1)}s)`,
    );
  else if (m.input.skipBelow !== undefined)
    lines.push(
      `empty      input.skipBelow is ${m.input.skipBelow}: add --scan-empty to count the chunks it skips (reads the whole input)`,
    );
  if (cost) lines.push(...costLines(cost));
  if (prediction) lines.push(...runLines(prediction));
  else
    lines.push(
      'cost       add --throughput VOXELS_PER_S or --calibrate for worker-hours and dollars',
    );
  if (cloud) lines.push(...cloudLines(cloud));
  process.stdout.write(`${lines.join('\n')}\n`);
  return refused ? 1 : 0;
}

function fitLines(fit: JobFit, sides: ModelSides): string[] {
  const lines: string[] = [];
  if (fit.model) lines.push(...modelLines(fit.model, sides));
  const all = fit.memory.bytes * fit.workers;
  lines.push(
    `memory     ${describeWorkerMemory(fit.memory, { modelKnown: fit.model !== undefined })}` +
      `${fit.workers > 1 ? `; × ${fit.workers} workers = ${formatBytes(all)}` : ''}, within the ${formatBytes(fit.budget.bytes)} of ${fit.budget.source}`,
  );
  for (const w of fit.warnings) lines.push(`warning    ${w}`);
  return lines;
}

function requestsLine(c: {
  chunks: number;
  ownedBlocks: number;
  seamPartials: number;
  seamBlocks: number;
}): string {
  const perChunk = (c.ownedBlocks + c.seamPartials) / c.chunks;
  const puts = c.ownedBlocks + c.seamPartials + c.seamBlocks;
  const dollars = (puts / 1000) * S3_PUT_PER_1000;
  return (
    `requests   ${perChunk.toFixed(1)} objects written per chunk (owned blocks + seam partials); ` +
    `${puts} PUTs in all with the blend ≈ $${dollars.toFixed(dollars < 1 ? 4 : 2)} at $${S3_PUT_PER_1000}/1000 on S3`
  );
}

function costLines(k: CostEstimate): string[] {
  const lines = [
    `throughput ${formatRate(k.throughput.voxelsPerSecond)} per worker (${k.throughput.source})`,
    ...(k.tta.transforms > 1
      ? [
          `tta        model.tta: ${k.tta.transforms} model runs per patch, ${k.patchVoxels} × ${k.tta.transforms} = ${k.tta.modelPatchVoxels} patch voxels through the model (${k.tta.transforms}× the inference)`,
        ]
      : []),
    `compute    ${k.tta.modelPatchVoxels} patch voxels → ${k.workerHours.toFixed(k.workerHours < 10 ? 3 : 1)} ${k.device.toUpperCase()}-hours ` +
      `≈ $${k.dollars.toFixed(k.dollars < 1 ? 4 : 2)} at $${k.pricePerHour}/h (${k.priceBasis}); an estimate`,
    `chunk time ${formatSeconds(k.secondsPerFullChunk)} per full chunk on one worker (the work one interruption can lose)`,
  ];
  if (k.secondsPerFullChunk > 30 * 60)
    lines.push(
      '           chunks this long make spot interruptions expensive: consider a smaller chunkShape',
    );
  else if (k.secondsPerFullChunk < 10)
    lines.push(
      '           chunks this short spend much of their time on claims and I/O: consider a larger chunkShape',
    );
  return lines;
}
