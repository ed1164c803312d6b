// Entry points that turn untrusted input (a parsed JSON value or raw text) into a
// validated, defaulted, frozen Manifest, or a ManifestError listing every problem.
import { ManifestError } from './errors.ts';
import { manifestErrorMap, toManifestIssues } from './issues.ts';
import { type Manifest, manifestSchema } from './schema.ts';

export type ManifestParseResult =
  | { readonly ok: true; readonly manifest: Manifest }
  | { readonly ok: false; readonly error: ManifestError };

/** Validates `input`; `source` (a file name or key) prefixes the error's lines. */
export function safeParseManifest(input: unknown, source?: string): ManifestParseResult {
  const result = manifestSchema.safeParse(input, { error: manifestErrorMap });
  if (result.success) return { ok: true, manifest: deepFreeze(result.data) };
  return { ok: false, error: new ManifestError(toManifestIssues(result.error), { source }) };
}

/** Validates `input` and applies defaults; throws ManifestError. */
export function parseManifest(input: unknown, source?: string): Manifest {
  const result = safeParseManifest(input, source);
  if (!result.ok) throw result.error;
  return result.manifest;
}

/** Parses manifest JSON text; a JSON syntax error becomes a ManifestError with path ''. */
export function parseManifestText(text: string, source?: string): Manifest {
  let value: unknown;
  try {
    // Editors on Windows may save a byte-order mark, which JSON.parse rejects.
    value = JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ManifestError([{ path: '', message: `not valid JSON: ${error.message}` }], {
      source,
      cause: error,
    });
  }
  return parseManifest(value, source);
}

// Workers and the planner share one parsed manifest; freezing it turns an accidental
// in-place edit (which would desynchronise them) into an immediate TypeError.
function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
