// AWS Batch, as far as one job of the pipeline meets it: `batch:submitJob.sync` runs the
// job definition's container (ENTRYPOINT + Command, Parameters substituted) once per
// array child, in the worker image's file tree (image-tree.ts) as the image's user, with
// the container environment Batch and ECS give it; each child is retried as the job
// definition's RetryStrategy says (Attempts, EvaluateOnExit in order); the task resolves
// with the job description, or fails as the .sync integration fails (States.TaskFailed,
// Cause = the description as JSON). The Batch API (restJson1: ListJobs, DescribeJobs)
// answers from the children that ran, for Verify.
//
// Not emulated: scheduling, compute environments, capacity, memory and vCPU limits. A
// statusReason other than "Essential container in task exited" only arises when a test
// sets one (there is no host to lose here).

import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Assembly } from './assembly.ts';
import { type CfnContext, resolveCfn } from './cfn.ts';
import type { ImageTree } from './image-tree.ts';
import { NODE22 } from './lambda.ts';

export interface SubmitJobParameters {
  JobDefinition: string;
  JobName: string;
  JobQueue: string;
  Parameters?: Record<string, string>;
  ArrayProperties?: { Size: number };
}

interface RetryRule {
  Action: 'RETRY' | 'EXIT';
  OnExitCode?: string;
  OnStatusReason?: string;
  OnReason?: string;
}

export interface Attempt {
  exitCode: number | null;
  signal: string | null;
  statusReason: string;
  reason?: string;
  logStreamName: string;
  startedAt: number;
  stoppedAt: number;
  /** The rule of EvaluateOnExit that decided (undefined: none matched, or it succeeded). */
  decision?: string;
  output: string;
}

export interface ChildJob {
  jobId: string;
  index?: number;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  attempts: Attempt[];
}

export interface BatchJob {
  jobId: string;
  jobArn: string;
  jobName: string;
  jobQueue: string;
  jobDefinition: string;
  definitionId: string;
  component: string;
  parameters: Record<string, string>;
  command: string[];
  arraySize?: number;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED';
  statusReason?: string;
  createdAt: number;
  startedAt: number;
  stoppedAt?: number;
  children: ChildJob[];
  retryStrategy: { attempts: number; evaluateOnExit: RetryRule[] };
}

/** Seen by a test while a child runs: its process and its log so far. */
export interface RunningChild {
  job: BatchJob;
  child: ChildJob;
  attempt: number;
  process: ChildProcess;
  onLine(cb: (line: string) => void): void;
}

export interface BatchOptions {
  assembly: Omit<Assembly, 'synthSeconds'>;
  ctx: CfnContext;
  /** The image tree of a job definition (by logical id). */
  treeFor(definitionId: string): Promise<ImageTree>;
  /** AWS_ENDPOINT_URL (and friends) for a component's process. */
  endpointFor(component: string): Record<string, string>;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** The most children the twin runs for one array job; a bigger array fails the task. */
  maxChildren: number;
}

/** Batch's glob: `*` matches any run of characters (docs allow it at the end). */
function globMatches(pattern: string, value: string): boolean {
  const re = new RegExp(`^${pattern.split('*').map(escapeRe).join('.*')}$`);
  return re.test(value);
}
const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * What EvaluateOnExit decides for a failed attempt: the first rule whose every given
 * condition matches; none matching retries (AWS Batch's documented default).
 */
export function evaluateOnExit(
  rules: RetryRule[],
  a: { exitCode: number | null; statusReason: string; reason?: string },
): { action: 'RETRY' | 'EXIT'; rule?: string } {
  for (const r of rules) {
    if (r.OnExitCode !== undefined && !globMatches(r.OnExitCode, String(a.exitCode ?? '')))
      continue;
    if (r.OnStatusReason !== undefined && !globMatches(r.OnStatusReason, a.statusReason)) continue;
    if (r.OnReason !== undefined && !globMatches(r.OnReason, a.reason ?? '')) continue;
    return { action: r.Action, rule: JSON.stringify(r) };
  }
  return { action: 'RETRY' };
}

const SIGNALS: Record<string, number> = { SIGKILL: 9, SIGTERM: 15, SIGINT: 2, SIGABRT: 6 };

export class BatchService {
  readonly jobs = new Map<string, BatchJob>();
  /** Called for each child attempt as it starts (the seam scenario interrupts one). */
  onChildStarted: ((c: RunningChild) => void) | undefined;
  /** Called when an array job's round starts (the seam scenario adds a hybrid worker). */
  onRoundStarted: ((job: BatchJob) => Promise<void>) | undefined;
  /**
   * Environment a scenario adds to every child, for a fault it injects (TESSERA_SEAM_BLEND=off:
   * workers blend no seam block, as if each died between completing and blending).
   */
  faultEnv: Record<string, string> | undefined;
  private readonly running = new Set<ChildProcess>();
  private server?: ReturnType<typeof createServer>;
  endpoint = '';

  constructor(private readonly o: BatchOptions) {}

  private resolve(v: unknown): string {
    return String(resolveCfn(v, this.o.ctx));
  }

  /** The job definition's logical id for the ARN in a SubmitJob request. */
  private definitionIdOf(arn: string): string {
    for (const [id, r] of Object.entries(this.o.assembly.template.Resources))
      if (r.Type === 'AWS::Batch::JobDefinition' && this.resolve({ Ref: id }) === arn) return id;
    throw new Error(`SubmitJob: no job definition of the stack has the ARN ${arn}`);
  }

  private queueNameOf(arn: string): string {
    for (const [id, r] of Object.entries(this.o.assembly.template.Resources))
      if (r.Type === 'AWS::Batch::JobQueue' && this.resolve({ Ref: id }) === arn)
        return arn.split('/').pop()!;
    throw new Error(`SubmitJob: no job queue of the stack has the ARN ${arn}`);
  }

  /** batch:submitJob.sync: runs the job to its end. */
  async submitJobSync(p: SubmitJobParameters): Promise<Record<string, unknown>> {
    const definitionId = this.definitionIdOf(p.JobDefinition);
    const queueName = this.queueNameOf(p.JobQueue);
    const def = this.o.assembly.template.Resources[definitionId]!.Properties as {
      ContainerProperties: {
        Command?: string[];
        Environment?: { Name: string; Value: unknown }[];
        ResourceRequirements?: { Type: string; Value: string }[];
        LogConfiguration?: { Options?: Record<string, unknown> };
      };
      Parameters?: Record<string, string>;
      RetryStrategy?: { Attempts?: number; EvaluateOnExit?: RetryRule[] };
      PlatformCapabilities?: string[];
    };
    const container = def.ContainerProperties;
    const gpu = (container.ResourceRequirements ?? []).some((r) => r.Type === 'GPU');
    const component = gpu ? 'worker-gpu' : 'worker-cpu';
    const parameters = { ...def.Parameters, ...p.Parameters };
    const command = (container.Command ?? []).map((a) =>
      a.startsWith('Ref::') ? (parameters[a.slice(5)] ?? a) : a,
    );
    const size = p.ArrayProperties?.Size;
    if (size !== undefined && (size < 2 || size > 10_000))
      throw Object.assign(new Error(`ArrayProperties.Size ${size} is outside 2..10000`), {
        name: 'Batch.ClientException',
      });
    if (size !== undefined && size > this.o.maxChildren)
      throw new Error(
        `the twin runs at most ${this.o.maxChildren} children; the state machine asked for ${size}`,
      );
    const jobId = randomUUID();
    const now = Date.now();
    const job: BatchJob = {
      jobId,
      jobArn: `arn:${this.o.ctx.partition}:batch:${this.o.ctx.region}:${this.o.ctx.account}:job/${jobId}`,
      jobName: p.JobName,
      jobQueue: p.JobQueue,
      jobDefinition: p.JobDefinition,
      definitionId,
      component,
      parameters,
      command,
      ...(size !== undefined ? { arraySize: size } : {}),
      status: 'RUNNING',
      createdAt: now,
      startedAt: now,
      children: Array.from({ length: size ?? 1 }, (_, i) => ({
        jobId: size === undefined ? jobId : `${jobId}:${i}`,
        ...(size === undefined ? {} : { index: i }),
        status: 'RUNNING' as const,
        attempts: [],
      })),
      retryStrategy: {
        attempts: def.RetryStrategy?.Attempts ?? 1,
        evaluateOnExit: def.RetryStrategy?.EvaluateOnExit ?? [],
      },
    };
    this.jobs.set(jobId, job);
    const tree = await this.o.treeFor(definitionId);
    const containerEnv: Record<string, string> = {};
    for (const { Name, Value } of container.Environment ?? [])
      containerEnv[Name] = this.resolve(Value);
    const streamPrefix = String(
      container.LogConfiguration?.Options?.['awslogs-stream-prefix'] ?? 'batch',
    );
    const round = this.onRoundStarted?.(job);
    await Promise.all(
      job.children.map((child) =>
        this.runChild(job, child, tree, {
          containerEnv,
          queueName,
          streamPrefix,
          fargate: (def.PlatformCapabilities ?? []).includes('FARGATE'),
        }),
      ),
    );
    await round;
    const failed = job.children.filter((c) => c.status === 'FAILED').length;
    job.status = failed > 0 ? 'FAILED' : 'SUCCEEDED';
    if (failed > 0)
      job.statusReason =
        size === undefined
          ? (job.children[0]!.attempts.at(-1)?.statusReason ?? 'failed')
          : `Array Child Job failed`;
    job.stoppedAt = Date.now();
    // The .sync integration's output: DescribeJobs' entry, keys as Step Functions gives them.
    const description = pascal(this.describe(job)) as Record<string, unknown>;
    if (job.status === 'FAILED')
      throw Object.assign(new Error(JSON.stringify(description)), { name: 'States.TaskFailed' });
    return description;
  }

  private async runChild(
    job: BatchJob,
    child: ChildJob,
    tree: ImageTree,
    o: {
      containerEnv: Record<string, string>;
      queueName: string;
      streamPrefix: string;
      fargate: boolean;
    },
  ): Promise<void> {
    for (let attempt = 1; attempt <= job.retryStrategy.attempts; attempt++) {
      const a = await this.runAttempt(job, child, tree, attempt, o);
      child.attempts.push(a);
      if (a.exitCode === 0) {
        child.status = 'SUCCEEDED';
        return;
      }
      const decision = evaluateOnExit(job.retryStrategy.evaluateOnExit, a);
      a.decision = `${decision.action}${decision.rule ? ` by ${decision.rule}` : ' (no rule matched)'}`;
      if (decision.action === 'EXIT') break;
    }
    child.status = 'FAILED';
  }

  private runAttempt(
    job: BatchJob,
    child: ChildJob,
    tree: ImageTree,
    attempt: number,
    o: {
      containerEnv: Record<string, string>;
      queueName: string;
      streamPrefix: string;
      fargate: boolean;
    },
  ): Promise<Attempt> {
    const taskId = randomUUID().replaceAll('-', '');
    const home = mkdtempSync(join(tmpdir(), 'tessera-twin-home-'));
    const asUser =
      process.getuid?.() === 0 ? { uid: tree.user.uid, gid: tree.user.gid } : undefined;
    if (asUser) chownSync(home, asUser.uid, asUser.gid);
    const env: Record<string, string> = {
      // The image's ENV, then what Docker sets for the USER, then the job definition's.
      ...tree.env,
      PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
      HOME: home,
      HOSTNAME: `ip-10-0-0-${(child.index ?? 0) + 10}.ec2.internal`,
      ...o.containerEnv,
      // What AWS Batch sets in every job's container.
      AWS_BATCH_JOB_ID: child.jobId,
      AWS_BATCH_JOB_ATTEMPT: String(attempt),
      AWS_BATCH_JQ_NAME: o.queueName,
      AWS_BATCH_CE_NAME: `${o.queueName}-ce`,
      ...(child.index === undefined
        ? {}
        : {
            AWS_BATCH_JOB_ARRAY_INDEX: String(child.index),
            AWS_BATCH_JOB_ARRAY_SIZE: String(job.arraySize),
          }),
      // What ECS sets (the task role's credentials come from the container credentials
      // endpoint there; here they are the emulators' test keys).
      AWS_REGION: this.o.ctx.region,
      AWS_DEFAULT_REGION: this.o.ctx.region,
      AWS_EXECUTION_ENV: o.fargate ? 'AWS_ECS_FARGATE' : 'AWS_ECS_EC2',
      AWS_ACCESS_KEY_ID: this.o.credentials.accessKeyId,
      AWS_SECRET_ACCESS_KEY: this.o.credentials.secretAccessKey,
      // No instance metadata service here: the spot-notice watcher stays off.
      AWS_EC2_METADATA_DISABLED: 'true',
      ...this.o.endpointFor(job.component),
      ...this.faultEnv,
    };
    const [exe, ...args] = [...tree.entrypoint, ...job.command];
    // The image's `node` is Node 22; so is the twin's.
    const program = exe === 'node' ? NODE22 : exe!;
    const startedAt = Date.now();
    const proc = spawn(program, args, {
      cwd: tree.root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
      ...(asUser ?? {}),
    });
    this.running.add(proc);
    let output = '';
    let partial = '';
    const listeners: ((line: string) => void)[] = [];
    const onData = (b: Buffer) => {
      const text = b.toString();
      output = (output + text).slice(-200_000);
      partial += text;
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) for (const l of listeners) l(line);
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    this.onChildStarted?.({
      job,
      child,
      attempt,
      process: proc,
      onLine: (cb) => listeners.push(cb),
    });
    return new Promise((resolve) => {
      const finish = (code: number | null, signal: NodeJS.Signals | null, error?: Error) => {
        this.running.delete(proc);
        rmSync(home, { recursive: true, force: true });
        // Docker reports a signalled container as 128 + the signal number.
        const exitCode = code ?? (signal ? 128 + (SIGNALS[signal] ?? 0) : null);
        resolve({
          exitCode,
          signal,
          // What ECS reports for a container that exited by itself, success or not.
          statusReason: 'Essential container in task exited',
          ...(error ? { reason: `CannotStartContainerError: ${error.message}` } : {}),
          logStreamName: `${o.streamPrefix}/default/${taskId}`,
          startedAt,
          stoppedAt: Date.now(),
          output,
        });
      };
      proc.once('error', (e) => finish(null, null, e));
      proc.once('close', (code, signal) => finish(code, signal));
    });
  }

  /** DescribeJobs' entry for a job or one of its children (Batch's camelCase). */
  private describe(job: BatchJob, child?: ChildJob): Record<string, unknown> {
    const common = {
      jobQueue: job.jobQueue,
      jobDefinition: job.jobDefinition,
      parameters: job.parameters,
      retryStrategy: job.retryStrategy,
      createdAt: job.createdAt,
      dependsOn: [],
    };
    const attemptOf = (a: Attempt) => ({
      container: {
        exitCode: a.exitCode,
        ...(a.reason ? { reason: a.reason } : {}),
        logStreamName: a.logStreamName,
      },
      startedAt: a.startedAt,
      stoppedAt: a.stoppedAt,
      statusReason: a.statusReason,
    });
    if (child) {
      const last = child.attempts.at(-1);
      return {
        ...common,
        jobArn: `${job.jobArn.replace(job.jobId, child.jobId)}`,
        jobId: child.jobId,
        jobName: job.jobName,
        status: child.status,
        ...(last ? { statusReason: last.statusReason } : {}),
        attempts: child.attempts.map(attemptOf),
        ...(child.attempts[0] ? { startedAt: child.attempts[0].startedAt } : {}),
        ...(last && child.status !== 'RUNNING' ? { stoppedAt: last.stoppedAt } : {}),
        container: {
          command: job.command,
          ...(last
            ? {
                exitCode: last.exitCode,
                ...(last.reason ? { reason: last.reason } : {}),
                logStreamName: last.logStreamName,
              }
            : {}),
        },
        ...(child.index === undefined ? {} : { arrayProperties: { index: child.index } }),
      };
    }
    if (job.arraySize === undefined) {
      const self = this.describe(job, job.children[0]!);
      return { ...self, jobArn: job.jobArn, jobId: job.jobId, status: job.status };
    }
    const summary: Record<string, number> = {};
    for (const c of job.children) summary[c.status] = (summary[c.status] ?? 0) + 1;
    return {
      ...common,
      jobArn: job.jobArn,
      jobId: job.jobId,
      jobName: job.jobName,
      status: job.status,
      ...(job.statusReason ? { statusReason: job.statusReason } : {}),
      attempts: [],
      startedAt: job.startedAt,
      ...(job.stoppedAt ? { stoppedAt: job.stoppedAt } : {}),
      container: { command: job.command },
      arrayProperties: { size: job.arraySize, statusSummary: summary },
    };
  }

  private find(id: string): { job: BatchJob; child?: ChildJob } | undefined {
    const [parent] = id.split(':');
    const job = this.jobs.get(parent!);
    if (!job) return undefined;
    if (id === job.jobId) return { job };
    const child = job.children.find((c) => c.jobId === id);
    return child ? { job, child } : undefined;
  }

  /** Serves POST /v1/listjobs and /v1/describejobs. */
  async listen(): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    this.server = server;
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    this.endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    return this.endpoint;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const reply = (status: number, body: unknown, errorType?: string) => {
      res.writeHead(status, {
        'content-type': 'application/json',
        ...(errorType ? { 'x-amzn-errortype': errorType } : {}),
      });
      res.end(JSON.stringify(body));
    };
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>;
    } catch (e) {
      reply(400, { message: `not JSON: ${String(e)}` }, 'ClientException');
      return;
    }
    if (req.method === 'POST' && req.url === '/v1/describejobs') {
      const ids = (body.jobs as string[] | undefined) ?? [];
      if (ids.length > 100) {
        reply(400, { message: 'jobs: at most 100 ids per call' }, 'ClientException');
        return;
      }
      const jobs = ids.flatMap((id) => {
        const f = this.find(id);
        return f ? [this.describe(f.job, f.child)] : [];
      });
      reply(200, { jobs });
      return;
    }
    if (req.method === 'POST' && req.url === '/v1/listjobs') {
      const parent = body.arrayJobId ? this.jobs.get(String(body.arrayJobId)) : undefined;
      if (!body.arrayJobId) {
        reply(
          400,
          { message: 'the twin lists array children only (arrayJobId)' },
          'ClientException',
        );
        return;
      }
      const status = body.jobStatus as string | undefined;
      const list = (parent?.children ?? [])
        .filter((c) => status === undefined || c.status === status)
        .map((c) => {
          const d = this.describe(parent!, c);
          return {
            jobArn: d.jobArn,
            jobId: d.jobId,
            jobName: d.jobName,
            createdAt: d.createdAt,
            status: d.status,
            statusReason: d.statusReason,
            startedAt: d.startedAt,
            stoppedAt: d.stoppedAt,
            container: {
              exitCode: (d.container as { exitCode?: number }).exitCode,
              reason: (d.container as { reason?: string }).reason,
            },
            arrayProperties: { index: c.index },
            jobDefinition: d.jobDefinition,
          };
        });
      reply(200, { jobSummaryList: list });
      return;
    }
    reply(404, { message: `the twin does not serve ${req.method} ${req.url}` }, 'ClientException');
  }

  async stop(): Promise<void> {
    for (const p of this.running) p.kill('SIGKILL');
    if (this.server) {
      this.server.closeAllConnections();
      await new Promise<void>((resolve) => this.server!.close(() => resolve()));
    }
  }
}

/** Step Functions hands service results over with PascalCase keys (JobId, ArrayProperties, ...). */
function pascal(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(pascal);
  if (v === null || typeof v !== 'object') return v;
  return Object.fromEntries(
    Object.entries(v).map(([k, x]) => [
      k.charAt(0).toUpperCase() + k.slice(1),
      k === 'parameters' ? x : pascal(x),
    ]),
  );
}
