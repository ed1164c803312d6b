// The deployed pipeline's state machine, executed: the definition `cdk synth` produces
// (synthesized here in-process, Lambda bundling skipped) runs in aws-local-stepfunctions
// against real emulators (s3rver, DynamoDB Local) — or, with AWS_ENDPOINT_URL set,
// LocalStack or a real account — with
//   - every Lambda task mapped to the REAL cloud step its handler calls (planFromManifest,
//     verifyStep, blendStep, finalizeStep, markFailedStep), with CloudDeps built by
//     cloudDeps() from the environment the stack gives that very function (its
//     Environment.Variables in the template, tokens resolved to the emulator's bucket and
//     table), failing the way lambda:invoke fails (Error = errorType, Cause = the error
//     payload as JSON);
//   - every `batch:submitJob.sync` task mapped to real `tessera worker` processes: the job
//     definition's command with the task's Parameters substituted (Ref::jobId), its
//     environment plus the emulators' endpoints, one process per array child (capped at
//     MAX_LOCAL_WORKERS); the task resolves when they exit with a Batch job description,
//     or fails with States.TaskFailed as the .sync integration does.
//
// Where the local run differs from AWS, on purpose:
//   - aws-local-stepfunctions has no ItemReader (Distributed Map reading S3): the Blend
//     Map is rewritten by localDefinition() into an inline Map over `$.verify.blendItems`,
//     and the Verify task's local handler supplies those items by reading the very file the
//     real Map reads (jobs/<jobId>/blend-items.json, rewritten by verifyStep with the seam
//     blocks no worker blended).
//   - aws-local-stepfunctions times a Task out after 60 s unless it sets TimeoutSeconds;
//     AWS waits (the job definition's attempt timeout bounds a worker). Tasks without a
//     timeout get LOCAL_TASK_TIMEOUT_S here so that a slow machine does not fail the run.
//   - Batch's retries on spot reclaim are not emulated (no host is ever lost here).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { StateMachine } from 'aws-local-stepfunctions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerS3 } from '../../adapters/aws/clients.ts';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { readCloudEnv } from '../../adapters/aws/env.ts';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { PIPELINE_ERROR, STATES } from '../../cdk/constructs/pipeline.ts';
import { type Knobs, knobContextKey, parseKnobs } from '../../cdk/knobs.ts';
import { REPO_ROOT } from '../../cdk/paths.ts';
import { TesseraStack } from '../../cdk/stack.ts';
import type {
  BlendItem,
  CompletePlanTaskEvent,
  FinalizeTaskResult,
  JobStatusDocument,
  MarkFailedEvent,
  PipelineInput,
  PlanRangeTaskEvent,
  PlanTaskEvent,
  PlanTaskResult,
  PyramidTaskEvent,
  VerifyTaskEvent,
} from '../../contracts/cloud.ts';
import { KEYS } from '../../contracts/cloud.ts';
import {
  blendStep,
  type CloudDeps,
  finalizeStep,
  markFailedStep,
  planFromManifest,
  planRangeTask,
  pyramidStep,
  readStatus,
  verifyStep,
} from '../../core/cloud/index.ts';
import { Box, Plan, type Vec3 } from '../../core/geometry/index.ts';
import { openOutputVolume } from '../../core/volume/index.ts';
import { LevelStore } from '../../core/volume/pyramid.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume, maxAbsDiff, referenceFor } from '../helpers/job-dir.ts';
import {
  EMULATOR_CREDENTIALS,
  type S3Emulator,
  startS3,
  uniqueBucketName,
} from '../helpers/s3-emulator.ts';
import {
  type AslDefinition,
  allStates,
  localDefinition,
  parseDefinition,
  polyfillWithResolvers,
} from '../helpers/state-machine-definition.ts';

// aws-local-stepfunctions calls Promise.withResolvers (Node 22+).
polyfillWithResolvers();

const BIN = new URL('../../bin/tessera.js', import.meta.url).pathname;
/** Array children run as local processes, at most this many at once per Work task. */
const MAX_LOCAL_WORKERS = 3;
const LOCAL_TASK_TIMEOUT_S = 600;
const SCENARIO_TIMEOUT_MS = 150_000;

// --- the synthesized stack ----------------------------------------------------------

interface CfnResource {
  Type: string;
  Properties: Record<string, unknown>;
}
type CfnValue = string | { Ref: string } | Record<string, unknown>;

interface Synthesized {
  definition: AslDefinition;
  resources: Record<string, CfnResource>;
  bucketId: string;
  tableId: string;
}

/** The stack as `npx cdk synth` builds it (cdk.json context, knobs as app.ts reads them). */
function synthesize(): Synthesized {
  const context = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context;
  const app = new App({ context: { ...context, 'aws:cdk:bundling-stacks': [] } });
  const knobs = parseKnobs((name: keyof Knobs) => app.node.tryGetContext(knobContextKey(name)));
  const stack = new TesseraStack(app, 'Tessera', { knobs });
  const assembly = app.synth();
  const template = assembly.getStackByName(stack.stackName).template as {
    Resources: Record<string, CfnResource>;
  };
  // A temporary cloud assembly (staged assets included) unless CDK_OUTDIR names one.
  if (!process.env.CDK_OUTDIR) rmSync(assembly.directory, { recursive: true, force: true });
  const machines = Object.values(template.Resources).filter(
    (r) => r.Type === 'AWS::StepFunctions::StateMachine',
  );
  expect(machines.length).toBe(1);
  const idOf = (c: { node: { defaultChild?: unknown } }) =>
    stack.getLogicalId(c.node.defaultChild as Parameters<typeof stack.getLogicalId>[0]);
  return {
    definition: parseDefinition(machines[0]!.Properties.DefinitionString),
    resources: template.Resources,
    bucketId: idOf(stack.storage.bucket),
    tableId: idOf(stack.storage.table),
  };
}

/** The logical id behind a definition placeholder: <Ref:Id> or <GetAtt:Id.Arn>. */
function logicalIdOf(placeholder: unknown): string {
  const m = /^<(?:Ref|GetAtt):([A-Za-z0-9]+)[.>]/.exec(String(placeholder));
  if (!m) throw new Error(`not a resource placeholder: ${JSON.stringify(placeholder)}`);
  return m[1]!;
}

/** The definition as it runs locally (see the header for why each change). */
function runnableDefinition(def: AslDefinition): AslDefinition {
  const local = localDefinition(def);
  for (const state of allStates(local).values()) {
    if (state.Type === 'Task' && state.TimeoutSeconds === undefined && !state.TimeoutSecondsPath)
      state.TimeoutSeconds = LOCAL_TASK_TIMEOUT_S;
  }
  return local;
}

// --- environment --------------------------------------------------------------------

let s3: S3Emulator;
let ddb: DynamoUnderTest;
let synth: Synthesized;
let bucket: string;
let table: string;
const children = new Set<ChildProcess>();

/** A deployed value (env var) with the stack's bucket and table refs resolved; undefined for others. */
function resolveValue(v: CfnValue): string | undefined {
  if (typeof v === 'string') return v;
  if ('Ref' in v && v.Ref === synth.bucketId) return bucket;
  if ('Ref' in v && v.Ref === synth.tableId) return table;
  return undefined;
}

function resolveEnv(vars: Record<string, CfnValue>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(vars)) {
    const value = resolveValue(v);
    if (value !== undefined) out[k] = value;
    // Only the planner's state machine ARN stays unresolved: the Plan task starts nothing.
    else expect(k).toBe('TESSERA_STATE_MACHINE_ARN');
  }
  return out;
}

/** What a worker process needs to reach the emulators (or the configured endpoints). */
function endpointEnv(): Record<string, string> {
  return {
    ...(ddb.emulated ? { AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint } : {}),
    ...(s3.emulated
      ? {
          AWS_ENDPOINT_URL_S3: s3.endpoint,
          // DynamoDB Local accepts any alphanumeric key, s3rver only its own.
          AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
          AWS_REGION: 'us-east-1',
        }
      : ddb.emulated
        ? ddb.childEnv
        : {}),
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}

// --- local task handlers ------------------------------------------------------------

interface Call {
  state: string;
  input: unknown;
  output?: unknown;
  error?: string;
  ms?: number;
}
type Handler = (input: unknown) => Promise<unknown>;

/** The cloud step each Lambda task's handler (functions/*.ts) calls. */
const STEPS: Record<string, (deps: CloudDeps, event: never) => Promise<unknown>> = {
  [STATES.plan]: async (deps, e: PlanTaskEvent) => {
    // As functions/planner.ts: a rejected manifest fails the task (MarkFailed records why).
    const outcome = await planFromManifest(deps, e.manifest);
    if (outcome.kind === 'rejected') throw outcome.error;
    return outcome.result;
  },
  [STATES.verify]: async (deps, e: VerifyTaskEvent) => {
    const result = await verifyStep(deps, e);
    if (result.status !== 'COMPLETE') return result;
    // For the ItemReader rewrite: the items the real Distributed Map reads from S3.
    const key = `/${KEYS.blendItems(e.jobId)}` as const;
    const bytes = await deps.bucketStore.get(key);
    if (!bytes) throw new Error(`${key} was not written`);
    const blendItems = JSON.parse(new TextDecoder().decode(bytes)) as BlendItem[];
    return { ...result, blendItems };
  },
  [STATES.blendRange]: (deps, e: BlendItem) => blendStep(deps, e),
  [STATES.finalize]: (deps, e: { jobId: string }) => finalizeStep(deps, e),
  [STATES.markFailed]: (deps, e: MarkFailedEvent) => markFailedStep(deps, e),
  // functions/plan-range.ts: both tasks of a plan written in ranges.
  [STATES.planRange]: (deps, e: PlanRangeTaskEvent) => planRangeTask(deps, e),
  [STATES.completePlan]: (deps, e: CompletePlanTaskEvent) => planRangeTask(deps, e),
  // functions/pyramid.ts: a level's task list, and one PyramidTasks item.
  [STATES.pyramidLevel]: (deps, e: PyramidTaskEvent) => pyramidStep(deps, e),
  [STATES.pyramidRange]: (deps, e: PyramidTaskEvent) => pyramidStep(deps, e),
};

/** lambda:invoke's failure for an unhandled error: Error = errorType, Cause = the payload. */
function lambdaError(e: unknown): Error {
  const err = e instanceof Error ? e : new Error(String(e));
  const payload = { errorType: err.name, errorMessage: err.message, trace: [] };
  return Object.assign(new Error(JSON.stringify(payload)), { name: err.name });
}

/** What one execution changes in every task's deps (the Plan task alone reads planRangeRows). */
type DepsOverrides = Pick<CloudDeps, 'planRangeRows'>;

/** CloudDeps as a Lambda of the stack builds them from its environment, over the emulators. */
function depsForFunction(functionId: string, overrides: DepsOverrides = {}): CloudDeps {
  const fn = synth.resources[functionId];
  expect(fn?.Type).toBe('AWS::Lambda::Function');
  const vars = (fn!.Properties.Environment as { Variables: Record<string, CfnValue> }).Variables;
  const env = readCloudEnv(resolveEnv(vars));
  return {
    ...cloudDeps(env, { s3: s3.client, ledger: new DynamoLedger({ client: ddb.client, table }) }),
    // The one change from the handlers' deps: small blend items, so that the Map has
    // several items on this small volume.
    blocksPerBlendItem: 16,
    ...overrides,
  };
}

interface SubmitJob {
  JobDefinition: string;
  JobName: string;
  JobQueue: string;
  Parameters?: Record<string, string>;
  ArrayProperties?: { Size: number };
}

/** What batch:submitJob.sync returns: the job's DescribeJobs entry. */
interface BatchJobDescription {
  JobArn: string;
  JobId: string;
  JobName: string;
  JobQueue: string;
  JobDefinition: string;
  Status: 'SUCCEEDED' | 'FAILED';
  StatusReason?: string;
  Parameters: Record<string, string>;
  ArrayProperties?: { Size: number; StatusSummary: Record<string, number> };
  Container?: { Command: string[]; ExitCode: number };
  CreatedAt: number;
  StartedAt: number;
  StoppedAt: number;
  Attempts: unknown[];
}

interface ContainerProperties {
  Command: string[];
  Environment?: { Name: string; Value: CfnValue }[];
}

function runWorkerProcess(command: string[], env: NodeJS.ProcessEnv): Promise<number | null> {
  const child = spawn(process.execPath, [BIN, ...command], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  children.add(child);
  let stderr = '';
  child.stderr?.on('data', (b: Buffer) => {
    stderr = (stderr + b.toString()).slice(-4000);
  });
  return new Promise((resolve) =>
    child.on('exit', (code) => {
      children.delete(child);
      if (code !== 0) process.stderr.write(`worker exited ${code}: ${stderr}\n`);
      resolve(code);
    }),
  );
}

/** A Work task: the job definition's container, once per array child, as local processes. */
async function submitJobSync(p: SubmitJob): Promise<BatchJobDescription> {
  const jobDefinition = synth.resources[logicalIdOf(p.JobDefinition)];
  expect(jobDefinition?.Type).toBe('AWS::Batch::JobDefinition');
  const defProps = jobDefinition!.Properties as {
    ContainerProperties: ContainerProperties;
    Parameters?: Record<string, string>;
  };
  const container = defProps.ContainerProperties;
  const parameters = { ...defProps.Parameters, ...p.Parameters };
  const command = container.Command.map((a) =>
    a.startsWith('Ref::') ? (parameters[a.slice(5)] ?? a) : a,
  );
  const containerEnv = Object.fromEntries(
    (container.Environment ?? []).map(({ Name, Value }) => [Name, resolveValue(Value) ?? '']),
  );
  const size = p.ArrayProperties?.Size;
  const jobId = randomUUID();
  const createdAt = Date.now();
  const codes = await Promise.all(
    Array.from({ length: Math.min(size ?? 1, MAX_LOCAL_WORKERS) }, (_, i) =>
      runWorkerProcess(command, {
        ...process.env,
        ...containerEnv,
        ...endpointEnv(),
        AWS_BATCH_JOB_ID: size === undefined ? jobId : `${jobId}:${i}`,
        ...(size === undefined ? {} : { AWS_BATCH_JOB_ARRAY_INDEX: String(i) }),
      }),
    ),
  );
  const failed = codes.filter((c) => c !== 0).length;
  const description: BatchJobDescription = {
    JobArn: `arn:aws:batch:us-east-1:000000000000:job/${jobId}`,
    JobId: jobId,
    JobName: p.JobName,
    JobQueue: p.JobQueue,
    JobDefinition: p.JobDefinition,
    Status: failed > 0 ? 'FAILED' : 'SUCCEEDED',
    ...(failed > 0
      ? {
          StatusReason:
            size === undefined ? 'Essential container in task exited' : 'Array Child Job failed',
        }
      : {}),
    Parameters: parameters,
    ...(size === undefined
      ? { Container: { Command: command, ExitCode: codes[0] ?? -1 } }
      : {
          ArrayProperties: {
            Size: size,
            StatusSummary: { SUCCEEDED: codes.length - failed, FAILED: failed },
          },
        }),
    CreatedAt: createdAt,
    StartedAt: createdAt,
    StoppedAt: Date.now(),
    Attempts: [],
  };
  if (failed > 0) {
    // The .sync integration fails the task with the job description as its Cause.
    throw Object.assign(new Error(JSON.stringify(description)), { name: 'States.TaskFailed' });
  }
  return description;
}

/** taskResourceLocalHandlers for every Task state, recording each call. */
function localHandlers(
  def: AslDefinition,
  calls: Call[],
  overrides: DepsOverrides = {},
): Record<string, Handler> {
  const handlers: Record<string, Handler> = {};
  const record =
    (state: string, fn: Handler): Handler =>
    async (input) => {
      const call: Call = { state, input };
      calls.push(call);
      const t0 = Date.now();
      try {
        call.output = await fn(input);
        return call.output;
      } catch (e) {
        call.error = e instanceof Error ? e.message : String(e);
        throw e;
      } finally {
        call.ms = Date.now() - t0;
      }
    };
  for (const [name, state] of allStates(def)) {
    if (state.Type !== 'Task') continue;
    if (String(state.Resource).endsWith(':states:::batch:submitJob.sync')) {
      handlers[name] = record(name, (i) => submitJobSync(i as SubmitJob));
      continue;
    }
    const step = STEPS[name];
    if (!step) throw new Error(`no local step for Lambda task state ${name}: add it to STEPS`);
    const deps = depsForFunction(logicalIdOf(state.Resource), overrides);
    handlers[name] = record(name, async (input) => {
      try {
        // A Lambda's result crosses the wire as JSON.
        return JSON.parse(JSON.stringify(await step(deps, input as never)));
      } catch (e) {
        throw lambdaError(e);
      }
    });
  }
  return handlers;
}

interface Execution {
  output: unknown;
  error: (Error & { cause?: Error }) | undefined;
  calls: Call[];
  seconds: number;
}

async function execute(input: PipelineInput, overrides: DepsOverrides = {}): Promise<Execution> {
  const calls: Call[] = [];
  const definition = runnableDefinition(synth.definition);
  const machine = new StateMachine(definition as never, {
    validationOptions: { checkArn: false },
  });
  const t0 = Date.now();
  const run = machine.run(input as never, {
    overrides: {
      taskResourceLocalHandlers: localHandlers(definition, calls, overrides) as never,
    },
  });
  try {
    const output = await run.result;
    return { output, error: undefined, calls, seconds: (Date.now() - t0) / 1000 };
  } catch (error) {
    return {
      output: undefined,
      error: error as Execution['error'],
      calls,
      seconds: (Date.now() - t0) / 1000,
    };
  }
}

// --- data ---------------------------------------------------------------------------

const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

async function uploadManifest(key: string, manifest: Record<string, unknown>): Promise<void> {
  await new S3Store({ client: s3.client, bucket }).set(`/${key}`, enc(manifest));
}

async function statusDocs(): Promise<JobStatusDocument[]> {
  const store = new S3Store({ client: s3.client, bucket, prefix: 'jobs' });
  const docs: JobStatusDocument[] = [];
  for await (const key of store.list('/')) {
    if (!key.endsWith('/status.json')) continue;
    const bytes = await store.get(key);
    if (bytes) docs.push(JSON.parse(new TextDecoder().decode(bytes)) as JobStatusDocument);
  }
  return docs;
}

function logTimings(label: string, run: Execution): void {
  const steps = run.calls.map((c) => `${c.state} ${((c.ms ?? 0) / 1000).toFixed(1)}`).join(', ');
  process.stderr.write(`${label}: ${run.seconds.toFixed(1)} s (${steps})\n`);
}

function stateNames(calls: Call[]): string[] {
  return calls.map((c) => c.state);
}

function planOf(calls: Call[]): PlanTaskResult {
  const plan = calls.find((c) => c.state === STATES.plan && c.output !== undefined);
  if (!plan) throw new Error(`no Plan result among ${stateNames(calls).join(', ')}`);
  return plan.output as PlanTaskResult;
}

beforeAll(async () => {
  // The emulators come up (child processes) while this process synthesizes.
  const emulators = Promise.all([startS3(), startDynamo()]);
  const t0 = Date.now();
  synth = synthesize();
  process.stderr.write(`state machine synthesized in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  [s3, ddb] = await emulators;
  bucket = uniqueBucketName('sfn');
  await s3.createBucket(bucket);
  table = await ddb.createTable();
  registerS3(s3.client);
  const store = new S3Store({ client: s3.client, bucket });
  for (const model of ['realistic.onnx', 'tiny.onnx'])
    await store.set(`/models/${model}`, new Uint8Array(readFileSync(join(FIXTURE_MODELS, model))));
}, 180_000);

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
});

describe('the synthesized state machine, run locally with the real steps and workers', () => {
  it(
    'a small volume with seams and a pyramid: Plan → Batch array of workers → Verify → Pyramid level and range tasks → Finalize → SUCCEEDED, output equals the reference',
    async () => {
      const shape: Vec3 = [16, 36, 30];
      const patch: Vec3 = [8, 12, 12];
      const overlap: Vec3 = [2, 4, 4];
      const data = lcgVolume(shape, 5);
      await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/cells.zarr' }), {
        data,
        shape: [...shape],
        chunkShape: [8, 16, 16],
      });
      const output = `s3://${bucket}/outputs/cells.zarr`;
      await uploadManifest('manifests/cells.json', {
        version: 1,
        name: 'cells',
        input: { url: `s3://${bucket}/data/cells.zarr` },
        // An odd block shape: blocks straddle chunk footprints, so there are seam blocks.
        // One pyramid level: [8, 18, 15], a 2×2×2 grid of blocks, one range task.
        output: { url: output, dtype: 'float32', blockShape: [6, 10, 9], pyramid: 1 },
        model: {
          url: `s3://${bucket}/models/realistic.onnx`,
          patchShape: patch,
          outputChannels: 2,
        },
        overlap,
        blend: 'gaussian',
        // 2×2×2 chunks of 2×2×2 patches.
        chunkShape: [14, 20, 20],
        compute: { device: 'cpu', maxWorkers: 3, spot: true },
      });

      const run = await execute({ manifest: { bucket, key: 'manifests/cells.json' } });
      logTimings('succeeding execution', run);
      expect(run.error).toBeUndefined();
      const plan = planOf(run.calls);
      expect(plan.arraySize).toBe(3);
      expect(plan.seamBlocks).toBeGreaterThan(0);
      expect(plan.blendItemCount).toBeGreaterThan(1);
      // CPU device, arraySize > 1: the CPU array job, one round. The workers blended every
      // seam block as its last contributor: Verify finds none left, the Blend Map is skipped.
      expect(stateNames(run.calls)).toEqual([
        STATES.plan,
        STATES.workCpuArray,
        STATES.verify,
        STATES.pyramidLevel,
        STATES.pyramidRange,
        STATES.pyramidLevel,
        STATES.finalize,
      ]);
      expect(run.calls.find((c) => c.state === STATES.pyramidRange)!.input).toEqual({
        step: 'range',
        jobId: plan.jobId,
        level: 1,
        from: 0,
        blocks: 256,
      });
      const verified = run.calls.find((c) => c.state === STATES.verify)!.output as {
        blendItemCount: number;
        blendItems: BlendItem[];
      };
      expect(verified).toMatchObject({ status: 'COMPLETE', blendItemCount: 0, blendItems: [] });
      const work = run.calls[1]!;
      expect(work.input).toMatchObject({
        JobName: `tessera-${plan.jobId}`,
        Parameters: { jobId: plan.jobId },
        ArrayProperties: { Size: 3 },
      });
      expect(work.output).toMatchObject({ Status: 'SUCCEEDED', ArrayProperties: { Size: 3 } });
      // The Succeed state's output is the Finalize result.
      expect(run.output).toMatchObject({
        jobId: plan.jobId,
        status: 'SUCCEEDED',
        output,
      } satisfies Partial<FinalizeTaskResult>);

      const deps = depsForFunction(logicalIdOf(synth.definition.States[STATES.finalize]!.Resource));
      const status = await readStatus(deps, plan.jobId);
      expect(status?.status).toBe('SUCCEEDED');
      expect(status?.output).toBe(output);
      expect((await deps.ledger.counts(plan.jobId)).DONE).toBe(plan.chunks);

      const out = new S3Store({ client: s3.client, bucket, prefix: 'outputs/cells.zarr' });
      const got = await (await openOutputVolume(out)).readBox(Box.ofShape(shape));
      const expected = await referenceFor({
        data,
        shape,
        model: join(FIXTURE_MODELS, 'realistic.onnx'),
        patchShape: patch,
        overlap,
        blend: 'gaussian',
        outputChannels: 2,
      });
      expect(maxAbsDiff(Float32Array.from(got.data), expected)).toBeLessThanOrEqual(1e-5);
      const report = JSON.parse(new TextDecoder().decode(await out.get('/report.json')));
      expect(report.chunks.DONE).toBe(plan.chunks);
      // Level 1, built by the range task: the 2×2×2 mean of level 0 (16, 36 and 30 are even).
      const l1 = await openOutputVolume(new LevelStore(out, 1));
      expect(l1.shape).toEqual([8, 18, 15]);
      const means = (await l1.readBox(Box.ofShape(l1.shape))).data;
      let worst = 0;
      let i = 0;
      for (let c = 0; c < 2; c++)
        for (let z = 0; z < 8; z++)
          for (let y = 0; y < 18; y++)
            for (let x = 0; x < 15; x++) {
              let sum = 0;
              for (let d = 0; d < 8; d++)
                sum +=
                  got.data[
                    ((c * 16 + 2 * z + (d >> 2)) * 36 + 2 * y + ((d >> 1) & 1)) * 30 +
                      2 * x +
                      (d & 1)
                  ]!;
              worst = Math.max(worst, Math.abs(means[i++]! - sum / 8));
            }
      expect(worst).toBeLessThanOrEqual(1e-6);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'a plan past planRangeRows chunks: Plan writes no row, the PlanRanges Map writes them in ranges, CompletePlan, then the rounds → SUCCEEDED, output equals the reference',
    async () => {
      const shape: Vec3 = [16, 36, 30];
      const patch: Vec3 = [8, 12, 12];
      const overlap: Vec3 = [2, 4, 4];
      const chunkShape: Vec3 = [14, 20, 20];
      const data = lcgVolume(shape, 8);
      await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/ranged.zarr' }), {
        data,
        shape: [...shape],
        chunkShape: [8, 16, 16],
      });
      const output = `s3://${bucket}/outputs/ranged.zarr`;
      await uploadManifest('manifests/ranged.json', {
        version: 1,
        name: 'ranged',
        input: { url: `s3://${bucket}/data/ranged.zarr` },
        output: { url: output, dtype: 'float32', blockShape: [6, 10, 9] },
        model: {
          url: `s3://${bucket}/models/realistic.onnx`,
          patchShape: patch,
          outputChannels: 2,
        },
        overlap,
        blend: 'gaussian',
        chunkShape,
        compute: { device: 'cpu', maxWorkers: 3, spot: true },
      });
      // 2×2×2 chunks in ranges of 3 rows: PlanRange items 0, 3, 6.
      const grid = new Plan({ volumeShape: shape, patchShape: patch, overlap, chunkShape });
      expect(grid.counts.chunks).toBe(8);
      const run = await execute(
        { manifest: { bucket, key: 'manifests/ranged.json' } },
        { planRangeRows: 3 },
      );
      logTimings('execution planned in ranges', run);
      expect(run.error).toBeUndefined();
      const plan = planOf(run.calls);
      expect(plan).toMatchObject({ chunks: 8, rangeRows: 3 });
      const names = stateNames(run.calls);
      expect(names.slice(0, 5)).toEqual([
        STATES.plan,
        STATES.planRange,
        STATES.planRange,
        STATES.planRange,
        STATES.completePlan,
      ]);
      expect(names[5]).toBe(STATES.workCpuArray);
      const froms = run.calls
        .filter((c) => c.state === STATES.planRange)
        .map((c) => (c.input as PlanRangeTaskEvent).from)
        .sort((a, b) => a - b);
      expect(froms).toEqual([0, 3, 6]);
      // The Plan task wrote no row: each range wrote its own (3 + 3 + 2).
      const written = run.calls
        .filter((c) => c.state === STATES.planRange)
        .map((c) => (c.output as { written: number }).written)
        .sort();
      expect(written).toEqual([2, 3, 3]);
      expect(run.calls.find((c) => c.state === STATES.completePlan)?.output).toEqual({
        jobId: plan.jobId,
        created: true,
      });
      expect(run.output).toMatchObject({ jobId: plan.jobId, status: 'SUCCEEDED', output });

      const deps = depsForFunction(logicalIdOf(synth.definition.States[STATES.finalize]!.Resource));
      expect((await deps.ledger.counts(plan.jobId)).DONE).toBe(8);
      const out = new S3Store({ client: s3.client, bucket, prefix: 'outputs/ranged.zarr' });
      const got = await (await openOutputVolume(out)).readBox(Box.ofShape(shape));
      const expected = await referenceFor({
        data,
        shape,
        model: join(FIXTURE_MODELS, 'realistic.onnx'),
        patchShape: patch,
        overlap,
        blend: 'gaussian',
        outputChannels: 2,
      });
      expect(maxAbsDiff(Float32Array.from(got.data), expected)).toBeLessThanOrEqual(1e-5);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'a poison chunk (NaN input): workers give up after maxAttempts, Verify fails the job, status FAILED names the chunks',
    async () => {
      const shape: Vec3 = [16, 30, 30];
      const patch: Vec3 = [6, 10, 10];
      const overlap: Vec3 = [2, 2, 2];
      const chunkShape: Vec3 = [12, 26, 26];
      const data = Float32Array.from(lcgVolume(shape, 3), (v) => v / 255);
      const bad: Vec3 = [9, 20, 5];
      data[(bad[0] * shape[1] + bad[1]) * shape[2] + bad[2]] = Number.NaN;
      await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/poison.zarr' }), {
        data,
        shape: [...shape],
        chunkShape: [7, 9, 11],
      });
      await uploadManifest('manifests/poison.json', {
        version: 1,
        name: 'poison',
        input: { url: `s3://${bucket}/data/poison.zarr` },
        output: { url: `s3://${bucket}/outputs/poison.zarr`, dtype: 'float32' },
        model: { url: `s3://${bucket}/models/tiny.onnx`, patchShape: patch, outputChannels: 2 },
        overlap,
        blend: 'bump',
        chunkShape,
        // The GPU queue's path; without CUDA the workers fall back to CPU.
        compute: { device: 'gpu', maxWorkers: 3, spot: true },
        maxAttempts: 2,
      });

      const run = await execute({ manifest: { bucket, key: 'manifests/poison.json' } });
      logTimings('poisoned execution', run);
      expect(run.error?.cause?.name).toBe(PIPELINE_ERROR);
      const plan = planOf(run.calls);
      const grid = new Plan({ volumeShape: shape, patchShape: patch, overlap, chunkShape });
      const poisoned = [...grid.chunks()]
        .filter((c) => [...grid.patches(c)].some((p) => p.containsPoint(bad)))
        .map((c) => c.id);
      expect(plan.chunks).toBe(grid.counts.chunks);
      expect(poisoned.length).toBeGreaterThan(0);
      for (const id of poisoned) expect(run.error?.message).toContain(`chunk ${id}:`);
      expect(stateNames(run.calls)).toEqual([
        STATES.plan,
        STATES.workGpuArray,
        STATES.verify,
        STATES.markFailed,
      ]);

      const deps = depsForFunction(
        logicalIdOf(synth.definition.States[STATES.markFailed]!.Resource),
      );
      const status = await readStatus(deps, plan.jobId);
      expect(status?.status).toBe('FAILED');
      expect(status?.reason).toContain(`${poisoned.length} chunk(s) failed every attempt`);
      for (const id of poisoned)
        expect(status?.reason).toMatch(new RegExp(`chunk ${id}: [^\\n]*\\b2 attempt`));
      expect(status?.reason).toMatch(/input holds 1 NaN voxel/);
      const counts = await deps.ledger.counts(plan.jobId);
      expect(counts.FAILED).toBe(poisoned.length);
      expect(counts.DONE).toBe(plan.chunks - poisoned.length);
    },
    SCENARIO_TIMEOUT_MS,
  );

  it(
    'an invalid manifest as execution input: Plan fails, MarkFailed records the manifest errors, the execution FAILS',
    async () => {
      const key = 'manifests/bad.json';
      await uploadManifest(key, {
        version: 1,
        name: 'bad-one',
        // Not the stack bucket nor an allowed one.
        input: { url: 's3://some-other-bucket/in.zarr' },
        output: { url: `s3://${bucket}/outputs/bad.zarr`, dtype: 'float32' },
        model: {
          url: `s3://${bucket}/models/tiny.onnx`,
          patchShape: [6, 10, 10],
          outputChannels: 2,
        },
        // Overlap ≥ patch on z.
        overlap: [8, 2, 2],
        blend: 'bump',
        chunkShape: [8, 16, 16],
      });
      const run = await execute({ manifest: { bucket, key } });
      expect(run.error?.cause?.name).toBe(PIPELINE_ERROR);
      expect(stateNames(run.calls)).toEqual([STATES.plan, STATES.markFailed]);
      // The Plan task failed as a Lambda does: the ManifestError's type, every issue in it.
      expect(run.calls[1]!.input).toMatchObject({
        manifest: { bucket, key },
        error: { Error: 'ManifestError' },
      });
      for (const path of ['overlap[0]', 'input.url']) expect(run.error?.message).toContain(path);

      const docs = (await statusDocs()).filter((d) => d.manifest.key === key);
      // The manifest's own status document lists every error, field by field...
      const rejected = docs.find((d) => d.status === 'REJECTED');
      expect(rejected?.errors?.map((e) => e.path)).toEqual(
        expect.arrayContaining(['overlap[0]', 'input.url']),
      );
      // ...and MarkFailed found it by the manifest's name (not a shared "unknown" document)
      // and left it REJECTED with its errors rather than overwriting it.
      expect(rejected?.jobId).toBe('bad-one');
      expect(docs.filter((d) => d.status === 'FAILED')).toEqual([]);
      expect(docs.some((d) => d.jobId === 'unknown')).toBe(false);
      // Nothing was planned: no job rows.
      expect(docs.some((d) => d.status === 'PLANNED' || d.status === 'SUBMITTED')).toBe(false);
    },
    SCENARIO_TIMEOUT_MS,
  );
});
