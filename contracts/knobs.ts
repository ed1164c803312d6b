// Deployment knobs: the few settings an operator chooses per deployment. `cdk/app.ts`
// reads them from cdk.json context (or `-c tessera:<name>=...`) and hands them here as
// raw values; everything below the app takes the validated, typed `Knobs`. In contracts
// (cdk/knobs.ts re-exports it) because `tessera plan --cloud` checks jobs against them too.

/** GPU families the stack accepts: x86_64, supported by ECS_AL2023_NVIDIA (no p3/g3). */
export const GPU_FAMILIES = ['g4dn', 'g5', 'g6', 'g6e'] as const;

export interface Knobs {
  /** EC2 instance types for the GPU environments, e.g. "g5.xlarge" (family.size, no classes). */
  readonly gpuInstanceTypes: readonly string[];
  /** Upper bound of the Spot GPU environment. */
  readonly maxGpuVcpus: number;
  /** Upper bound of the On-Demand GPU fallback (keeps the expensive path small). */
  readonly maxOnDemandGpuVcpus: number;
  /** Upper bound of each CPU (Fargate) environment. */
  readonly maxCpuVcpus: number;
  /** Extra buckets manifests may read inputs/models from and write outputs to. */
  readonly allowedBuckets: readonly string[];
  /** Where alarms are mailed; no subscription when unset. */
  readonly alarmEmail?: string;
  /** Use this existing VPC (needs an account/region env for the lookup) instead of a new one. */
  readonly vpcId?: string;
  /** NAT gateways of a new VPC; 0 puts workers in public subnets with public IPs. */
  readonly natGateways: number;
  /** Seam partials older than this are expired by the bucket lifecycle. */
  readonly partialsExpireDays: number;
  /** Work rounds (Batch submissions) before unfinished chunks fail the job. */
  readonly maxRounds: number;
  /** Largest plan one planner Lambda accepts. */
  readonly maxChunks: number;
  /** Batch attempt timeout of one worker (it claims chunks until none are left). */
  readonly workerTimeoutHours: number;
  /**
   * Timeout of one pipeline execution; unset: maxRounds × workerTimeoutHours + 6 (every
   * round may run one full attempt; planning, verifying, blending and finalizing fit in
   * the 6 h). A job still running then fails as TIMED_OUT and its Batch jobs are cancelled.
   */
  readonly jobTimeoutHours?: number;
  /** The "no progress" alarm: minutes with chunks unfinished and none finishing. */
  readonly stallMinutes: number;
}

export const DEFAULT_KNOBS: Knobs = {
  gpuInstanceTypes: [
    'g4dn.xlarge',
    'g4dn.2xlarge',
    'g5.xlarge',
    'g5.2xlarge',
    'g6.xlarge',
    'g6.2xlarge',
  ],
  maxGpuVcpus: 256,
  maxOnDemandGpuVcpus: 32,
  maxCpuVcpus: 256,
  allowedBuckets: [],
  natGateways: 1,
  partialsExpireDays: 14,
  maxRounds: 3,
  // 10^7: planned in ranges past PLAN_RANGE_ROWS (contracts/cloud.ts), 40 PlanRange tasks.
  maxChunks: 10_000_000,
  workerTimeoutHours: 24,
  stallMinutes: 60,
};

/** What a job needs besides its Work rounds: plan, verify, blend, finalize. */
export const JOB_TIMEOUT_MARGIN_HOURS = 6;

/** Hours an execution may run: the knob, or one worker attempt per round plus 6 h. */
export const jobTimeoutHours = (k: Knobs): number =>
  k.jobTimeoutHours ?? k.maxRounds * k.workerTimeoutHours + JOB_TIMEOUT_MARGIN_HOURS;

/** The context key of a knob: `tessera:<name>`. */
export const knobContextKey = (name: keyof Knobs): string => `tessera:${name}`;

export class KnobError extends Error {
  override readonly name = 'KnobError';
  constructor(
    readonly knob: keyof Knobs,
    readonly problem: string,
  ) {
    super(
      `deployment knob "${knob}" (context key ${knobContextKey(knob)}) ${problem}; ` +
        'fix it in cdk.json or on the command line (-c key=value)',
    );
  }
}

const INSTANCE_TYPE = /^([a-z][a-z0-9-]*)\.([a-z0-9]+)$/;
// S3 bucket naming rules, less the rarely used dotted names (which break TLS virtual hosting).
const BUCKET_NAME = /^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;

type Raw = (name: keyof Knobs) => unknown;

/**
 * Knobs from raw context values: strings (as `-c` gives them; lists comma-separated)
 * or JSON values (as cdk.json gives them). Unset knobs take their defaults.
 */
export function parseKnobs(raw: Raw): Knobs {
  const list = (name: keyof Knobs, fallback: readonly string[]): readonly string[] => {
    const v = raw(name);
    if (v === undefined || v === null) return fallback;
    if (typeof v === 'string') {
      return v
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s !== '');
    }
    if (Array.isArray(v) && v.every((s) => typeof s === 'string')) return v;
    throw new KnobError(name, `must be a list of strings, got ${JSON.stringify(v)}`);
  };
  const int = (name: keyof Knobs, fallback: number): number => {
    const v = raw(name);
    if (v === undefined || v === null) return fallback;
    const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n)) {
      throw new KnobError(name, `must be an integer, got ${JSON.stringify(v)}`);
    }
    return n;
  };
  const text = (name: keyof Knobs): string | undefined => {
    const v = raw(name);
    if (v === undefined || v === null || v === '') return undefined;
    if (typeof v !== 'string')
      throw new KnobError(name, `must be a string, got ${JSON.stringify(v)}`);
    return v;
  };
  const d = DEFAULT_KNOBS;
  const alarmEmail = text('alarmEmail');
  const vpcId = text('vpcId');
  const jobTimeout = raw('jobTimeoutHours');
  return checkKnobs({
    gpuInstanceTypes: list('gpuInstanceTypes', d.gpuInstanceTypes),
    maxGpuVcpus: int('maxGpuVcpus', d.maxGpuVcpus),
    maxOnDemandGpuVcpus: int('maxOnDemandGpuVcpus', d.maxOnDemandGpuVcpus),
    maxCpuVcpus: int('maxCpuVcpus', d.maxCpuVcpus),
    allowedBuckets: list('allowedBuckets', d.allowedBuckets),
    ...(alarmEmail !== undefined ? { alarmEmail } : {}),
    ...(vpcId !== undefined ? { vpcId } : {}),
    natGateways: int('natGateways', d.natGateways),
    partialsExpireDays: int('partialsExpireDays', d.partialsExpireDays),
    maxRounds: int('maxRounds', d.maxRounds),
    maxChunks: int('maxChunks', d.maxChunks),
    workerTimeoutHours: int('workerTimeoutHours', d.workerTimeoutHours),
    ...(jobTimeout !== undefined && jobTimeout !== null && jobTimeout !== ''
      ? { jobTimeoutHours: int('jobTimeoutHours', 0) }
      : {}),
    stallMinutes: int('stallMinutes', d.stallMinutes),
  });
}

/** Throws a KnobError naming the first knob out of range; returns the knobs unchanged. */
export function checkKnobs(k: Knobs): Knobs {
  if (k.gpuInstanceTypes.length === 0) {
    throw new KnobError('gpuInstanceTypes', 'must name at least one instance type');
  }
  for (const type of k.gpuInstanceTypes) {
    const family = INSTANCE_TYPE.exec(type)?.[1];
    // "optimal" and bare families would let Batch pick non-GPU or unsupported classes.
    if (family === undefined) {
      throw new KnobError(
        'gpuInstanceTypes',
        `has "${type}", which is not an instance type; write family.size such as "g5.xlarge"`,
      );
    }
    if (!(GPU_FAMILIES as readonly string[]).includes(family)) {
      throw new KnobError(
        'gpuInstanceTypes',
        `has "${type}"; the GPU environments accept the ${GPU_FAMILIES.join(', ')} families only`,
      );
    }
  }
  range('maxGpuVcpus', k.maxGpuVcpus, 4, 100_000);
  range('maxOnDemandGpuVcpus', k.maxOnDemandGpuVcpus, 4, 100_000);
  range('maxCpuVcpus', k.maxCpuVcpus, 1, 100_000);
  for (const bucket of k.allowedBuckets) {
    if (!BUCKET_NAME.test(bucket)) {
      throw new KnobError(
        'allowedBuckets',
        `has "${bucket}", which is not a bucket name (3-63 lower-case letters, digits, dashes)`,
      );
    }
  }
  if (k.alarmEmail !== undefined && !/^[^@\s]+@[^@\s]+\.[^@\s]+$/.test(k.alarmEmail)) {
    throw new KnobError('alarmEmail', `is "${k.alarmEmail}", which is not an e-mail address`);
  }
  if (k.vpcId !== undefined && !/^vpc-[0-9a-f]{8,17}$/.test(k.vpcId)) {
    throw new KnobError('vpcId', `is "${k.vpcId}"; expected an id such as vpc-0123456789abcdef0`);
  }
  range('natGateways', k.natGateways, 0, 3);
  range('partialsExpireDays', k.partialsExpireDays, 1, 3650);
  range('maxRounds', k.maxRounds, 1, 20);
  range('maxChunks', k.maxChunks, 1, 10_000_000);
  // Bounded so that a hung worker cannot bill GPU time for weeks.
  range('workerTimeoutHours', k.workerTimeoutHours, 1, 14 * 24);
  // Step Functions' own limit for a standard execution is one year.
  if (k.jobTimeoutHours !== undefined) range('jobTimeoutHours', k.jobTimeoutHours, 1, 365 * 24);
  // At least two watchdog periods (5 min), at most a week.
  range('stallMinutes', k.stallMinutes, 10, 7 * 24 * 60);
  return k;
}

function range(name: keyof Knobs, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new KnobError(name, `is ${value}; it must be an integer from ${min} to ${max}`);
  }
}
