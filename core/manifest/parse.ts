// Entry points that turn untrusted input (a parsed JSON value or raw text) into a
// validated, defaulted, frozen Manifest, or a ManifestError listing every problem.
import { ManifestError, type ManifestIssue } from './errors.ts';
import { manifestErrorMap, toManifestIssues } from './issues.ts';
import { type Manifest, manifestSchema } from './schema.ts';

export type ManifestParseResult =
  | { readonly ok: true; readonly manifest: Manifest }
  | { readonly ok: false; readonly error: ManifestError };

/**
 * Largest manifest accepted from others (the S3 trigger, `tessera submit`), in bytes. A
 * manifest holds settings, not data: anything near this size is padding or an attack, and
 * is refused before it is read whole or parsed.
 */
export const MAX_MANIFEST_BYTES = 1024 * 1024;

/** The whole-document issue of a manifest of `size` bytes, over MAX_MANIFEST_BYTES. */
export function manifestTooLargeIssue(size: number): ManifestIssue {
  return {
    path: '',
    message:
      `is ${size} bytes, over the ${MAX_MANIFEST_BYTES}-byte (1 MiB) limit for manifests; ` +
      'a manifest holds settings only: remove padding or embedded data, and put volumes and ' +
      'models in storage and name them by URL',
  };
}

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
  return parseManifest(parseManifestJson(text, source), source);
}

/**
 * The manifest document as written: JSON.parse of `text` and nothing more (no schema, no
 * defaults), what a job's identity is computed from (identity.ts). A JSON syntax error
 * becomes a ManifestError with path ''.
 */
export function parseManifestJson(text: string, source?: string): unknown {
  try {
    // Editors on Windows may save a byte-order mark, which JSON.parse rejects.
    return JSON.parse(text.replace(/^\uFEFF/, ''));
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    throw new ManifestError([{ path: '', message: `not valid JSON: ${error.message}` }], {
      source,
      cause: error,
    });
  }
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
