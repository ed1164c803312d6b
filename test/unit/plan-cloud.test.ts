// `tessera plan --cloud`: the cloud figures against hand arithmetic on a small plan, the
// closed-form partial sum against an enumeration, 10^12 / 10^14 / 10^15 voxel jobs at the
// defaults (each limit holds or the plan is refused naming its knob), each limit pushed
// over, and the CLI's --json output.

import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DYNAMO_LEDGER_WRITES } from '../../adapters/aws/dynamo/write-units.ts';
import { knobsFrom, refusal } from '../../cli/plan-cloud.ts';
import { planCommand } from '../../cli/plan-command.ts';
import { CLOUD_PRICES } from '../../cli/prices.ts';
import { DEFAULT_KNOBS, type Knobs } from '../../contracts/knobs.ts';
import { blendItems } from '../../core/cloud/plan-step.ts';
import { encodeJson } from '../../core/cloud/status.ts';
import { Box, Plan, type PlanInput } from '../../core/geometry/index.ts';
import { MAX_ERROR_LENGTH } from '../../core/ledger/index.ts';
import { BLEND_LANES } from '../../core/pipeline/blend-seams.ts';
import {
  type CloudFigures,
  type CloudJobInput,
  type CloudPrices,
  cloudFigures,
  inputChunkReads,
  type LedgerWriteModel,
} from '../../core/pipeline/cloud-figures.ts';
import {
  blendItemCount,
  seamPartialVoxels,
  shardedLayout,
} from '../../core/pipeline/cloud-layout.ts';
import type { JobContext } from '../../core/pipeline/index.ts';
import { FIXTURE_MODELS, tempDir, writeJobDir } from '../helpers/job-dir.ts';

/** Round prices, so that each dollar figure is its quantity. */
const UNIT_PRICES: CloudPrices = {
  s3PutPer1000: 1000,
  s3GetPer1000: 1000,
  s3GbMonth: 1,
  dynamoWritePerMillion: 1e6,
  lambdaGbSecond: 1,
  lambdaPerMillionRequests: 0,
  sfnPer1000Transitions: 1000,
  asOf: 'test',
};

const limitOf = (f: CloudFigures, id: string) => {
  const l = f.limits.find((x) => x.id === id);
  if (!l) throw new Error(`no limit ${id}`);
  return l;
};

const job = (plan: Plan, o: Partial<CloudJobInput> = {}): CloudFigures =>
  cloudFigures({
    plan,
    device: 'gpu',
    maxWorkers: 10_000,
    channels: 1,
    outputBytesPerValue: 1,
    heartbeatMs: 20_000,
    knobs: DEFAULT_KNOBS,
    ledger: DYNAMO_LEDGER_WRITES,
    prices: CLOUD_PRICES,
    ...o,
  });

describe('the sharded cloud layout', () => {
  it('PUTs are the (chunk, shard) incidences, counted here by listing every chunk and block', () => {
    const plan = new Plan({
      volumeShape: [20, 70, 90],
      patchShape: [6, 10, 10],
      overlap: [2, 2, 4],
      chunkShape: [10, 26, 30],
      blockShape: [4, 8, 8],
    });
    const shard = [8, 16, 24] as const;
    const per = [2, 2, 3];
    let incidences = 0;
    const shards = new Set<string>();
    for (const chunk of plan.chunks()) {
      const mine = new Set<string>();
      const r = chunk.blockRange;
      for (let z = r.start[0]; z < r.stop[0]; z++)
        for (let y = r.start[1]; y < r.stop[1]; y++)
          for (let x = r.start[2]; x < r.stop[2]; x++)
            mine.add(
              [Math.floor(z / per[0]!), Math.floor(y / per[1]!), Math.floor(x / per[2]!)].join('_'),
            );
      incidences += mine.size;
      for (const s of mine) shards.add(s);
    }
    const f = shardedLayout([...shard])({
      plan,
      channels: 2,
      outputBytesPerValue: 4,
      blocksPerBlendItem: 64,
    });
    expect(f.putsPerChunk * plan.counts.chunks).toBeCloseTo(incidences, 9);
    // Every shard but one contributor's share is a piece; the last contributor's is the shard.
    expect(f.partialObjects).toBe(incidences - shards.size);
    expect(f.blendItems).toBe(0);
    expect(f.blendPuts).toBe(0);
  });
});

describe('cloud figures of a small plan, by hand', () => {
  // z: one patch, one chunk, one block. y: 2 patches of 32 (stride 32), one chunk of 2,
  // 2 blocks of 32. x: 96 voxels, patch 32, overlap 8 → stride 24, patches at 0, 24, 48
  // and 64 (the last shifted back to end at 96); 2 per chunk: chunk 0 covers [0, 56),
  // chunk 1 [48, 96). Blocks of 32 along x: [0,32) chunk 0 only, [32,64) both, [64,96)
  // chunk 1 only.
  const plan = new Plan({
    volumeShape: [32, 64, 96],
    patchShape: [32, 32, 32],
    overlap: [0, 0, 8],
    chunkShape: [32, 64, 56],
    blockShape: [32, 32, 32],
  });
  const chunks = 1 * 1 * 2;
  const blocks = 1 * 2 * 3;
  const seamBlocks = 1 * 2 * 1;
  const ownedBlocks = blocks - seamBlocks;
  const seamPartials = seamBlocks * 2;
  // Each seam block: 32 (z) · 32 (y) · (|[32,64) ∩ [0,56)| + |[32,64) ∩ [48,96)|) = 1024 · (24 + 16).
  const partialVoxels = seamBlocks * 32 * 32 * (24 + 16);
  const channels = 2;
  // "TSP2" header of 32 bytes, then float32 per channel.
  const partialBytes = seamPartials * 32 + 4 * channels * partialVoxels;
  const outputBytes = 32 * 64 * 96 * channels * 4;
  // The chunk takes 100 s: 200 worker-seconds over 2 chunks.
  const workerHours = 200 / 3600;
  const ledger: LedgerWriteModel = {
    plan: { requests: 1, units: 2, partitionUnits: 1 },
    claim: { requests: 1, units: 6 },
    heartbeat: { requests: 1, units: 3 },
    complete: { requests: 1, units: 5 },
    planPartitions: () => 1,
    layout: 'test',
  };
  const f = job(plan, {
    maxWorkers: 4,
    channels,
    outputBytesPerValue: 4,
    ledger,
    prices: UNIT_PRICES,
    compute: { workerHours, pricePerHour: 0.5, priceBasis: 'test' },
  });

  it('objects, PUTs, GETs and partial bytes', () => {
    expect(plan.counts).toMatchObject({ chunks, blocks, seamBlocks, ownedBlocks, seamPartials });
    expect(f.chunks).toBe(2);
    expect(f.objects).toEqual({ perChunk: (4 + 4) / 2, total: 8 });
    expect(f.puts).toEqual({ perChunk: 4, total: 8 + 2, workers: 8, blend: 2 });
    expect(f.gets.blend).toBe(4);
    expect(f.partials).toEqual({
      objects: 4,
      bytes: partialBytes,
      ofOutput: partialBytes / outputBytes,
    });
    expect(f.outputBytes).toBe(outputBytes);
  });

  it('ledger writes: plan, claim, complete and one heartbeat per 20 s of a 100 s chunk', () => {
    const heartbeats = Math.floor(100_000 / 20_000);
    expect(f.ledger.heartbeatsPerChunk).toBe(5);
    expect(f.ledger.writes).toEqual({ perChunk: 3 + heartbeats, total: 2 * 8 });
    expect(f.ledger.writeUnits).toEqual({ perChunk: 2 + 6 + 5 + 3 * heartbeats, total: 2 * 28 });
    // One partition at 1,000 WCU/s, 1 unit per row there; a new table's 4,000 WRU/s over 2.
    expect(f.ledger.planning).toMatchObject({ rows: 2, partitions: 1, rowsPerSecond: 1000 });
    expect(f.ledger.planning.seconds).toBeCloseTo(0.002, 12);
    // 2 running workers, 28 units per 100 s chunk each.
    expect(f.ledger.workWcu).toBeCloseTo((2 * 28) / 100, 12);
  });

  it('fleet, blend items and state machine', () => {
    // GPU queue: 256 Spot + 32 On-Demand vCPUs at 4 per worker = 72, more than 2 chunks.
    expect(f.fleet).toEqual({
      requested: 2,
      arraySize: 2,
      running: 2,
      vcpusPerWorker: 4,
      maxVcpus: 288,
    });
    // 2 seam blocks ≤ 64 per item: one item, reading every partial, writing 2 blocks.
    const itemBytes = partialBytes + 2 * 32 ** 3 * channels * 4;
    expect(f.blend.items).toBe(1);
    expect(f.blend.bytesPerItem).toBe(itemBytes);
    expect(f.blend.secondsPerItem).toBeCloseTo(itemBytes / 40e6, 12);
    // Per lane: float32 sum (2 channels), Σw, one decoded partial (2 channels), the output.
    expect(f.blend.memoryBytes).toBe(BLEND_LANES * 32 ** 3 * (8 + 4 + 8 + 8));
    // Rounds: 3 (maxRounds). History: ExecutionStarted 1, Plan 5, PlanInRanges? 2,
    // StartRounds 2, HasSeams? 2, Blend 4, Finalize 5, Succeeded 2, ExecutionSucceeded 1
    // = 24, and per round ChooseQueue 2, ArrayOrSingle 2, Work 5, CountRound 2, Verify 5,
    // Verified? 2, NextRound 2 = 20. Transitions: the 7 states around the rounds, 7 per
    // round, 2 for the one blend child.
    expect(f.stateMachine.historyEvents).toBe(24 + 3 * 20);
    expect(f.stateMachine.transitions).toBe(7 + 3 * 7 + 2);
    expect(f.ledger.planning).toMatchObject({ ranges: 0, rangesAtOnce: 1 });
    expect(f.finalize).toEqual({ levels: 0, bytes: 0, seconds: 0 });
  });

  it('input GETs: the stored input chunks each read box touches', () => {
    // Input chunks of 16 × 32 × 32: z [0,32) 2, y [0,64) 2, x chunk 0 [0,56) 2 and chunk 1
    // [48,96) 2 (no margin: the read box is the footprint).
    const p = job(plan, { prices: UNIT_PRICES, inputChunkShape: [16, 32, 32] });
    expect(p.gets.input).toBe(2 * 2 * (2 + 2));
    expect(p.cost.requests - f.cost.requests).toBeCloseTo(16, 9);
    expect(f.gets.input).toBeUndefined();
  });

  it('pyramid: each level read from the one below and written, in bounded tasks; the longest task against its Lambda', () => {
    // Isotropic voxels: level 1 halves z, y and x: 16 × 32 × 48.
    const p = job(plan, { channels, outputBytesPerValue: 4, pyramid: 1 });
    const bytes = channels * 4 * (32 * 64 * 96 + 16 * 32 * 48);
    expect(p.finalize).toMatchObject({ levels: 1, bytes });
    // Level 1's blocks are [16, 32, 32] (clipped to the level): 1 × 1 × 2 of them, one task
    // of both (fewer than 256), each block written and its ≤ 8 parents read: 9 blocks' bytes.
    const task = 2 * 9 * (16 * 32 * 32) * channels * 4;
    expect(p.finalize.seconds).toBeCloseTo(task / 40e6, 12);
  });

  it('dollars: compute, Lambda, requests, storage, ledger', () => {
    expect(f.cost.compute).toBeCloseTo(workerHours * 0.5, 12);
    // $1 per request, per transition, per write unit, per GB-month, per GB-second.
    expect(f.cost.requests).toBeCloseTo(10 + 4 + (7 + 3 * 7 + 2), 9);
    expect(f.cost.ledger).toBeCloseTo(56, 9);
    expect(f.cost.storage).toBeCloseTo(outputBytes / 1e9 + (partialBytes / 1e9) * (14 / 30), 12);
    // Planner 1769 MiB for 0.002 s; blend 3008 MiB for one item.
    const lambda = (1769 / 1024) * 0.002 + (3008 / 1024) * (f.blend.secondsPerItem * 1);
    expect(f.cost.lambda).toBeCloseTo(lambda, 9);
    expect(f.cost.total).toBeCloseTo(
      workerHours * 0.5 + lambda + f.cost.requests + f.cost.storage + 56,
      9,
    );
    expect(f.ok).toBe(true);
  });
});

describe('blend items', () => {
  it('as the planner cuts them: ceil(seam / perItem) ranges asked for, of ceil(blocks / that) blocks', () => {
    // 7 seam blocks at 2 per item asks for 4 ranges; 9 region blocks / 4 → spans of 3:
    // [0,3) [3,6) [6,9), three items.
    expect(blendItemCount(7, 9, 2)).toBe(3);
    expect(blendItemCount(64, 100, 64)).toBe(1);
    expect(blendItemCount(65, 100, 64)).toBe(2);
    expect(blendItemCount(0, 100, 64)).toBe(0);
  });

  it("match the planner's own list, and its JSON is no bigger than the estimate", () => {
    for (const [edge, blockEdge] of [
      [1000, 128],
      [777, 40],
      [2000, 64],
    ] as const) {
      const plan = cube(edge, { blockShape: [blockEdge, blockEdge, blockEdge] });
      const f = job(plan);
      // The planner Lambda's list (a JobContext of its plan and an 80-character job id).
      const items = blendItems({ plan, jobId: 'x'.repeat(80) } as JobContext, 64);
      expect(f.blend.items).toBe(items.length);
      const bytes = encodeJson(items).byteLength;
      expect(f.blend.itemsJsonBytes).toBeGreaterThanOrEqual(bytes - 4);
      expect(f.blend.itemsJsonBytes).toBeLessThan(1.2 * bytes);
    }
  });
});

describe('partial voxels in closed form', () => {
  it('equal the sum of |block ∩ footprint| over every seam partial, enumerated', () => {
    for (const input of [
      {
        volumeShape: [37, 61, 83],
        region: { start: [3, 5, 2], stop: [35, 58, 80] },
        patchShape: [8, 12, 16],
        overlap: [2, 4, 5],
        chunkShape: [14, 20, 27],
        blockShape: [5, 9, 11],
      },
      {
        volumeShape: [40, 100, 100],
        patchShape: [16, 32, 32],
        overlap: [4, 8, 8],
        chunkShape: [24, 48, 48],
        blockShape: [20, 25, 25],
      },
    ] satisfies PlanInput[]) {
      const plan = new Plan(input);
      let voxels = 0;
      for (const chunk of plan.chunks())
        for (const b of plan.seamBlocks(chunk)) voxels += b.box.intersect(chunk.footprint).size;
      expect(voxels).toBeGreaterThan(0);
      expect(seamPartialVoxels(plan)).toBe(voxels);
    }
  });
});

/** The defaults the issue works from: 512³ chunks, 128³ patches with 32 overlap, 128³ blocks. */
const cube = (edge: number, o: Partial<PlanInput> = {}): Plan =>
  new Plan({
    volumeShape: [edge, edge, edge],
    patchShape: [128, 128, 128],
    overlap: [32, 32, 32],
    chunkShape: [512, 512, 512],
    ...o,
  });

describe('input chunk reads in closed form', () => {
  it('equal the stored chunks each read box (halo included, clipped) touches, enumerated', () => {
    const plan = new Plan({
      volumeShape: [37, 61, 83],
      patchShape: [8, 12, 16],
      overlap: [2, 4, 5],
      chunkShape: [14, 20, 27],
      inputMargin: [2, 3, 4],
    });
    const stored: [number, number, number] = [7, 9, 11];
    const volume = Box.ofShape(plan.volumeShape);
    let reads = 0;
    for (const chunk of plan.chunks()) {
      const read = chunk.readBox.intersect(volume);
      for (let z = 0; z < 37; z += 7)
        for (let y = 0; y < 61; y += 9)
          for (let x = 0; x < 83; x += 11)
            if (!Box.ofShape(stored, [z, y, x]).intersect(read).isEmpty()) reads++;
    }
    expect(reads).toBeGreaterThan(plan.counts.chunks);
    expect(inputChunkReads(plan, stored)).toBe(reads);
  });
});

describe('10^12, 10^14 and 10^15 voxels at the defaults', () => {
  const KNOBS = new Set([
    'compute.maxWorkers',
    'maxChunks',
    'chunkShape',
    'output.blockShape',
    'maxRounds',
    'manifest key',
    'maxGpuVcpus',
    'jobTimeoutHours',
  ]);
  // 10^4, 46,416 and 10^5 voxels per axis: patches ceil((n - 128) / 96) + 1 per axis, 5
  // per chunk (floor((512 - 128) / 96) + 1).
  const jobs = [
    { voxels: 1e12, edge: 10_000, perAxis: Math.ceil((Math.ceil((10_000 - 128) / 96) + 1) / 5) },
    { voxels: 1e14, edge: 46_416, perAxis: Math.ceil((Math.ceil((46_416 - 128) / 96) + 1) / 5) },
    { voxels: 1e15, edge: 100_000, perAxis: Math.ceil((Math.ceil((100_000 - 128) / 96) + 1) / 5) },
  ];
  for (const { voxels, edge, perAxis } of jobs)
    it(`${voxels.toExponential(0)} voxels: every limit holds, or the plan is refused naming the knob`, () => {
      const t0 = performance.now();
      const plan = cube(edge);
      // At 5 Mvox/s per GPU: about a minute per chunk.
      const f = job(plan, {
        compute: {
          workerHours: plan.counts.patchVoxels / 5e6 / 3600,
          pricePerHour: 0.21,
          priceBasis: 'test',
        },
      });
      // Closed form: milliseconds even for 9 M chunks.
      expect(performance.now() - t0).toBeLessThan(1000);
      expect(f.chunks).toBe(perAxis ** 3);
      for (const l of f.limits) {
        expect(l.ok, l.id).not.toBeUndefined();
        if (l.ok) continue;
        expect(KNOBS.has(l.knob), `${l.id} names ${l.knob}`).toBe(true);
        expect(refusal(f)).toContain(`change ${l.knob}`);
      }
      if (f.ok) expect(refusal(f)).toBeUndefined();
    });

  it('10^12 fits the stack; 10^14 plans in ranges; 10^15 is refused for planner time (chunkShape)', () => {
    const [small, mid, large] = jobs.map((j) => job(cube(j.edge)));
    expect(small!.ok).toBe(true);
    expect(small!.limits.filter((l) => l.ok === false)).toEqual([]);
    expect(small!.ledger.planning.ranges).toBe(0);
    // 97³ = 912,673 rows: 4 ranges of 250,000 at once, on ceil(912,673 / 25,000) = 37
    // partitions, held to a new table's 4,000 WRU/s ÷ 2 per row = 2,000 rows/s: 500 s each.
    expect(mid!.ledger.planning).toMatchObject({ ranges: 4, rangesAtOnce: 4, partitions: 37 });
    expect(mid!.ledger.planning.callSeconds).toBeCloseTo(250_000 / (2000 / 4), 9);
    expect(limitOf(mid!, 'plannerTime').ok).toBe(true);
    // 209³ = 9,129,329 rows: 37 ranges, 16 at once, 125 rows/s each: 2,000 s a range.
    expect(large!.ledger.planning).toMatchObject({ ranges: 37, rangesAtOnce: 16 });
    expect(limitOf(large!, 'plannerTime')).toMatchObject({ ok: false, knob: 'chunkShape' });
    expect(limitOf(large!, 'plannerTime').value).toBeCloseTo(250_000 / (2000 / 16), 9);
    expect(limitOf(large!, 'plannerChunks').ok).toBe(209 ** 3 <= DEFAULT_KNOBS.maxChunks);
    expect(refusal(large!)).toContain('change chunkShape');
  });
});

describe('each limit flips when its quantity is pushed over', () => {
  const small = cube(10_000);
  const slow = (plan: Plan, voxelsPerSecond: number) => ({
    workerHours: plan.counts.patchVoxels / voxelsPerSecond / 3600,
    pricePerHour: 0.21,
    priceBasis: 'test',
  });
  const flips = (id: string, under: CloudFigures, over: CloudFigures, knob: string): void => {
    expect(limitOf(under, id).ok, `${id} under`).toBe(true);
    expect(limitOf(over, id), `${id} over`).toMatchObject({ ok: false, knob });
    expect(over.ok).toBe(false);
    expect(refusal(over)).toContain(`${id} (change ${knob}`);
  };

  it('Batch array size: compute.maxWorkers over 10,000', () => {
    const plan = cube(10_000, { chunkShape: [256, 256, 256] });
    expect(plan.counts.chunks).toBeGreaterThan(20_000);
    flips('batchArraySize', job(plan), job(plan, { maxWorkers: 20_000 }), 'compute.maxWorkers');
  });

  it('planner chunks: tiny chunks, or a stack with a lower maxChunks', () => {
    flips(
      'plannerChunks',
      job(small),
      job(small, { knobs: knobsFrom(['maxChunks=9000']) }),
      'maxChunks',
    );
    const tiny = cube(10_000, { chunkShape: [96, 96, 96] });
    expect(tiny.counts.chunks).toBe(104 ** 3);
    const knobs = knobsFrom([`maxChunks=${104 ** 3 - 1}`]);
    expect(limitOf(job(tiny, { knobs }), 'plannerChunks').ok).toBe(false);
  });

  it('planner time: ranges that share a new table past 900 s each', () => {
    flips('plannerTime', job(cube(46_416)), job(cube(100_000)), 'chunkShape');
  });

  it('plan ranges: more than States.ArrayRange lists', () => {
    // 1,042³ chunks of one patch each: 1.1·10^9 rows, 4,525 ranges of 250,000.
    const tiny = cube(100_000, { chunkShape: [96, 96, 96] });
    expect(tiny.counts.chunks).toBe(1042 ** 3);
    flips('planRanges', job(small), job(tiny), 'chunkShape');
  });

  it('blend items: the ItemReader file and the planner memory, with tiny blocks', () => {
    const tiny = cube(100_000, { blockShape: [8, 8, 8] });
    flips('blendItemsFile', job(small), job(tiny), 'output.blockShape');
    flips('plannerMemory', job(small), job(cube(100_000)), 'output.blockShape');
  });

  it('blend Lambda memory and time, with big multi-channel float32 blocks', () => {
    const big = cube(10_000, { blockShape: [512, 512, 512] });
    const heavy = job(big, { channels: 3, outputBytesPerValue: 4 });
    flips('blendMemory', job(small), heavy, 'output.blockShape');
    flips('blendTime', job(small), heavy, 'output.blockShape');
  });

  it('pyramid task time: 10^12 voxels fit (tasks of 256 blocks); a level of millions of blocks in 500 tasks does not', () => {
    // 4·10^13 voxels: level 1 is 20,000³ in 157³ blocks of 128³, 7,740 blocks a task.
    flips(
      'finalizeTime',
      job(small, { pyramid: 4 }),
      job(cube(40_000), { pyramid: 1 }),
      'output.blockShape',
    );
  });

  it('execution history: rounds enough to pass 25,000 events', () => {
    const knobs: Knobs = { ...DEFAULT_KNOBS, maxRounds: 2000 };
    flips('executionHistory', job(small), job(small, { knobs }), 'maxRounds');
  });

  it('state payload: Verify reason counted with its longest poison lines, under 256 KiB', () => {
    const l = limitOf(job(small), 'statePayload');
    expect(l.value).toBeGreaterThan(10 * MAX_ERROR_LENGTH);
    expect(l.ok).toBe(true);
  });

  it('ledger write rate during work: many workers on second-long chunks', () => {
    const plan = cube(10_000, { chunkShape: [256, 256, 256] });
    const fast = (vps: number, knobs = DEFAULT_KNOBS): CloudFigures =>
      job(plan, { compute: slow(plan, vps), knobs });
    const wide = knobsFrom(['maxGpuVcpus=40000']);
    expect(fast(1e12, wide).fleet.running).toBe(10_000);
    // 2·2·2 patches of 128³ per chunk: 1.7 s at 10 Mvox/s, 17 µs at 1 Tvox/s.
    flips('ledgerWorkRate', fast(1e7), fast(1e12, wide), 'chunkShape');
  });

  it('worker and job time: a slow model on the default fleet (maxGpuVcpus) or on one worker', () => {
    flips(
      'workerTime',
      job(small, { compute: slow(small, 1e9) }),
      job(small, { compute: slow(small, 1e5) }),
      'maxGpuVcpus',
    );
    const one = job(small, { maxWorkers: 1, compute: slow(small, 1e7) });
    expect(limitOf(one, 'workerTime')).toMatchObject({ ok: false, knob: 'compute.maxWorkers' });
    flips(
      'jobTime',
      // About 0.9 h of work on 72 workers and 0.7 h of blending.
      job(small, { compute: slow(small, 1e7) }),
      job(small, { compute: slow(small, 1e7), knobs: knobsFrom(['jobTimeoutHours=1']) }),
      'jobTimeoutHours',
    );
    // 10^15 voxels with vCPUs for 10,000 workers: work is 13 h, the blend (4.5 M items, 40
    // at once) over 1,300 h: the fix names the blend.
    const peta = cube(100_000);
    const wide = job(peta, {
      compute: slow(peta, 5e6),
      knobs: knobsFrom(['maxGpuVcpus=40000']),
    });
    expect(limitOf(wide, 'workerTime').ok).toBe(true);
    expect(limitOf(wide, 'jobTime').ok).toBe(false);
    expect(limitOf(wide, 'jobTime').fix).toMatch(/the blend is the longer part/);
  });

  it('without a throughput the time limits are not judged', () => {
    const f = job(small);
    for (const id of ['workerTime', 'jobTime', 'ledgerWorkRate'])
      expect(limitOf(f, id).ok, id).toBeUndefined();
    expect(f.cost.compute).toBeUndefined();
    expect(f.ok).toBe(true);
  });
});

describe('tessera plan --cloud --json', () => {
  const t = tempDir('tessera-plan-cloud-');
  afterAll(t.cleanup);
  const MANIFEST = {
    model: {
      url: join(FIXTURE_MODELS, 'realistic.onnx'),
      patchShape: [8, 16, 16],
      outputChannels: 2,
    },
    output: { url: 'output.zarr', dtype: 'float32', blockShape: [10, 20, 22] },
    overlap: [2, 4, 4],
    chunkShape: [12, 24, 24],
    compute: { device: 'gpu', maxWorkers: 4 },
  };

  async function capture(
    f: () => Promise<number>,
  ): Promise<{ code: number; out: string; err: string }> {
    const write = process.stdout.write.bind(process.stdout);
    const writeErr = process.stderr.write.bind(process.stderr);
    let out = '';
    let err = '';
    const text = (chunk: string | Uint8Array): string =>
      typeof chunk === 'string' ? chunk : new TextDecoder().decode(chunk);
    process.stdout.write = ((chunk: string | Uint8Array) => {
      out += text(chunk);
      return true;
    }) as typeof process.stdout.write;
    process.stderr.write = ((chunk: string | Uint8Array) => {
      err += text(chunk);
      return true;
    }) as typeof process.stderr.write;
    try {
      return { code: await f(), out, err };
    } finally {
      process.stdout.write = write;
      process.stderr.write = writeErr;
    }
  }

  it('returns the figures from the plan counts, and refuses naming the knob', async () => {
    const path = await writeJobDir(t.dir, { shape: [30, 50, 50], manifest: MANIFEST });
    const { code, out } = await capture(() =>
      planCommand([path, '--cloud', '--json', '--throughput', '2000', '--price-per-hour', '0.3']),
    );
    expect(code).toBe(0);
    const p = JSON.parse(out);
    const c = p.counts;
    // A cloud job's output is sharded at the chunk pitch: 10 × 20 × 24 rounds to one block
    // per shard here, so each (chunk, block) incidence is one PUT (a piece, or, for the last
    // contributor, the shard itself) and no Blend Map PUT follows.
    expect(p.cloud.layout).toMatch(/^sharded output \(shards \[10, 20, 22\]\)/);
    expect(p.cloud.chunks).toBe(c.chunks);
    expect(p.cloud.puts.total).toBe(c.ownedBlocks + c.seamPartials);
    expect(p.cloud.objects.perChunk).toBe((c.ownedBlocks + c.seamPartials) / c.chunks);
    // float32, 2 channels over the region.
    expect(p.cloud.outputBytes).toBe(c.regionVoxels * 2 * 4);
    expect(p.cloud.fleet.arraySize).toBe(Math.min(4, c.chunks));
    expect(p.cloud.cost.compute).toBeCloseTo((c.patchVoxels / 2000 / 3600) * 0.3, 12);
    expect(p.cloud.ok).toBe(true);
    expect(p.cloud.limits.map((l: { id: string }) => l.id)).toContain('executionHistory');

    const refused = await capture(() =>
      planCommand([path, '--cloud', '--json', '--knob', `maxChunks=${c.chunks - 1}`]),
    );
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/refused: .*plannerChunks \(change maxChunks/);
    expect(JSON.parse(refused.out).cloud.ok).toBe(false);

    const plain = await capture(() => planCommand([path, '--cloud']));
    expect(plain.code).toBe(0);
    expect(plain.out).toMatch(/^limits$/m);
    expect(plain.out).toMatch(/^ {2}ok {2}plannerChunks/m);
  });

  it('--knob needs --cloud, and a knob name', async () => {
    const path = await writeJobDir(t.dir, { shape: [30, 50, 50], manifest: MANIFEST });
    await expect(planCommand([path, '--knob', 'maxChunks=5'])).rejects.toThrow(/--cloud/);
    await expect(planCommand([path, '--cloud', '--knob', 'maxChunk=5'])).rejects.toThrow(
      /stack knob name/,
    );
    expect(() => knobsFrom(['toString=1'])).toThrow(/stack knob name/);
    // Checked as cdk checks it: out of range names the knob and its context key.
    expect(() => knobsFrom(['maxRounds=99'])).toThrow(
      /"maxRounds" \(context key tessera:maxRounds\)/,
    );
  });
});
