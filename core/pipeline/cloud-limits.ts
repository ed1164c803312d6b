// The limits a cloud job meets, each judged ok or not (undefined: needs a throughput),
// with the manifest field or stack knob that fixes it: Batch's array size, the planner's
// chunk limit and time, the blend items' file and memory, the blend Lambda's memory and
// time, the execution's history and state size, the ledger's write rate, the workers' and
// the execution's timeouts. The figures come from cloud-figures.ts.

import { PLAN_RANGE_ROWS } from '../../contracts/cloud.ts';
import { jobTimeoutHours } from '../../contracts/knobs.ts';
import { BLEND_CONCURRENCY, LAMBDA_SIZING } from '../../contracts/stack-sizing.ts';
import {
  DYNAMO_NEW_TABLE_WRU,
  ITEM_READER_MAX_BYTES,
  LAMBDA_MAX_MEMORY_MIB,
  LAMBDA_MAX_TIMEOUT_S,
  SFN_ARRAY_RANGE_MAX_ITEMS,
  SFN_MAX_HISTORY_EVENTS,
  SFN_MAX_PAYLOAD_BYTES,
} from './aws-quotas.ts';
import type { CloudJobInput } from './cloud-figures.ts';
import { MAX_FLEET } from './steps.ts';

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
  /** The manifest field or stack knob (contracts/knobs.ts) that changes the value or the limit. */
  knob: string;
  fix: string;
}

export interface Judged {
  o: CloudJobInput;
  chunks: number;
  requested: number;
  /** The longest planner (or PlanRange) call, its timeout, and the PlanRange calls (0: none). */
  planCall: { ranges: number; inFlight: number; seconds: number; timeoutSeconds: number };
  blendRate: number;
  finalizeSeconds: number;
  itemsJson: number;
  blendMemory: number;
  secondsPerItem: number;
  historyEvents: number;
  payload: number;
  workHours: number | undefined;
  workWcu: number | undefined;
  totalHours: number | undefined;
  blendHours: number;
  running: number;
  arraySize: number;
  maxVcpus: number;
}

export function judge(j: Judged): Limit[] {
  const { knobs } = j.o;
  const planner = LAMBDA_SIZING.planner;
  const ranged = j.planCall.ranges > 0;
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
      what: ranged
        ? `seconds one PlanRange call writes its ${PLAN_RANGE_ROWS} rows (${j.planCall.inFlight} at once share the table's rate) against its timeout`
        : 'seconds the planner Lambda writes every chunk row against its timeout',
      value: j.planCall.seconds,
      limit: j.planCall.timeoutSeconds,
      unit: 's',
      knob: 'chunkShape',
      fix: ranged
        ? 'use a larger chunkShape (fewer rows), or give the ledger table warm throughput (a new on-demand table writes about 4,000 units/s)'
        : 'use a larger chunkShape (fewer rows)',
    }),
    limit({
      id: 'planRanges',
      what: 'PlanRange calls against the range starts States.ArrayRange can list',
      value: j.planCall.ranges,
      limit: SFN_ARRAY_RANGE_MAX_ITEMS,
      unit: 'ranges',
      knob: 'chunkShape',
      fix: 'use a larger chunkShape (fewer rows)',
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
      what: `seconds one blend item takes at ${j.blendRate} bytes/s against the Lambda timeout`,
      value: j.secondsPerItem,
      limit: Math.min(blend.timeoutSeconds, LAMBDA_MAX_TIMEOUT_S),
      unit: 's',
      knob: 'output.blockShape',
      fix: 'smaller output.blockShape (an item is a fixed number of seam blocks)',
    }),
    limit({
      id: 'finalizeTime',
      what: `seconds the longest Pyramid task (one Lambda: up to its blocks of one level, 8 parent blocks read per block) takes at ${j.blendRate} bytes/s against its timeout`,
      value: j.finalizeSeconds,
      limit: Math.min(LAMBDA_SIZING.pyramid.timeoutSeconds, LAMBDA_MAX_TIMEOUT_S),
      unit: 's',
      knob: 'output.blockShape',
      fix: 'smaller output.blockShape (a task holds at most PYRAMID_BLOCKS_PER_TASK blocks until a level has more than 128,000 of them), or fewer output.pyramid levels',
    }),
    limit({
      id: 'executionHistory',
      what: "events in the pipeline execution's history (maxRounds Work rounds, the plan's ranges)",
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
        // The longer of work and blend is what to shorten.
        fix:
          j.blendHours > (j.workHours ?? 0)
            ? `raise the stack knob jobTimeoutHours; the blend is the longer part (${BLEND_CONCURRENCY} blend Lambdas at once): a larger chunkShape leaves fewer seam blocks`
            : `raise the stack knob jobTimeoutHours, or ${widen}`,
      },
      j.totalHours,
    ),
  ];
}
