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

import { jobTimeoutHours, type Knobs } from '../../contracts/knobs.ts';
import {
  BLEND_CONCURRENCY,
  BLOCKS_PER_BLEND_ITEM,
  LAMBDA_SIZING,
  WORKER_VCPUS,
} from '../../contracts/stack-sizing.ts';
import type { Plan } from '../geometry/index.ts';
import { MAX_ERROR_LENGTH } from '../ledger/index.ts';
import {
  DYNAMO_NEW_TABLE_WRU,
  DYNAMO_PARTITION_WCU,
  ITEM_READER_MAX_BYTES,
  LAMBDA_MAX_MEMORY_MIB,
  LAMBDA_MAX_TIMEOUT_S,
  SFN_MAX_HISTORY_EVENTS,
  SFN_MAX_PAYLOAD_BYTES,
} from './aws-quotas.ts';
import { type CloudLayout, unshardedLayout } from './cloud-layout.ts';
import { MAX_FLEET, nextArraySize } from './steps.ts';
import { describePoison } from './verify.ts';

export type { CloudLayout, LayoutFigures, LayoutInput } from './cloud-layout.ts';
export { unshardedLayout } from './cloud-layout.ts';

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
  /** model.outputChannels */
  channels: number;
  /** Bytes of one output value (output.dtype). */
  outputBytesPerValue: number;
  /** The job's lease and the workers' heartbeat period. */
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
 * starts, succeeds and exits (5), the Distributed Map enters, starts its Map Run, ends it
 * and exits (4; its children have their own histories). One Work round is ChooseQueue,
 * ArrayOrSingle, the Batch task, CountRound, Verify, Verified? and NextRound; around them:
 * ExecutionStarted, Plan, StartRounds, HasSeams?, Blend, Finalize, Succeeded,
 * ExecutionSucceeded. Retries add a few each.
 */
export const HISTORY_EVENTS = {
  perRound: 2 + 2 + 5 + 2 + 5 + 2 + 2,
  fixed: 1 + 5 + 2 + 2 + 4 + 5 + 2 + 1,
};
/** State transitions billed: states entered per round, around the rounds, per blend child. */
export const TRANSITIONS = { perRound: 7, fixed: 6, perBlendItem: 2 };

/** S3's longest object key, bytes: the manifest key in the state data can be this long. */
const S3_MAX_KEY_BYTES = 1024;
const MIB = 2 ** 20;

export interface Limit {
  id: string;
  /** What is measured, in words. */
  what: string;
  value: number;
  limit: number;
  unit: string;
  /** undefined: not judged (needs a throughput). */
  ok: boolean | undefined;
  /** The manifest field or stack knob (cdk/knobs.ts) that changes the value or the limit. */
  knob: string;
  fix: string;
}

export interface CloudFigures {
  layout: string;
  ledgerLayout: string;
  chunks: number;
  objects: { perChunk: number; total: number };
  puts: { perChunk: number; total: number; workers: number; blend: number };
  gets: { blend: number };
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
  const partitions = ledger.planPartitions(chunks);
  const rowsPerSecond = Math.min(
    (partitions * DYNAMO_PARTITION_WCU) / ledger.plan.partitionUnits,
    DYNAMO_NEW_TABLE_WRU / ledger.plan.units,
  );
  const planSeconds = chunks / rowsPerSecond;
  const planner = LAMBDA_SIZING.planner;
  const workWcu =
    secondsPerChunk === undefined ? undefined : (running * sum('units')) / secondsPerChunk;

  // --- blend ------------------------------------------------------------------------
  const blendRate = o.blendBytesPerSecond ?? BLEND_BYTES_PER_SECOND;
  const secondsPerItem = layout.blendItemBytes / blendRate;
  const blendLambda = LAMBDA_SIZING.blend;
  const blendHours = (Math.ceil(layout.blendItems / BLEND_CONCURRENCY) * secondsPerItem) / 3600;
  const blendMemory = layout.blendMemoryBytes;
  const itemsJson = layout.blendItemJsonBytes * layout.blendItems;

  // --- state machine ----------------------------------------------------------------
  const historyEvents = HISTORY_EVENTS.fixed + knobs.maxRounds * HISTORY_EVENTS.perRound;
  const transitions =
    TRANSITIONS.fixed +
    knobs.maxRounds * TRANSITIONS.perRound +
    TRANSITIONS.perBlendItem * layout.blendItems;
  const payload = largestStateBytes(o, { arraySize, blendItems: layout.blendItems });

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
    (planner.memoryMiB / 1024) * planSeconds +
    (blendLambda.memoryMiB / 1024) * secondsPerItem * layout.blendItems;
  const lambda =
    gbSeconds * prices.lambdaGbSecond +
    ((layout.blendItems + 2 * knobs.maxRounds + 3) / 1e6) * prices.lambdaPerMillionRequests;
  const requests =
    (puts / 1000) * prices.s3PutPer1000 +
    (layout.blendGets / 1000) * prices.s3GetPer1000 +
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
    planSeconds,
    itemsJson,
    blendMemory,
    secondsPerItem,
    historyEvents,
    payload,
    workHours,
    workWcu,
    totalHours: hours?.total,
    running,
    arraySize,
    maxVcpus,
  });
  return {
    layout: layout.layout,
    ledgerLayout: ledger.layout,
    chunks,
    objects: { perChunk: layout.objectsPerChunk, total: layout.objectsPerChunk * chunks },
    puts: {
      perChunk: layout.putsPerChunk,
      total: puts,
      workers: layout.putsPerChunk * chunks,
      blend: layout.blendPuts,
    },
    gets: { blend: layout.blendGets },
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
        wcuToFitTimeout: (chunks * ledger.plan.units) / planner.timeoutSeconds,
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

interface Judged {
  o: CloudJobInput;
  chunks: number;
  requested: number;
  planSeconds: number;
  itemsJson: number;
  blendMemory: number;
  secondsPerItem: number;
  historyEvents: number;
  payload: number;
  workHours: number | undefined;
  workWcu: number | undefined;
  totalHours: number | undefined;
  running: number;
  arraySize: number;
  maxVcpus: number;
}

function judge(j: Judged): Limit[] {
  const { knobs } = j.o;
  const planner = LAMBDA_SIZING.planner;
  const blend = LAMBDA_SIZING.blend;
  const limit = (l: Omit<Limit, 'ok'>, ok = l.value <= l.limit): Limit => ({ ...l, ok });
  const timed = (l: Omit<Limit, 'ok' | 'value'>, value: number | undefined): Limit => ({
    ...l,
    value: value ?? Number.NaN,
    ok: value === undefined ? undefined : value <= l.limit,
  });
  const vcpus = j.o.device === 'gpu' ? 'maxGpuVcpus' : 'maxCpuVcpus';
  // What holds the running fleet down: the workers asked for, or the vCPUs the stack allows.
  const wider = j.running < j.arraySize ? vcpus : 'compute.maxWorkers';
  const widen =
    wider === vcpus
      ? `raise the stack knob ${vcpus} (more workers at once)`
      : 'raise compute.maxWorkers';
  return [
    limit({
      id: 'batchArraySize',
      what: "workers asked for (min of compute.maxWorkers and chunks) against Batch's array size",
      value: j.requested,
      limit: MAX_FLEET,
      unit: 'workers',
      knob: 'compute.maxWorkers',
      fix: `at most ${MAX_FLEET} workers per array job; lower compute.maxWorkers (more are cut to ${MAX_FLEET})`,
    }),
    limit({
      id: 'plannerChunks',
      what: 'chunk rows against the largest plan the planner accepts',
      value: j.chunks,
      limit: knobs.maxChunks,
      unit: 'chunks',
      knob: 'maxChunks',
      fix: 'raise the stack knob maxChunks (cdk -c tessera:maxChunks=…), or use a larger chunkShape',
    }),
    limit({
      id: 'plannerTime',
      what: 'seconds the planner Lambda writes chunk rows (one partition per job) against its timeout',
      value: j.planSeconds,
      limit: Math.min(planner.timeoutSeconds, LAMBDA_MAX_TIMEOUT_S),
      unit: 's',
      knob: 'chunkShape',
      fix: 'use a larger chunkShape (fewer rows); a plan split over ranges lifts this limit',
    }),
    limit({
      id: 'blendItemsFile',
      what: "blend items JSON (read by the Distributed Map's ItemReader)",
      value: j.itemsJson,
      limit: ITEM_READER_MAX_BYTES,
      unit: 'bytes',
      knob: 'output.blockShape',
      fix: 'larger output.blockShape (fewer seam blocks, fewer items)',
    }),
    limit({
      id: 'plannerMemory',
      what: 'blend items built in the planner (objects, JSON and upload: about 4× the JSON) against its memory',
      value: 4 * j.itemsJson,
      limit: planner.memoryMiB * MIB,
      unit: 'bytes',
      knob: 'output.blockShape',
      fix: 'larger output.blockShape (fewer blend items)',
    }),
    limit({
      id: 'blendMemory',
      what: 'memory one blend Lambda needs for its blocks in flight',
      value: j.blendMemory,
      limit: blend.memoryMiB * MIB,
      unit: 'bytes',
      knob: 'output.blockShape',
      fix: `smaller output.blockShape (the blend Lambda has ${blend.memoryMiB} MiB; Lambda allows ${LAMBDA_MAX_MEMORY_MIB})`,
    }),
    limit({
      id: 'blendTime',
      what: `seconds one blend item takes at ${j.o.blendBytesPerSecond ?? BLEND_BYTES_PER_SECOND} bytes/s against the Lambda timeout`,
      value: j.secondsPerItem,
      limit: Math.min(blend.timeoutSeconds, LAMBDA_MAX_TIMEOUT_S),
      unit: 's',
      knob: 'output.blockShape',
      fix: 'smaller output.blockShape (an item is a fixed number of seam blocks)',
    }),
    limit({
      id: 'executionHistory',
      what: "events in the pipeline execution's history (maxRounds Work rounds)",
      value: j.historyEvents,
      limit: SFN_MAX_HISTORY_EVENTS,
      unit: 'events',
      knob: 'maxRounds',
      fix: 'fewer maxRounds',
    }),
    limit({
      id: 'statePayload',
      what: 'largest state data (manifest location, plan, round, Batch and Verify results)',
      value: j.payload,
      limit: SFN_MAX_PAYLOAD_BYTES,
      unit: 'bytes',
      knob: 'manifest key',
      fix: 'a shorter manifest key',
    }),
    timed(
      {
        id: 'ledgerWorkRate',
        what: 'write units per second the running fleet spends on claims, heartbeats and completions',
        limit: DYNAMO_NEW_TABLE_WRU,
        unit: 'WRU/s',
        knob: 'chunkShape',
        fix: "larger chunkShape (fewer, longer chunks), or set the table's warm throughput",
      },
      j.workWcu,
    ),
    timed(
      {
        id: 'workerTime',
        what: `hours each worker runs (worker-hours ÷ ${j.running} running; at most ${j.maxVcpus} vCPUs) against the Batch attempt timeout`,
        limit: knobs.workerTimeoutHours,
        unit: 'h',
        knob: wider,
        fix: `${widen}, or the stack knob workerTimeoutHours`,
      },
      j.workHours,
    ),
    timed(
      {
        id: 'jobTime',
        what: 'hours the execution runs (plan, work, blend) against its timeout',
        limit: jobTimeoutHours(knobs),
        unit: 'h',
        knob: 'jobTimeoutHours',
        fix: `raise the stack knob jobTimeoutHours, or ${widen}`,
      },
      j.totalHours,
    ),
  ];
}

/** Bytes of the largest state data the pipeline carries (see cdk/constructs/pipeline.ts). */
function largestStateBytes(o: CloudJobInput, n: { arraySize: number; blendItems: number }): number {
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
