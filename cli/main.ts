// The `tessera` command line.

import { parseArgs } from 'node:util';
import { demoCommand } from './demo.ts';
import { planCommand } from './plan-command.ts';
import { runCommand } from './run-command.ts';
import { statusCommand } from './status-command.ts';
import { submitCommand } from './submit-command.ts';
import { workerCommand } from './worker-command.ts';

const USAGE = `tessera — chunked, chunking-invariant ONNX inference over huge 3D volumes

Usage:
  tessera demo [--dir DIR] [--workers N]       synthetic volume + shipped model, run end to end
  tessera run <manifest.json> [--workers N] [--state DIR] [--json]
  tessera plan <manifest.json> [--json] [--throughput V | --calibrate] [--scan-empty]
                                                 counts, savings and a cost estimate, runs nothing
  tessera status <manifest.json|jobId> [--watch] [--json] [--cloud]
                                                 chunks, rate, ETA, poison chunks, spend so far
  tessera submit <manifest.json> --bucket B [--model-upload]
                                                 validate and hand a manifest to the deployed stack
  tessera worker --job <jobId>                   join a cloud job as a worker (Batch container command)
  tessera help

Run 'tessera <command> --help' for a command's options.`;

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'run':
        return await runCommand(rest);
      case 'plan':
        return await planCommand(rest);
      case 'status':
        return await statusCommand(rest);
      case 'submit':
        return await submitCommand(rest);
      case 'demo':
        return await demoCommand(rest);
      case 'worker':
        return await workerCommand(rest);
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        process.stdout.write(`${USAGE}\n`);
        return command === undefined ? 2 : 0;
      default:
        process.stderr.write(`tessera: unknown command "${command}"\n\n${USAGE}\n`);
        return 2;
    }
  } catch (e) {
    process.stderr.write(`tessera ${command}: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

type Options = NonNullable<NonNullable<Parameters<typeof parseArgs>[0]>['options']>;

export function parse(
  args: string[],
  options: Options,
  usage: string,
): { values: Record<string, string | boolean | undefined>; positionals: string[]; help: boolean } {
  const { values, positionals } = parseArgs({
    args,
    options: { ...options, help: { type: 'boolean', short: 'h' } },
    allowPositionals: true,
    strict: true,
  });
  const flat = values as Record<string, string | boolean | undefined>;
  const help = flat.help === true;
  if (help) process.stdout.write(`${usage}\n`);
  return { values: flat, positionals, help };
}

export function intOption(
  value: string | boolean | undefined,
  name: string,
  fallback: number,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new Error(`--${name} must be a positive integer, got "${String(value)}"`);
  return n;
}
