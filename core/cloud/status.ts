// Status documents (jobs/<jobId>/status.json, or a rejected manifest's under its name):
// what `tessera status --cloud`, other teams' pipelines and the watchdog read of a job.

import { type JobStatusDocument, KEYS } from '../../contracts/cloud.ts';
import type { StatusDeps } from './deps.ts';

const enc = (v: unknown): Uint8Array => new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);
/** A bucket key as the bucket store's absolute path. */
export const bucketKey = (k: string): `/${string}` => `/${k}`;
export { enc as encodeJson };

export async function writeStatus(
  deps: StatusDeps,
  doc: Omit<JobStatusDocument, 'updatedAt'>,
  statusKey = KEYS.status(doc.jobId),
): Promise<void> {
  const full: JobStatusDocument = { ...doc, updatedAt: (deps.now?.() ?? new Date()).toISOString() };
  await deps.bucketStore.set(bucketKey(statusKey), enc(full));
}

export function readStatus(
  deps: StatusDeps,
  jobId: string,
): Promise<JobStatusDocument | undefined> {
  return readStatusAt(deps, KEYS.status(jobId));
}

/** The status document at `statusKey` (a job's, or KEYS.rejectedStatus of a manifest's name). */
export async function readStatusAt(
  deps: StatusDeps,
  statusKey: string,
): Promise<JobStatusDocument | undefined> {
  // S3 PUTs are atomic, but emulators (s3rver) can hand a reader a half-written object
  // while another step rewrites the status: read again rather than fail the step.
  for (let attempt = 1; ; attempt++) {
    const bytes = await deps.bucketStore.get(bucketKey(statusKey));
    if (!bytes) return undefined;
    const doc = tryJson(new TextDecoder().decode(bytes));
    if (doc !== undefined) return doc as JobStatusDocument;
    if (attempt >= 5) {
      throw new Error(
        `${statusKey} is not valid JSON after ${attempt} reads; delete it, the next step rewrites it`,
      );
    }
    await new Promise((r) => setTimeout(r, 20 * attempt));
  }
}

export function tryJson(text: string): unknown {
  if (!/^\s*[[{]/.test(text)) return undefined;
  try {
    return JSON.parse(text);
  } catch (e) {
    if (e instanceof SyntaxError) return undefined;
    throw e;
  }
}
