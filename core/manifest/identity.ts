// A job's identity: a hash of the manifest as its user wrote it. The parsed manifest
// carries this release's defaults, so hashing it would give every job a new id whenever a
// release added or changed a default, and `tessera run` would start afresh beside the
// finished work of the old id. The document as written changes only when its user edits it.
//
// Kept free of the schema (zod): workers and status readers recognise ids without it.

import { createHash } from 'node:crypto';

/**
 * The job id of a manifest document: `<name>-<first 8 hex of sha256(canonicalJson(raw))>`.
 *
 * `raw` is the document as written, parsed with JSON.parse and nothing else: no schema,
 * no defaults. Whitespace, key order and number spelling (`1.0` and `1`) do not change the
 * id. Writing out a field at its default value does: `"maxAttempts": 3` is a different
 * text from leaving it out, hence a different job, even though both parse to the same
 * manifest. `name` is the manifest's (validated) name.
 */
export function jobIdForDocument(raw: unknown, name: string): string {
  const digest = createHash('sha256').update(canonicalJson(raw)).digest('hex');
  return `${name}-${digest.slice(0, 8)}`;
}

/**
 * One spelling per JSON value: object keys sorted (by UTF-16 code units, as `<` compares
 * strings) at every depth, no whitespace, strings and numbers as JSON.stringify writes
 * them. Written out by hand rather than through a JSON.stringify replacer: an object
 * rebuilt with sorted entries still lists integer-like keys ("2", "10") first, in
 * numeric order, whatever order they were inserted in.
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map((item) => (item === undefined ? 'null' : canonicalJson(item))).join(',')}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  // JSON.parse gives only strings, finite numbers, booleans and null here.
  return JSON.stringify(value) ?? 'null';
}
