// The cloud assembly as `cdk deploy` would ship it: `npx cdk synth` (the app in cdk.json,
// the pinned CLI) into a temporary directory, and what the twin reads from there — the
// template, the asset manifest (Lambda code by S3 key, image build contexts by tag) and
// the state machine's definition. Nothing here reads the sources.

import { execFile } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { AslDefinition } from '../helpers/state-machine-definition.ts';
import { type CfnContext, resolveString } from './cfn.ts';

export const REPO = new URL('../../', import.meta.url).pathname;

export interface CfnResource {
  Type: string;
  Properties?: Record<string, unknown>;
}

export interface Template {
  Resources: Record<string, CfnResource>;
  Outputs?: Record<string, { Value: unknown }>;
  Conditions?: Record<string, unknown>;
}

interface AssetManifest {
  files: Record<string, { source: { path: string; packaging?: string } }>;
  dockerImages?: Record<string, { source: { directory: string; dockerFile?: string } }>;
}

export interface Assembly {
  dir: string;
  template: Template;
  assets: AssetManifest;
  /** The state machine's logical id. */
  stateMachineId: string;
  synthSeconds: number;
}

/** Runs `npx cdk synth -o <tmp> --quiet` in the repository and reads the assembly. */
export async function synthesize(): Promise<Assembly> {
  // For iterating on the twin itself: an assembly synthesized before (e.g. by a previous
  // `npx cdk synth -o DIR`), read as it is. Never set in CI: it would not test the sources.
  const reuse = process.env.TESSERA_TWIN_ASSEMBLY;
  if (reuse) return { ...readAssembly(reuse), synthSeconds: 0 };
  const dir = mkdtempSync(join(tmpdir(), 'tessera-twin-synth-'));
  // The functions run as an unprivileged user, who must reach their asset folders.
  chmodSync(dir, 0o755);
  const t0 = Date.now();
  try {
    await promisify(execFile)('npx', ['cdk', 'synth', '-o', dir, '--quiet'], {
      cwd: REPO,
      maxBuffer: 64 * 1024 * 1024,
      // The app reads only its context; nothing of an account is needed or wanted.
      env: { ...process.env, CDK_DISABLE_VERSION_CHECK: 'true' },
    });
  } catch (error) {
    const e = error as { stderr?: string; stdout?: string; message: string };
    throw new Error(
      `cdk synth failed: ${e.message}\n${(e.stderr ?? '').slice(-4000)}${(e.stdout ?? '').slice(-2000)}`,
    );
  }
  const synthSeconds = (Date.now() - t0) / 1000;
  return { ...readAssembly(dir), synthSeconds };
}

export function readAssembly(dir: string): Omit<Assembly, 'synthSeconds'> {
  const template = JSON.parse(readFileSync(join(dir, 'Tessera.template.json'), 'utf8')) as Template;
  const assets = JSON.parse(
    readFileSync(join(dir, 'Tessera.assets.json'), 'utf8'),
  ) as AssetManifest;
  const machines = Object.entries(template.Resources).filter(
    ([, r]) => r.Type === 'AWS::StepFunctions::StateMachine',
  );
  if (machines.length !== 1)
    throw new Error(`expected one state machine in the template, found ${machines.length}`);
  const [stateMachineId] = machines[0]!;
  return {
    dir,
    template,
    assets,
    stateMachineId,
  };
}

/**
 * The definition as deployed: the DefinitionString with every token resolved (function,
 * job queue and job definition ARNs, the bucket name), parsed.
 */
export function deployedDefinition(
  a: Omit<Assembly, 'synthSeconds'>,
  ctx: CfnContext,
): AslDefinition {
  const machine = a.template.Resources[a.stateMachineId]!;
  return JSON.parse(resolveString(machine.Properties?.DefinitionString, ctx)) as AslDefinition;
}

/** The folder holding a Lambda function's bundle: its Code.S3Key is `<hash>.zip`. */
export function functionAssetDir(a: Omit<Assembly, 'synthSeconds'>, functionId: string): string {
  const fn = a.template.Resources[functionId];
  const code = fn?.Properties?.Code as { S3Key?: unknown } | undefined;
  const key = typeof code?.S3Key === 'string' ? code.S3Key : undefined;
  if (!key) throw new Error(`${functionId} has no literal Code.S3Key`);
  const file = a.assets.files[key.replace(/\.zip$/, '')];
  if (!file) throw new Error(`${functionId}'s code ${key} is not in the asset manifest`);
  const dir = join(a.dir, file.source.path);
  if (!existsSync(dir)) throw new Error(`${functionId}'s asset folder ${dir} was not staged`);
  return dir;
}

/** The build context and Dockerfile of a job definition's image (its tag is the asset hash). */
export function imageAsset(
  a: Omit<Assembly, 'synthSeconds'>,
  imageValue: unknown,
): { context: string; dockerfile: string; hash: string } {
  const text = JSON.stringify(imageValue);
  for (const [hash, image] of Object.entries(a.assets.dockerImages ?? {})) {
    if (!text.includes(`:${hash}`)) continue;
    const context = join(a.dir, image.source.directory);
    return { context, dockerfile: join(context, image.source.dockerFile ?? 'Dockerfile'), hash };
  }
  throw new Error(`no staged image in the asset manifest matches ${text.slice(0, 200)}`);
}
