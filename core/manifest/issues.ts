// Turns zod's validation issues into manifest issues a person can act on: dotted paths
// (`model.patchShape[2]`), messages that show the offending value and the rule, one
// issue per unknown key with a "did you mean" for typos.
import { z } from 'zod';
import type { ManifestIssue } from './errors.ts';
import { quoteForMessage } from './errors.ts';
import { manifestSchema } from './schema.ts';

/** Error map passed to every parse of the manifest schema. */
export const manifestErrorMap: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case 'invalid_type':
      return issue.input === undefined
        ? `is required (${expectedText(issue.expected)})`
        : `must be ${expectedText(issue.expected)}, got ${describeValue(issue.input)}`;
    case 'too_small':
      return issue.origin === 'array'
        ? `must have ${issue.minimum} elements${issue.minimum === 3 ? ' [z, y, x]' : ''}, got ${lengthOf(issue.input)}`
        : `must be ${issue.inclusive === false ? '>' : '>='} ${issue.minimum}, got ${describeValue(issue.input)}`;
    case 'too_big':
      return issue.origin === 'array'
        ? `must have ${issue.maximum} elements${issue.maximum === 3 ? ' [z, y, x]' : ''}, got ${lengthOf(issue.input)}`
        : `must be ${issue.inclusive === false ? '<' : '<='} ${issue.maximum}, got ${describeValue(issue.input)}`;
    case 'invalid_value':
      return `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}; got ${describeValue(issue.input)}`;
    default:
      return undefined;
  }
};

export function toManifestIssues(error: z.ZodError): ManifestIssue[] {
  return error.issues.flatMap((issue): ManifestIssue[] => {
    if (issue.code !== 'unrecognized_keys') {
      return [{ path: formatPath(issue.path), message: issue.message }];
    }
    const allowed = objectKeysAt(manifestSchema, issue.path);
    return issue.keys.map((key) => ({
      path: formatPath([...issue.path, key]),
      message: unknownKeyMessage(key, allowed),
    }));
  });
}

/** `['model', 'patchShape', 2]` → `model.patchShape[2]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (typeof segment === 'string' && /^[A-Za-z_$][\w$]{0,79}$/.test(segment)) {
      out += out === '' ? segment : `.${segment}`;
    } else out += `[${quoteForMessage(String(segment))}]`;
  }
  return out;
}

function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const head = `unknown field ${quoteForMessage(key)}`;
  const guess = closest(key, allowed);
  if (guess !== undefined) return `${head}; did you mean ${JSON.stringify(guess)}?`;
  return allowed.length === 0 ? head : `${head}; allowed here: ${allowed.join(', ')}`;
}

// Field names of the object schema at `path`, for suggestions. Unknown keys only ever
// sit in objects reached through object fields, so tuples need no handling.
function objectKeysAt(schema: z.core.$ZodType, path: readonly PropertyKey[]): string[] {
  let node: z.core.$ZodType | undefined = schema;
  for (const segment of path) {
    const object = unwrap(node);
    if (!(object instanceof z.ZodObject) || typeof segment !== 'string') return [];
    const shape: Record<string, z.core.$ZodType> = object.shape;
    if (!Object.hasOwn(shape, segment)) return [];
    node = shape[segment];
  }
  const object = unwrap(node);
  return object instanceof z.ZodObject ? Object.keys(object.shape) : [];
}

function unwrap(schema: z.core.$ZodType | undefined): z.core.$ZodType | undefined {
  let node = schema;
  while (
    node instanceof z.ZodOptional ||
    node instanceof z.ZodDefault ||
    node instanceof z.ZodPrefault
  ) {
    node = node.unwrap();
  }
  return node;
}

// Typos in config keys are mostly case, separators (`patch_shape`) or one or two
// letters; anything further away is more likely a different field altogether.
function closest(key: string, candidates: readonly string[]): string | undefined {
  const normalize = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const target = normalize(key);
  let best: { name: string; distance: number } | undefined;
  for (const name of candidates) {
    const candidate = normalize(name);
    // Lengths further apart than the bound cannot be within it (and a 10 MB key would
    // cost a 10 MB row of the distance table per candidate).
    if (Math.abs(target.length - candidate.length) > 2) continue;
    const distance = editDistance(target, candidate);
    if (distance <= 2 && (best === undefined || distance < best.distance))
      best = { name, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length]!;
}

function expectedText(expected: string): string {
  switch (expected) {
    case 'int':
      return 'an integer';
    case 'number':
      return 'a number';
    case 'string':
      return 'a string';
    case 'boolean':
      return 'true or false';
    case 'object':
      return 'an object';
    case 'array':
      return 'an array';
    // Every tuple in the manifest is a [z, y, x] triple.
    case 'tuple':
      return 'an array [z, y, x]';
    default:
      return expected;
  }
}

function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return quoteForMessage(value);
  return String(value);
}

function lengthOf(value: unknown): string {
  return Array.isArray(value) ? `${value.length}` : describeValue(value);
}
