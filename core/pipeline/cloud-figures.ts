// The figures of a cloud job before it runs (`tessera plan --cloud`): requests, partial
// bytes, ledger writes, fleet, blend Map and state machine sizes, each against the limit
// it meets, and the dollars. Pure arithmetic over the plan's closed-form counts and the
// constants the deployed stack is built from; no chunk or block is listed.
//
//   Plan.counts ─► layout (objects, PUTs, partials, blend items per chunk) ─┐
//   knobs + stack sizing + AWS quotas ──────────────────────────────────────┼─► limits, $
//   ledger write model (adapters) · throughput (optional) ──────────────────┘
//
// The output layout is a function (CloudLayout): today's is `unshardedLayout`; a sharded
// layout with band partials plugs in its own per-chunk figures.

import { PLAN_RANGE_ROWS, PLAN_RANGES_IN_FLIGHT } from '../../contracts/cloud.ts';
import type { Knobs } from '../../contracts/knobs.ts';
import {
  BLEND_CONCURRENCY,
  BLOCKS_PER_BLEND_ITEM,
  LAMBDA_SIZING,
  WORKER_VCPUS,
} from '../../contracts/stack-sizing.ts';
import type { Plan } from '../geometry/index.ts';
import { MAX_ERROR_LENGTH } from '../ledger/index.ts';
import {
  PYRAMID_BLOCKS_PER_TASK,
  PYRAMID_TASKS_PER_LEVEL,
  pyramidLevels,
} from '../volume/pyramid.ts';
import { DYNAMO_NEW_TABLE_WRU, DYNAMO_PARTITION_WCU, LAMBDA_MAX_TIMEOUT_S } from './aws-quotas.ts';
import { type CloudLayout, unshardedLayout } from './cloud-layout.ts';
import { judge, type Limit } from './cloud-limits.ts';
import { nextArraySize } from './steps.ts';
import { describePoison } from './verify.ts';

export type { CloudLayout, LayoutFigures, LayoutInput } from './cloud-layout.ts';
export { unshardedLayout } from './cloud-layout.ts';
export type { Limit } from './cloud-limits.ts';

/** One kind of ledger write: requests, and write request units in all (index writes included). */
export interface LedgerWrite {
  requests: number;
  units: number;
}

/** What the ledger adapter writes per chunk (adapters/aws/dynamo/write-units.ts). */
export interface LedgerWriteModel {
  plan: LedgerWrite & {
    /** Units of one planned row that land on the row's own partition (not its index's). */
    partitionUnits: number;
  };
  claim: LedgerWrite;
  heartbeat: LedgerWrite;
  complete: LedgerWrite;
  /** Partition keys the planner's rows are spread over, for a job of `chunks`. */
  planPartitions(chunks: number): number;
  layout: string;
}

/** US dollars per unit of each billed quantity (cli/prices.ts). */
export interface CloudPrices {
  s3PutPer1000: number;
  s3GetPer1000: number;
  s3GbMonth: number;
  dynamoWritePerMillion: number;
  lambdaGbSecond: number;
  lambdaPerMillionRequests: number;
  sfnPer1000Transitions: number;
  asOf: string;
}

export interface CloudJobInput {
  plan: Plan;
  device: 'cpu' | 'gpu';
  /** compute.maxWorkers */
  maxWorkers: number;
  /** output.pyramid: levels Finalize builds (0: none). */
  pyramid?: number;
  /** The input's storage chunk shape: each worker GETs the stored chunks its read box touches. */
  inputChunkShape?: readonly [number, number, number];
  /** model.outputChannels */
  channels: number;
  /** Bytes of one output value (output.dtype). */
  outputBytesPerValue: number;
  /** The workers' heartbeat period (defaultHeartbeatMs of the job's lease). */
  heartbeatMs: number;
  knobs: Knobs;
  ledger: LedgerWriteModel;
  prices: CloudPrices;
  layout?: CloudLayout;
  /** From a measured or given throughput (cli/plan-cost.ts estimateCost). */
  compute?: { workerHours: number; pricePerHour: number; priceBasis: string };
  /** Bytes per second one blend Lambda reads and writes (default BLEND_BYTES_PER_SECOND). */
  blendBytesPerSecond?: number;
}

/**
 * What one blend Lambda moves per second to and from S3: an assumption, not a measurement
 * (the bench blends on a local disk). Step Functions' blend time scales with it.
 */
export const BLEND_BYTES_PER_SECOND = 40e6;

/**
 * History events of the pipeline execution (cdk/constructs/pipeline.ts), as Step Functions
 * writes them: a Pass or Choice state enters and exits (2), a task enters, is scheduled,
 * starts, succeeds and exits (5), a Map enters, starts, succeeds and exits (4; a
 * Distributed Map's children have their own histories, an inline Map's iterations are in
 * this one: started, the task's 5, succeeded). Around the rounds: ExecutionStarted, Plan,
 * PlanInRanges?, StartRounds, HasSeams?, Blend, Finalize, Succeeded, ExecutionSucceeded;
 * one Work round is ChooseQueue, ArrayOrSingle, the Batch task, CountRound, Verify,
 * Verified? and NextRound; a plan in ranges adds RangeStarts, the PlanRanges Map and
 * CompletePlan, and its iterations. Retries add a few each.
 */
export const HISTORY_EVENTS = {
  fixed: 1 + 5 + 2 + 2 + 2 + 4 + 5 + 2 + 1,
  perRound: 2 + 2 + 5 + 2 + 5 + 2 + 2,
  ranged: 2 + 4 + 5,
  perRange: 1 + 5 + 1,
};
/** State transitions billed: states entered (as above), and one child state per blend item. */
export const TRANSITIONS = { fixed: 7, perRound: 7, ranged: 3, perRange: 1, perBlendItem: 2 };

/** S3's longest object key, bytes: the manifest key in the state data can be this long. */
const S3_MAX_KEY_BYTES = 1024;
const size = (v: readonly number[]): number => v.reduce((p, x) => p * x, 1);

export interface CloudFigures {
  layout: string;
  device: 'cpu' | 'gpu';
  ledgerLayout: string;
  chunks: number;
  objects: { perChunk: number; total: number };
  puts: { perChunk: number; total: number; workers: number; blend: number };
  /** Input chunks the workers read (one GET each; unknown without inputChunkShape), partials the blend reads. */
  gets: { input: number | undefined; blend: number };
  partials: { objects: number; bytes: number; ofOutput: number };
  outputBytes: number;
  ledger: {
    heartbeatsPerChunk: number | undefined;
    writes: { perChunk: number; total: number };
    writeUnits: { perChunk: number; total: number };
    planning: {
      rows: number;
      partitions: number;
      rowsPerSecond: number;
      seconds: number;
      /** PlanRange calls (0: one planner call writes every row), and how many run at once. */
      ranges: number;
      rangesAtOnce: number;
      /** Seconds of the longest planner or PlanRange call. */
      callSeconds: number;
      /** WRU/s the planner would need to write every row within its timeout. */
      wcuToFitTimeout: number;
    };
    /** WRU/s the running fleet spends on claims, heartbeats and completions. */
    workWcu: number | undefined;
  };
  fleet: {
    requested: number;
    arraySize: number;
    running: number;
    vcpusPerWorker: number;
    maxVcpus: number;
  };
  blend: {
    items: number;
    concurrency: number;
    bytesPerItem: number;
    secondsPerItem: number;
    memoryBytes: number;
    itemsJsonBytes: number;
    hours: number;
  };
  stateMachine: { historyEvents: number; largestPayloadBytes: number; transitions: number };
  /** Finalize: the pyramid levels it builds in one Lambda, the bytes it moves, and how long. */
  finalize: { levels: number; bytes: number; seconds: number };
  compute?: { workerHours: number; workHours: number; pricePerHour: number; priceBasis: string };
  hours?: { planning: number; work: number; blend: number; total: number };
  cost: {
    compute?: number;
    lambda: number;
    requests: number;
    storage: number;
    ledger: number;
    total?: number;
  };
  prices: CloudPrices;
  limits: Limit[];
  /** Every judged limit holds. */
  ok: boolean;
}

export function cloudFigures(o: CloudJobInput): CloudFigures {
  const { plan, knobs, ledger, prices } = o;
  const c = plan.counts;
  const chunks = c.chunks;
  const layout = (o.layout ?? unshardedLayout)({
    plan,
    channels: o.channels,
    outputBytesPerValue: o.outputBytesPerValue,
    blocksPerBlendItem: BLOCKS_PER_BLEND_ITEM,
  });

  // --- fleet ------------------------------------------------------------------------
  const vcpusPerWorker = WORKER_VCPUS[o.device];
  // The GPU queue is a Spot environment then an On-Demand one; the CPU queue two Fargate
  // environments (Spot, then on demand) of maxCpuVcpus each.
  const maxVcpus =
    o.device === 'gpu' ? knobs.maxGpuVcpus + knobs.maxOnDemandGpuVcpus : 2 * knobs.maxCpuVcpus;
  const requested = Math.min(o.maxWorkers, chunks);
  const arraySize = nextArraySize(o.maxWorkers, chunks);
  const running = Math.max(1, Math.min(arraySize, Math.floor(maxVcpus / vcpusPerWorker)));

  // --- time -------------------------------------------------------------------------
  const secondsPerChunk = o.compute ? (o.compute.workerHours * 3600) / chunks : undefined;
  const heartbeats =
    secondsPerChunk === undefined
      ? undefined
      : Math.floor((secondsPerChunk * 1000) / o.heartbeatMs);

  // --- ledger -----------------------------------------------------------------------
  const once = [ledger.plan, ledger.claim, ledger.complete];
  const sum = (k: keyof LedgerWrite): number =>
    once.reduce((s, w) => s + w[k], 0) + (heartbeats ?? 0) * ledger.heartbeat[k];
  const workWcuPerChunk = sum('units');

  // --- planning ---------------------------------------------------------------------
  // One planner Lambda up to PLAN_RANGE_ROWS rows; past that, ranges of that many rows,
  // PLAN_RANGES_IN_FLIGHT at once (the state machine's PlanRanges Map), all sharing the
  // table's write rate: the partitions' (1,000 WCU/s each) or a new table's, less of both.
  const partitions = ledger.planPartitions(chunks);
  const rowsPerSecond = Math.min(
    (partitions * DYNAMO_PARTITION_WCU) / ledger.plan.partitionUnits,
    DYNAMO_NEW_TABLE_WRU / ledger.plan.units,
  );
  const planSeconds = chunks / rowsPerSecond;
  const ranged = chunks > PLAN_RANGE_ROWS;
  const ranges = ranged ? Math.ceil(chunks / PLAN_RANGE_ROWS) : 1;
  const inFlight = Math.min(ranges, PLAN_RANGES_IN_FLIGHT);
  // The longest call: the planner over every row, or one range at its share of the rate.
  const planCallSeconds = ranged ? PLAN_RANGE_ROWS / (rowsPerSecond / inFlight) : planSeconds;
  const planner = ranged ? LAMBDA_SIZING.planRange : LAMBDA_SIZING.planner;
  const planCall = {
    ranges: ranged ? ranges : 0,
    inFlight: ranged ? inFlight : 1,
    seconds: planCallSeconds,
    timeoutSeconds: Math.min(planner.timeoutSeconds, LAMBDA_MAX_TIMEOUT_S),
  };
  const workWcu =
    secondsPerChunk === undefined ? undefined : (running * workWcuPerChunk) / secondsPerChunk;

  // --- blend ------------------------------------------------------------------------
  const blendRate = o.blendBytesPerSecond ?? BLEND_BYTES_PER_SECOND;
  const secondsPerItem = layout.blendItemBytes / blendRate;
  const blendLambda = LAMBDA_SIZING.blend;
  const blendHours = (Math.ceil(layout.blendItems / BLEND_CONCURRENCY) * secondsPerItem) / 3600;
  const blendMemory = layout.blendMemoryBytes;
  const itemsJson = layout.blendItemJsonBytes * layout.blendItems;

  const inputGets = o.inputChunkShape ? inputChunkReads(plan, o.inputChunkShape) : undefined;

  // --- finalize -----------------------------------------------------------------------
  // Each pyramid level is read from the one below it and written (about one read of the
  // output and 1/7 of it written in all), in bounded tasks of one level each (the Pyramid
  // step: core/volume/pyramid.ts): a task writes up to blocksPerTask blocks, each from at
  // most 8 parent blocks. The limit that matters is the longest task against its Lambda.
  const pyramid = pyramidLevels(plan.volumeShape, o.pyramid ?? 0);
  const voxelBytes = o.channels * o.outputBytesPerValue;
  let finalizeBytes = 0;
  let longestTaskBytes = 0;
  for (let l = 1; l < pyramid.length; l++) {
    const shape = pyramid[l]!.shape;
    finalizeBytes += voxelBytes * (size(pyramid[l - 1]!.shape) + size(shape));
    const block = shape.map((s, a) => Math.min(plan.blockShape[a]!, s));
    const blocks = shape.reduce((n, s, a) => n * Math.ceil(s / block[a]!), 1);
    const perTask = Math.min(
      blocks,
      Math.max(PYRAMID_BLOCKS_PER_TASK, Math.ceil(blocks / PYRAMID_TASKS_PER_LEVEL)),
    );
    const blockBytes = voxelBytes * block.reduce((n, b) => n * b, 1);
    longestTaskBytes = Math.max(longestTaskBytes, perTask * 9 * blockBytes);
  }
  const finalizeSeconds = longestTaskBytes / blendRate;

  // --- state machine ----------------------------------------------------------------
  const historyEvents =
    HISTORY_EVENTS.fixed +
    knobs.maxRounds * HISTORY_EVENTS.perRound +
    (ranged ? HISTORY_EVENTS.ranged + HISTORY_EVENTS.perRange * ranges : 0);
  const transitions =
    TRANSITIONS.fixed +
    knobs.maxRounds * TRANSITIONS.perRound +
    (ranged ? TRANSITIONS.ranged + TRANSITIONS.perRange * ranges : 0) +
    TRANSITIONS.perBlendItem * layout.blendItems;
  const payload = largestStateBytes(o, {
    arraySize,
    blendItems: layout.blendItems,
    rangeStarts: ranged ? ranges : 0,
  });

  // --- hours and dollars ------------------------------------------------------------
  const workHours = o.compute ? o.compute.workerHours / running : undefined;
  const hours =
    workHours === undefined
      ? undefined
      : {
          planning: planSeconds / 3600,
          work: workHours,
          blend: blendHours,
          total: planSeconds / 3600 + workHours + blendHours,
        };
  const puts = layout.putsPerChunk * chunks + layout.blendPuts;
  const gbSeconds =
    (planner.memoryMiB / 1024) * planCallSeconds * ranges +
    (blendLambda.memoryMiB / 1024) * secondsPerItem * layout.blendItems;
  const lambda =
    gbSeconds * prices.lambdaGbSecond +
    ((layout.blendItems + ranges + 2 * knobs.maxRounds + 3) / 1e6) *
      prices.lambdaPerMillionRequests;
  const requests =
    (puts / 1000) * prices.s3PutPer1000 +
    ((layout.blendGets + (inputGets ?? 0)) / 1000) * prices.s3GetPer1000 +
    (transitions / 1000) * prices.sfnPer1000Transitions;
  // The output for a month; the partials at most until the lifecycle rule expires them.
  const storage =
    (layout.outputBytes / 1e9) * prices.s3GbMonth +
    (layout.partialBytes / 1e9) * prices.s3GbMonth * (knobs.partialsExpireDays / 30);
  const ledgerDollars = ((sum('units') * chunks) / 1e6) * prices.dynamoWritePerMillion;
  const computeDollars = o.compute ? o.compute.workerHours * o.compute.pricePerHour : undefined;

  const limits = judge({
    o,
    chunks,
    requested,
    planCall,
    blendRate,
    finalizeSeconds,
    itemsJson,
    blendMemory,
    secondsPerItem,
    historyEvents,
    payload,
    workHours,
    workWcu,
    totalHours: hours?.total,
    blendHours,
    running,
    arraySize,
    maxVcpus,
  });
  return {
    layout: layout.layout,
    device: o.device,
    ledgerLayout: ledger.layout,
    chunks,
    objects: { perChunk: layout.objectsPerChunk, total: layout.objectsPerChunk * chunks },
    puts: {
      perChunk: layout.putsPerChunk,
      total: puts,
      workers: layout.putsPerChunk * chunks,
      blend: layout.blendPuts,
    },
    gets: { input: inputGets, blend: layout.blendGets },
    partials: {
      objects: layout.partialObjects,
      bytes: layout.partialBytes,
      ofOutput: layout.partialBytes / layout.outputBytes,
    },
    outputBytes: layout.outputBytes,
    ledger: {
      heartbeatsPerChunk: heartbeats,
      writes: { perChunk: sum('requests'), total: sum('requests') * chunks },
      writeUnits: { perChunk: sum('units'), total: sum('units') * chunks },
      planning: {
        rows: chunks,
        partitions,
        rowsPerSecond,
        seconds: planSeconds,
        ranges: planCall.ranges,
        rangesAtOnce: planCall.inFlight,
        callSeconds: planCallSeconds,
        wcuToFitTimeout:
          ((ranged ? inFlight * PLAN_RANGE_ROWS : chunks) * ledger.plan.units) /
          planCall.timeoutSeconds,
      },
      workWcu,
    },
    fleet: { requested, arraySize, running, vcpusPerWorker, maxVcpus },
    blend: {
      items: layout.blendItems,
      concurrency: BLEND_CONCURRENCY,
      bytesPerItem: layout.blendItemBytes,
      secondsPerItem,
      memoryBytes: blendMemory,
      itemsJsonBytes: itemsJson,
      hours: blendHours,
    },
    stateMachine: { historyEvents, largestPayloadBytes: payload, transitions },
    finalize: { levels: pyramid.length - 1, bytes: finalizeBytes, seconds: finalizeSeconds },
    ...(o.compute && workHours !== undefined
      ? {
          compute: {
            workerHours: o.compute.workerHours,
            workHours,
            pricePerHour: o.compute.pricePerHour,
            priceBasis: o.compute.priceBasis,
          },
        }
      : {}),
    ...(hours ? { hours } : {}),
    cost: {
      ...(computeDollars === undefined ? {} : { compute: computeDollars }),
      lambda,
      requests,
      storage,
      ledger: ledgerDollars,
      ...(computeDollars === undefined
        ? {}
        : { total: computeDollars + lambda + requests + storage + ledgerDollars }),
    },
    prices,
    limits,
    ok: limits.every((l) => l.ok !== false),
  };
}

/** Bytes of the largest state data the pipeline carries (see cdk/constructs/pipeline.ts). */
function largestStateBytes(
  o: CloudJobInput,
  n: { arraySize: number; blendItems: number; rangeStarts: number },
): number {
  const jobId = 'x'.repeat(80);
  const state = {
    manifest: {
      bucket: 'b'.repeat(63),
      key: 'k'.repeat(S3_MAX_KEY_BYTES),
      versionId: 'v'.repeat(32),
    },
    plan: {
      jobId,
      arraySize: n.arraySize,
      chunks: o.plan.counts.chunks,
      seamBlocks: o.plan.counts.seamBlocks,
      blendItemsKey: `jobs/${jobId}/blend-items.json`,
      blendItemCount: n.blendItems,
      device: o.device,
      bucket: 'b'.repeat(63),
      blendResultsPrefix: `jobs/${jobId}/blend-results/`,
    },
    work: { round: o.knobs.maxRounds, arraySize: n.arraySize },
    // RangeStarts' States.ArrayRange: the first row of every range.
    ...(n.rangeStarts > 0
      ? {
          planRanges: {
            starts: Array.from({ length: n.rangeStarts }, (_, i) => i * PLAN_RANGE_ROWS),
          },
        }
      : {}),
    batch: { JobId: 'j'.repeat(36), Status: 'SUCCEEDED' },
    verify: {
      jobId,
      status: 'INCOMPLETE',
      round: o.knobs.maxRounds,
      redrive: true,
      remaining: o.plan.counts.chunks,
      arraySize: n.arraySize,
      // Verify's longest reason: the poison chunks it lists (a bounded number), each with
      // its longest error, and how many more there are.
      reason: describePoison(
        Array.from({ length: 1000 }, () => ({
          chunkId: o.plan.chunkId(o.plan.chunkGrid),
          attempts: 99,
          lastError: 'e'.repeat(MAX_ERROR_LENGTH),
        })),
      ),
    },
  };
  return new TextEncoder().encode(JSON.stringify(state)).byteLength;
}

/**
 * Stored input chunks read over all chunks: each chunk's read box (halo included, clipped
 * to the volume) touches a run of input chunks per axis, and the runs multiply.
 */
export function inputChunkReads(plan: Plan, chunkShape: readonly [number, number, number]): number {
  let reads = 1;
  plan.axes.forEach((ax, a) => {
    const edge = chunkShape[a]!;
    const n = plan.volumeShape[a]!;
    let sum = 0;
    for (let j = 0; j < ax.chunkCount; j++) {
      const r = ax.chunkRead(j);
      const start = Math.max(0, r.start);
      const stop = Math.min(n, r.stop);
      if (stop > start) sum += Math.ceil(stop / edge) - Math.floor(start / edge);
    }
    reads *= sum;
  });
  return reads;
}
