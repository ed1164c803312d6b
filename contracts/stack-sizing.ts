// What the deployed stack is sized to, in plain numbers: the CDK constructs build the
// Lambdas, the blend Map and the worker job definitions from these, and `tessera plan
// --cloud` checks a job against the same values. (Operator-chosen settings are knobs,
// cdk/knobs.ts; the workers' memory is CLOUD_WORKER_MEMORY_MIB in core/pipeline.)

/** Memory and timeout of each pipeline Lambda. */
export const LAMBDA_SIZING = {
  // Planning writes one ledger row per chunk.
  planner: { memoryMiB: 1769, timeoutSeconds: 15 * 60 },
  // PLAN_RANGE_ROWS (250,000) rows a call, bounded in-flight: minutes, not the 15 allowed.
  planRange: { memoryMiB: 1769, timeoutSeconds: 15 * 60 },
  verify: { memoryMiB: 512, timeoutSeconds: 5 * 60 },
  // Sums partials of BLOCKS_PER_BLEND_ITEM seam blocks per item; memory is the block buffers.
  blend: { memoryMiB: 3008, timeoutSeconds: 15 * 60 },
  // ≤ PYRAMID_BLOCKS_PER_TASK level blocks a call (more only past 500 tasks a level), 4 lanes.
  pyramid: { memoryMiB: 1769, timeoutSeconds: 15 * 60 },
  finalize: { memoryMiB: 1769, timeoutSeconds: 15 * 60 },
  markFailed: { memoryMiB: 256, timeoutSeconds: 60 },
  // Runs every 5 minutes: reads the counts of each running job; done well before the next.
  watchdog: { memoryMiB: 512, timeoutSeconds: 4 * 60 },
} as const;

/** Blend Lambdas the Distributed Map runs at once. */
export const BLEND_CONCURRENCY = 40;

/** Pyramid range tasks the PyramidTasks Map runs at once. */
export const PYRAMID_CONCURRENCY = 40;

/** Seam blocks per blend Map item (the planner's ranges of the block grid hold about this many). */
export const BLOCKS_PER_BLEND_ITEM = 64;

/** vCPUs of one worker's job definition: GPU fits the smallest g4dn/g5/g6.xlarge, CPU is Fargate. */
export const WORKER_VCPUS = { gpu: 4, cpu: 8 } as const;
