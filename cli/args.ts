// Option parsing shared by the commands.

import { parseArgs } from 'node:util';

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

/** The values of a repeatable option (`multiple: true` in its parse options); [] when absent. */
export function listOption(values: Record<string, unknown>, name: string): string[] {
  const v = values[name];
  if (v === undefined) return [];
  return Array.isArray(v) ? v.map(String) : [String(v)];
}
