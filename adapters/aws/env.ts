// Environment of the cloud components, read once. A missing variable is a deployment
// error: say which one and where it comes from.

import { ENV } from '../../contracts/cloud.ts';

export class MissingEnvError extends Error {
  override readonly name = 'MissingEnvError';
}

export function requireEnv(name: string, env: NodeJS.ProcessEnv = process.env): string {
  const v = env[name];
  if (v === undefined || v === '') {
    throw new MissingEnvError(
      `environment variable ${name} is not set; the stack sets it on every Lambda and worker — for a worker outside AWS Batch, export it (see README "Joining a running job")`,
    );
  }
  return v;
}

export interface CloudEnv {
  table: string;
  bucket: string;
  allowedBuckets: string[];
  stateMachineArn: string | undefined;
  maxChunks: number | undefined;
  maxRounds: number;
  /** Largest model file a worker loads, in bytes; undefined: DEFAULT_MAX_MODEL_BYTES (2 GiB). */
  maxModelBytes?: number | undefined;
  /** Minutes without a finished chunk before the watchdog counts a job stalled (default 60). */
  stallMinutes?: number;
}

export function readCloudEnv(env: NodeJS.ProcessEnv = process.env): CloudEnv {
  const num = (name: string): number | undefined => {
    const v = env[name];
    if (v === undefined || v === '') return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1)
      throw new MissingEnvError(
        `environment variable ${name} must be a positive integer, got "${v}"`,
      );
    return n;
  };
  return {
    table: requireEnv(ENV.table, env),
    bucket: requireEnv(ENV.bucket, env),
    allowedBuckets: (env[ENV.allowedBuckets] ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
    stateMachineArn: env[ENV.stateMachineArn] || undefined,
    maxChunks: num(ENV.maxChunks),
    maxRounds: num(ENV.maxRounds) ?? 3,
    maxModelBytes: num(ENV.maxModelBytes),
    stallMinutes: num(ENV.stallMinutes) ?? 60,
  };
}
