// The deployment twin: one whole job through exactly what `cdk deploy` ships, on loopback.
//
//   npx cdk synth -o <tmp> ──► template, asset manifest, state machine definition
//   upload manifests/<name>.json to S3 (s3rver) ──► the S3 event the bucket's notification
//     configuration emits ──► the planner's bundle (asset.*/index.mjs) in a fresh Node 22
//     process ──► states:StartExecution on a local Step Functions endpoint ──► the deployed
//     definition in aws-local-stepfunctions:
//       Lambda tasks     → each function's bundle, fresh Node 22 process, the payload the
//                          ASL's Parameters build, its template environment only
//       submitJob.sync   → the job definition's ENTRYPOINT + Command in the worker image's
//                          file tree (its Dockerfile's COPY lines, npm ci --omit=dev), as
//                          the image's non-root user, retried by its RetryStrategy
//       Verify's Batch API calls → a local Batch endpoint answering from those children
//   every component's AWS calls go through its own recording proxy; afterwards each call
//   is judged against that component's synthesized role (and the bucket policy) by a
//   real IAM policy evaluator, and the service-side calls of each integration likewise.
//
// Rewrites of the definition (printed by the test, reasons in local-definition.ts):
// ItemReader → a reader Task + ItemsPath; ResultWriter removed; DISTRIBUTED → INLINE;
// Task timeouts where none is set. What the twin cannot run: Batch scheduling and
// capacity (Spot, quotas, RUNNABLE), memory/vCPU limits, the CUDA provider, CloudWatch
// and EventBridge themselves (their calls are checked as IAM only).
//
// Against LocalStack or an account: set AWS_ENDPOINT_URL (as the integration tests); the
// proxies then forward S3 and DynamoDB there, Step Functions and Batch stay local.

import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { S3Store } from '../../adapters/aws/s3-store.ts';
import { ENV, type JobStatusDocument } from '../../contracts/cloud.ts';
import { BLOCKS_PER_BLEND_ITEM } from '../../contracts/stack-sizing.ts';
import { Box, Plan, type Vec3 } from '../../core/geometry/index.ts';
import { openOutputVolume } from '../../core/volume/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';
import { FIXTURE_MODELS, lcgVolume, maxAbsDiff, referenceFor } from '../helpers/job-dir.ts';
import {
  EMULATOR_CREDENTIALS,
  type S3Emulator,
  startS3,
  uniqueBucketName,
} from '../helpers/s3-emulator.ts';
import { allStates, polyfillWithResolvers } from '../helpers/state-machine-definition.ts';
import { type Assembly, deployedDefinition, imageAsset, REPO, synthesize } from './assembly.ts';
import { BatchService, type RunningChild, type SubmitJobParameters } from './batch.ts';
import { type CfnContext, physicalNames, resolveCfn } from './cfn.ts';
import { evaluateCalls, formatDenials, serviceSideChecks } from './iam/evaluate.ts';
import { keySchemasFromTemplate } from './iam/policies.ts';
import { type Recorder, startRecorder } from './iam/recorder.ts';
import { buildImageTree, type ImageTree } from './image-tree.ts';
import {
  componentOf,
  type Invocation,
  invokeFunction,
  type LambdaTarget,
  NODE22,
} from './lambda.ts';
import { REWRITES, runnableDefinition } from './local-definition.ts';
import { lambdaSubscriptions, matches, objectCreatedEvent } from './s3-notification.ts';
import {
  type Execution,
  type SfnService,
  startSfnService,
  type TaskHandlers,
} from './sfn-service.ts';

// aws-local-stepfunctions calls Promise.withResolvers (Node 22+); vitest may run on Node 20.
polyfillWithResolvers();

const ACCOUNT = '123456789012';
const REGION = 'us-east-1';
const MAX_CHILDREN = 3;
const SCENARIO_TIMEOUT_MS = 240_000;
/** The exit code the interrupted worker must use (contracts/cloud.ts WORKER_EXIT.interrupted). */
const INTERRUPTED = 75;

let assembly: Assembly;
let s3: S3Emulator;
let ddb: DynamoUnderTest;
let bucket: string;
let table: string;
let ctx: CfnContext;
let sfn: SfnService;
let batch: BatchService;
let recorder: Recorder | undefined;
let recorderError: Error | undefined;
let stateMachineArn: string;
let credentials: { accessKeyId: string; secretAccessKey: string };
const invocations: Invocation[] = [];
const taskCalls: {
  execution: string;
  state: string;
  input: unknown;
  output?: unknown;
  error?: string;
}[] = [];
const timings: Record<string, number> = {};
let imageTree: Promise<ImageTree> | undefined;

const res = () => assembly.template.Resources;
const idsOfType = (type: string) =>
  Object.entries(res())
    .filter(([, r]) => r.Type === type)
    .map(([id]) => id);
const resolved = (v: unknown) => resolveCfn(v, ctx);
/** The logical id whose Ref or Arn is `arn`. */
function idOfArn(arn: string, type: string): string {
  for (const id of idsOfType(type)) {
    const phys = ctx.physical[id]!;
    if (phys.ref === arn || phys.attrs.Arn === arn) return id;
  }
  throw new Error(`no ${type} of the template has the ARN ${arn}`);
}
/** A job definition's ContainerProperties. */
function containerOf(id: string): {
  Image: unknown;
  JobRoleArn: unknown;
  ResourceRequirements?: { Type: string }[];
} {
  const c = res()[id]?.Properties?.ContainerProperties;
  if (!c) throw new Error(`${id} is not a container job definition`);
  return c as ReturnType<typeof containerOf>;
}
/** The role logical id behind a `{Fn::GetAtt: [Role, Arn]}` property. */
function roleIdOf(v: unknown): string {
  const getAtt = (v as { 'Fn::GetAtt'?: [string, string] })?.['Fn::GetAtt'];
  if (!getAtt || res()[getAtt[0]]?.Type !== 'AWS::IAM::Role')
    throw new Error(`not a role of the stack: ${JSON.stringify(v)}`);
  return getAtt[0];
}

const COMPONENTS = ['worker-cpu', 'worker-gpu', 'hybrid', 'states', 'uploader'];

/** Component name → the role logical id it runs as, read from the template. */
function principals(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const id of idsOfType('AWS::Lambda::Function')) {
    if (!id.startsWith('Functions')) continue;
    out[componentOf(id)] = roleIdOf(res()[id]!.Properties?.Role);
  }
  for (const id of idsOfType('AWS::Batch::JobDefinition')) {
    const c = containerOf(id);
    const gpu = (c.ResourceRequirements ?? []).some((r) => r.Type === 'GPU');
    out[gpu ? 'worker-gpu' : 'worker-cpu'] = roleIdOf(c.JobRoleArn);
  }
  out.states = roleIdOf(res()[assembly.stateMachineId]!.Properties?.RoleArn);
  const hybrid = hybridRoleId();
  if (hybrid) out.hybrid = hybrid;
  return out;
}

/** The role the stack exports for hybrid workers (output HybridWorkerRoleArn), if any. */
function hybridRoleId(): string | undefined {
  const v = assembly.template.Outputs?.HybridWorkerRoleArn?.Value;
  return v === undefined ? undefined : roleIdOf(v);
}

/** Environment that points a component's SDK clients at its recording proxy. */
function endpointEnv(component: string): Record<string, string> {
  if (recorder) return { AWS_ENDPOINT_URL: recorder.endpointFor(component) };
  return {
    AWS_ENDPOINT_URL_S3: s3.endpoint,
    AWS_ENDPOINT_URL_DYNAMODB: ddb.endpoint,
    AWS_ENDPOINT_URL_SFN: sfn.endpoint,
    AWS_ENDPOINT_URL_BATCH: batch.endpoint,
  };
}

function lambdaTarget(): LambdaTarget {
  return { assembly, ctx, endpointFor: endpointEnv, credentials, invocations };
}

/** taskResourceLocalHandlers for one execution: every Task state of the runnable definition. */
function handlersFor(readers: ReturnType<typeof runnableDefinition>['readers']) {
  return (execution: string): TaskHandlers => {
    const handlers: TaskHandlers = {};
    const record =
      (state: string, fn: (input: unknown) => Promise<unknown>) => async (input: unknown) => {
        const call: (typeof taskCalls)[number] = { execution, state, input };
        taskCalls.push(call);
        try {
          call.output = await fn(input);
          return call.output;
        } catch (e) {
          call.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
          throw e;
        }
      };
    for (const [name, state] of allStates(runnable.definition)) {
      if (state.Type !== 'Task') continue;
      const resource = String(state.Resource);
      if (readers[name]) {
        handlers[name] = record(name, (input) =>
          readItems(input as { Bucket: string; Key: string }),
        );
      } else if (resource.endsWith(':states:::batch:submitJob.sync')) {
        handlers[name] = record(name, (input) => batch.submitJobSync(input as SubmitJobParameters));
      } else if (resource.endsWith(':states:::lambda:invoke')) {
        handlers[name] = record(name, async (input) => {
          const p = input as { FunctionName: string; Payload?: unknown };
          const Payload = await invokeFunction(
            lambdaTarget(),
            idOfArn(p.FunctionName, 'AWS::Lambda::Function'),
            p.Payload ?? {},
          );
          return { Payload, StatusCode: 200, ExecutedVersion: '$LATEST' };
        });
      } else if (resource.startsWith(`arn:${ctx.partition}:lambda:`)) {
        // A function ARN as the Resource: the payload is the state's input, the result its output.
        const fnId = idOfArn(resource, 'AWS::Lambda::Function');
        handlers[name] = record(name, (input) => invokeFunction(lambdaTarget(), fnId, input));
      } else {
        throw new Error(`Task state ${name}: the twin has no handler for ${resource}`);
      }
    }
    return handlers;
  };
}

/** The ItemReader's read (s3:GetObject, JSON), as the state machine's role does it. */
let statesS3: S3Client;
async function readItems(p: { Bucket: string; Key: string }): Promise<unknown> {
  const { GetObjectCommand } = await import('@aws-sdk/client-s3');
  const r = await statesS3.send(new GetObjectCommand({ Bucket: p.Bucket, Key: p.Key }));
  return JSON.parse(await r.Body!.transformToString());
}

let runnable: ReturnType<typeof runnableDefinition>;

beforeAll(async () => {
  const emulators = Promise.all([startS3(), startDynamo()]);
  assembly = await synthesize();
  timings.synth = assembly.synthSeconds;
  process.stderr.write(`cdk synth: ${assembly.synthSeconds.toFixed(1)} s\n`);
  // The worker image's tree builds while the emulators come up.
  const cpuDef = idsOfType('AWS::Batch::JobDefinition').find(
    (id) => !(containerOf(id).ResourceRequirements ?? []).some((r) => r.Type === 'GPU'),
  )!;
  const treeOf = (id: string) => {
    const image = imageAsset(assembly, containerOf(id).Image);
    return buildImageTree(image.context, image.dockerfile);
  };
  imageTree = treeOf(cpuDef);
  [s3, ddb] = await emulators;
  bucket = uniqueBucketName('twin');
  await s3.createBucket(bucket);
  table = await ddb.createTable();
  credentials = s3.emulated
    ? EMULATOR_CREDENTIALS
    : {
        accessKeyId: process.env.AWS_ACCESS_KEY_ID ?? '',
        secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY ?? '',
      };
  ctx = {
    account: ACCOUNT,
    region: REGION,
    partition: 'aws',
    physical: physicalNames(assembly.template, {
      bucket,
      table,
      account: ACCOUNT,
      region: REGION,
      stackName: 'Tessera',
    }),
  };
  stateMachineArn = String(resolved({ Ref: assembly.stateMachineId }));
  runnable = runnableDefinition(deployedDefinition(assembly, ctx));
  process.stderr.write(`definition rewrites:\n${REWRITES.map((r) => `  - ${r}`).join('\n')}\n`);

  const trees = new Map<string, Promise<ImageTree>>();
  batch = new BatchService({
    assembly,
    ctx,
    treeFor: (id) => {
      if (!trees.has(id)) trees.set(id, id === cpuDef ? imageTree! : treeOf(id));
      return trees.get(id)!;
    },
    endpointFor: endpointEnv,
    credentials,
    maxChildren: MAX_CHILDREN,
  });
  await batch.listen();
  sfn = await startSfnService({
    stateMachineArn,
    roleArn: String(resolved(res()[assembly.stateMachineId]!.Properties?.RoleArn)),
    definition: runnable.definition,
    handlers: handlersFor(runnable.readers),
  });
  const lambdas = idsOfType('AWS::Lambda::Function').filter((id) => id.startsWith('Functions'));
  try {
    recorder = await startRecorder({
      upstream: {
        s3: s3.endpoint,
        dynamodb: ddb.endpoint,
        sfn: sfn.endpoint,
        batch: batch.endpoint,
      },
      account: ACCOUNT,
      region: REGION,
      keySchemas: keySchemasFromTemplate(assembly.template as never, ctx),
      components: [...lambdas.map(componentOf), ...COMPONENTS],
    });
  } catch (error) {
    // The scenarios still run, straight to the services; the IAM tests fail with this.
    recorderError = error as Error;
    process.stderr.write(`recording proxies did not start: ${recorderError.message}\n`);
  }
  statesS3 = new S3Client({
    region: REGION,
    endpoint: endpointEnv('states').AWS_ENDPOINT_URL ?? s3.endpoint,
    forcePathStyle: true,
    credentials,
  });
  // The test's own uploads are the user's, not a component's: straight to S3.
  const store = new S3Store({ client: s3.client, bucket });
  for (const model of ['realistic.onnx', 'tiny.onnx'])
    await store.set(`/models/${model}`, new Uint8Array(readFileSync(join(FIXTURE_MODELS, model))));
  const tree = await imageTree;
  timings.imageTree = tree.seconds;
  process.stderr.write(
    `worker image tree: ${tree.cached ? 'cached' : `built in ${tree.seconds.toFixed(1)} s`} (${tree.root}); ${tree.notes.join('; ')}\n`,
  );
}, 600_000);

afterAll(async () => {
  statesS3?.destroy();
  await Promise.allSettled([batch?.stop(), sfn?.stop(), recorder?.stop()]);
  await Promise.allSettled([s3?.stop(), ddb?.stop()]);
  process.stderr.write(`twin timings (s): ${JSON.stringify(timings)}\n`);
});

// --- a job, from the upload on ------------------------------------------------------

interface JobRun {
  jobId: string;
  execution: Execution;
  planner: unknown;
  seconds: number;
}

/** Uploads a manifest as a user would and follows what the stack does with it. */
async function submit(key: string, manifest: Record<string, unknown>): Promise<JobRun> {
  const t0 = Date.now();
  await s3.client.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: JSON.stringify(manifest),
      ContentType: 'application/json',
    }),
  );
  const bucketId = idOfArn(`arn:aws:s3:::${bucket}`, 'AWS::S3::Bucket');
  const subscribed = lambdaSubscriptions(assembly.template, bucketId).filter((s) =>
    matches(s, 'ObjectCreated:Put', key),
  );
  // The upload must reach the planner, and only it.
  expect(subscribed.map((s) => componentOf(s.functionId))).toEqual(['planner']);
  const event = await objectCreatedEvent(s3.client, ctx, bucket, key);
  const planner = await invokeFunction(lambdaTarget(), subscribed[0]!.functionId, event);
  const started = sfn.requests.filter((r) => r.action === 'StartExecution');
  const start = started.at(-1);
  expect(start, `the planner started no execution: ${JSON.stringify(planner)}`).toBeDefined();
  const jobId = String(start!.body.name);
  // The S3 path accepts the manifest and starts the execution (which plans): nothing rejected.
  expect(planner).toMatchObject({ rejected: [] });
  expect(JSON.parse(String(start!.body.input))).toMatchObject({ manifest: { bucket, key } });
  const execution = sfn.executions.get(jobId)!;
  await execution.done;
  return { jobId, execution, planner, seconds: (Date.now() - t0) / 1000 };
}

async function statusOf(jobId: string): Promise<JobStatusDocument | undefined> {
  const bytes = await new S3Store({ client: s3.client, bucket }).get(`/jobs/${jobId}/status.json`);
  return bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as JobStatusDocument) : undefined;
}

function statesOf(jobId: string): string[] {
  return taskCalls.filter((c) => c.execution === jobId).map((c) => c.state);
}

function describeRun(run: JobRun): string {
  const calls = taskCalls
    .filter((c) => c.execution === run.jobId)
    .map((c) => `${c.state}${c.error ? ` FAILED ${c.error.slice(0, 600)}` : ''}`);
  const failedLambdas = invocations
    .filter((i) => i.error)
    .map(
      (i) =>
        `${i.component}: ${i.error!.errorType}: ${i.error!.errorMessage.slice(0, 800)}\n${i.stderr.slice(-1500)}`,
    );
  return [
    `execution ${run.execution.status}${run.execution.error ? ` ${run.execution.error}: ${run.execution.cause?.slice(0, 1500)}` : ''}`,
    `tasks: ${calls.join(' → ')}`,
    ...failedLambdas,
  ].join('\n');
}

function workerLogs(jobId: string): string {
  return [...batch.jobs.values()]
    .filter((j) => j.parameters.jobId === jobId)
    .flatMap((j) =>
      j.children.flatMap((c) =>
        c.attempts.map(
          (a, i) =>
            `${c.jobId} attempt ${i + 1} exit ${a.exitCode} ${a.decision ?? ''}\n${a.output.slice(-1500)}`,
        ),
      ),
    )
    .join('\n');
}

/** One line per array child: its attempts' exit codes and Batch's decision. */
function childSummary(jobId: string): string {
  return [...batch.jobs.values()]
    .filter((j) => j.parameters.jobId === jobId)
    .flatMap((j) =>
      j.children.map(
        (c) =>
          `batch child ${j.definitionId} ${c.jobId.slice(0, 8)}…:${c.index ?? '-'} ${c.status}: ${c.attempts
            .map((a) => `exit ${a.exitCode}${a.decision ? ` → ${a.decision}` : ''}`)
            .join('; ')}`,
      ),
    )
    .join('\n');
}

// --- the hybrid worker ----------------------------------------------------------------

interface Hybrid {
  code: number | null;
  output: string;
}

/** `tessera worker --job <id>` from the repository on Node 22, as a lab machine runs it. */
function runHybridWorker(jobId: string): Promise<Hybrid> {
  const child = spawn(NODE22, [join(REPO, 'bin/tessera.js'), 'worker', '--job', jobId], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? '/tmp',
      // What the README's "Joining a running job" has a user export.
      TESSERA_TABLE: table,
      TESSERA_BUCKET: bucket,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: credentials.secretAccessKey,
      AWS_EC2_METADATA_DISABLED: 'true',
      ...endpointEnv('hybrid'),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-50_000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, output })));
}

// --- scenarios ------------------------------------------------------------------------

describe('the deployed pipeline: the synthesized assembly, run end to end on loopback', () => {
  let seamJob: string | undefined;

  it(
    'a volume with seam blocks and a pyramid ends SUCCEEDED and equals the whole-volume reference; a worker interrupted by SIGTERM exits 75 and Batch retries it; a hybrid worker joins',
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

      // One child is interrupted as Batch stops a container (SIGTERM) once it holds a chunk;
      // one hybrid worker joins the first round.
      let interrupted: RunningChild | undefined;
      let hybrid: Promise<Hybrid> | undefined;
      batch.onChildStarted = (c) => {
        if (interrupted || c.child.index !== 1 || c.attempt !== 1) return;
        interrupted = c;
        // ECS stops a container with one SIGTERM (then SIGKILL after the stop timeout).
        let signalled = false;
        c.onLine((line) => {
          if (signalled || !line.includes('"type":"claimed"') || c.process.exitCode !== null)
            return;
          signalled = true;
          c.process.kill('SIGTERM');
        });
      };
      batch.onRoundStarted = async (job) => {
        if (hybrid) return;
        hybrid = runHybridWorker(job.parameters.jobId!);
        await hybrid;
      };

      const run = await submit('manifests/cells.json', {
        version: 1,
        name: 'cells',
        input: { url: `s3://${bucket}/data/cells.zarr` },
        // An odd block shape: blocks straddle chunk footprints, so there are seam blocks.
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
      batch.onChildStarted = undefined;
      batch.onRoundStarted = undefined;
      timings.seamScenario = run.seconds;
      seamJob = run.jobId;
      process.stderr.write(
        `seam job: ${run.seconds.toFixed(1)} s; ${statesOf(run.jobId).join(' → ')}\n${childSummary(run.jobId)}\n`,
      );
      expect(run.execution.status, `${describeRun(run)}\n${workerLogs(run.jobId)}`).toBe(
        'SUCCEEDED',
      );

      const plan = taskCalls.find((c) => c.execution === run.jobId && c.state === 'Plan')!
        .output as { seamBlocks: number; chunks: number; arraySize: number };
      expect(plan.seamBlocks).toBeGreaterThan(0);
      // The workers blended each seam block as its last contributor: Verify left the
      // Blend Map nothing (the next scenario runs it).
      const verified = taskCalls.filter((c) => c.execution === run.jobId && c.state === 'Verify');
      expect(verified.at(-1)?.output).toMatchObject({ status: 'COMPLETE', blendItemCount: 0 });
      expect(statesOf(run.jobId)).not.toContain('BlendRange');

      // The interrupted child: exit 75, and a second attempt by the template's strategy.
      expect(interrupted, 'no array child 1 started').toBeDefined();
      const attempts = interrupted!.child.attempts;
      expect(attempts[0]?.exitCode, workerLogs(run.jobId)).toBe(INTERRUPTED);
      expect(attempts.length, workerLogs(run.jobId)).toBe(2);
      expect(attempts[0]?.decision).toMatch(/^RETRY by .*"OnExitCode":"75"/);
      expect(attempts[1]?.exitCode).toBe(0);

      const h = await hybrid!;
      expect(h.code, h.output.slice(-3000)).toBe(0);
      // It worked the job as a lab machine would: its last line is the worker's summary.
      const finished = h.output.split('\n').find((l) => l.includes('"worker finished"'));
      process.stderr.write(`hybrid worker: ${finished}\n`);
      expect(finished, h.output.slice(-3000)).toBeDefined();

      const status = await statusOf(run.jobId);
      expect(status?.status).toBe('SUCCEEDED');
      expect(status?.output).toBe(output);
      const out = new S3Store({ client: s3.client, bucket, prefix: 'outputs/cells.zarr' });
      expect(await out.get('/1/zarr.json'), 'pyramid level 1').toBeDefined();
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
    'workers that blend no seam (as if each died between completing and blending): Verify hands every seam block to the Blend Map, the output still equals the reference',
    async () => {
      const shape: Vec3 = [20, 28, 28];
      const patch: Vec3 = [8, 12, 12];
      const overlap: Vec3 = [2, 4, 4];
      const data = lcgVolume(shape, 5);
      await writeZarrArray(new S3Store({ client: s3.client, bucket, prefix: 'data/left.zarr' }), {
        data,
        shape: [...shape],
        chunkShape: [10, 14, 14],
      });
      const output = `s3://${bucket}/outputs/left.zarr`;
      batch.faultEnv = { [ENV.seamBlend]: 'off' };
      let run: Awaited<ReturnType<typeof submit>>;
      try {
        run = await submit('manifests/left.json', {
          version: 1,
          name: 'left',
          input: { url: `s3://${bucket}/data/left.zarr` },
          output: { url: output, dtype: 'float32', blockShape: [6, 10, 9] },
          model: {
            url: `s3://${bucket}/models/realistic.onnx`,
            patchShape: patch,
            outputChannels: 2,
          },
          overlap,
          blend: 'gaussian',
          chunkShape: [14, 20, 20],
          compute: { device: 'cpu', maxWorkers: 2, spot: true },
        });
      } finally {
        batch.faultEnv = undefined;
      }
      timings.leftoverScenario = run.seconds;
      process.stderr.write(
        `leftover job: ${run.seconds.toFixed(1)} s; ${statesOf(run.jobId).join(' → ')}\n`,
      );
      expect(run.execution.status, `${describeRun(run)}\n${workerLogs(run.jobId)}`).toBe(
        'SUCCEEDED',
      );
      const plan = taskCalls.find((c) => c.execution === run.jobId && c.state === 'Plan')!
        .output as { seamBlocks: number };
      expect(plan.seamBlocks).toBeGreaterThan(0);
      const verified = taskCalls.filter((c) => c.execution === run.jobId && c.state === 'Verify');
      const left = (verified.at(-1)!.output as { blendItemCount: number }).blendItemCount;
      // Cloud outputs are sharded: every shard is left (no worker assembled one), in items
      // of up to BLOCKS_PER_BLEND_ITEM keys.
      const shards = 2 * 2 * 2;
      expect(left).toBe(Math.ceil(shards / BLOCKS_PER_BLEND_ITEM));
      const blends = taskCalls.filter((c) => c.execution === run.jobId && c.state === 'BlendRange');
      expect(blends.length).toBe(left);
      expect(blends.reduce((n, c) => n + (c.output as { blocks: number }).blocks, 0)).toBe(shards);
      const out = new S3Store({ client: s3.client, bucket, prefix: 'outputs/left.zarr' });
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
    'a poison chunk (NaN input) ends FAILED, naming the chunk in status.json and in the execution’s error',
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
      const run = await submit('manifests/poison.json', {
        version: 1,
        name: 'poison',
        input: { url: `s3://${bucket}/data/poison.zarr` },
        output: { url: `s3://${bucket}/outputs/poison.zarr`, dtype: 'float32' },
        model: { url: `s3://${bucket}/models/tiny.onnx`, patchShape: patch, outputChannels: 2 },
        overlap,
        blend: 'bump',
        chunkShape,
        compute: { device: 'cpu', maxWorkers: 2, spot: true },
        maxAttempts: 2,
      });
      timings.poisonScenario = run.seconds;
      process.stderr.write(
        `poison job: ${run.seconds.toFixed(1)} s; ${statesOf(run.jobId).join(' → ')}\n${childSummary(run.jobId)}\n`,
      );
      expect(run.execution.status, describeRun(run)).toBe('FAILED');
      const grid = new Plan({ volumeShape: shape, patchShape: patch, overlap, chunkShape });
      const poisoned = [...grid.chunks()]
        .filter((c) => [...grid.patches(c)].some((p) => p.containsPoint(bad)))
        .map((c) => c.id);
      expect(poisoned.length).toBeGreaterThan(0);
      const status = await statusOf(run.jobId);
      expect(status?.status).toBe('FAILED');
      for (const id of poisoned) {
        expect(status?.reason).toContain(`chunk ${id}:`);
        expect(run.execution.cause).toContain(`chunk ${id}:`);
      }
      expect(run.execution.error).toBe('TesseraJobFailed');
    },
    SCENARIO_TIMEOUT_MS,
  );

  it('every AWS call each component made is allowed by its synthesized role and the bucket policy', async () => {
    expect(seamJob, 'the seam scenario ran').toBeDefined();
    if (!recorder) throw new Error(`no calls were recorded: ${recorderError?.message}`);
    const p = principals();
    const calls = recorder.calls.filter((c) => c.component !== 'uploader');
    if (!p.hybrid) {
      // TODO(twin): the stack has no HybridWorkerRoleArn output yet; the hybrid worker's calls
      // cannot be judged until it does.
      process.stderr.write(
        'TODO: no HybridWorkerRoleArn output in the template: the hybrid worker’s calls are NOT evaluated\n',
      );
    }
    const judged = calls.filter((c) => p.hybrid || c.component !== 'hybrid');
    const components = new Set(judged.map((c) => c.component));
    // Every kind of component made calls, or the recording missed them.
    for (const c of [
      'planner',
      'verify',
      'blend',
      'finalize',
      'markFailed',
      'worker-cpu',
      'states',
    ])
      expect(components, `no calls recorded for ${c}`).toContain(c);
    const denials = await evaluateCalls({
      template: assembly.template as never,
      ctx,
      calls: judged,
      principals: p,
    });
    expect(denials, formatDenials(denials)).toEqual([]);
  }, 120_000);

  it('the service-side calls of each integration are allowed by the template', async () => {
    const denials = await serviceSideChecks({
      template: assembly.template as never,
      ctx,
      ...(seamJob ? { sampleJobId: seamJob } : {}),
    });
    expect(denials, formatDenials(denials)).toEqual([]);
  }, 120_000);
});
