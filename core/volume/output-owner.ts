// Which job an output belongs to. The job id is recorded in the attributes of the
// output's root group and of its level-0 array, as `"tessera": {"job": "<jobId>"}`, by
// the first writer of the job; every later writer of a job checks it, so a second job
// pointed at the same output.url (or at a URL nested in it) is refused before it writes
// a block, even where the ledger's output claim did not see it (two local runs with
// separate state directories).

import { OutputOwnedError } from './errors.ts';
import { isObject, type JsonObject } from './json.ts';

export const OWNER_ATTRIBUTE = 'tessera';

/** The job recorded in a Zarr node's metadata document, if any. */
export function ownerOf(doc: unknown): string | undefined {
  const attributes = isObject(doc) && isObject(doc.attributes) ? doc.attributes : undefined;
  const tessera = attributes?.[OWNER_ATTRIBUTE];
  return isObject(tessera) && typeof tessera.job === 'string' ? tessera.job : undefined;
}

/** `doc` with `owner` recorded in its attributes (other attributes kept). */
export function withOwner(doc: JsonObject, owner: string): JsonObject {
  const attributes = isObject(doc.attributes) ? doc.attributes : {};
  const before = isObject(attributes[OWNER_ATTRIBUTE]) ? attributes[OWNER_ATTRIBUTE] : {};
  return {
    ...doc,
    attributes: { ...attributes, [OWNER_ATTRIBUTE]: { ...before, job: owner } },
  };
}

/**
 * Throws OutputOwnedError when the root group or the array records a job other than
 * `owner`. Nothing recorded (a new output, or one written before owners were recorded)
 * passes: the first writer of the job records it.
 */
export function checkOwner(
  location: string,
  owner: string,
  docs: { root: unknown; array: unknown },
): void {
  for (const doc of [docs.root, docs.array]) {
    const recorded = ownerOf(doc);
    if (recorded !== undefined && recorded !== owner)
      throw new OutputOwnedError(location, recorded, owner);
  }
}
