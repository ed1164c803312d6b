// The cloud driver's ports: what the steps of core/cloud need from AWS, as plain
// functions and the two ports every step has (a Store over the stack's bucket, a Ledger).
// adapters/aws/deps.ts builds them from the SDK clients; the tests from emulators.

import type { ManifestLocation, PipelineInput, WorkerFailure } from '../../contracts/cloud.ts';
import type { Ledger } from '../ledger/index.ts';
import type { CloudPolicy } from '../manifest/index.ts';
import type { DamagedObject, JobContext, PlanLimits } from '../pipeline/index.ts';
import type { Store } from '../store/index.ts';

export interface CloudDeps {
  /** The stack's bucket name and a store over its root. */
  bucket: string;
  bucketStore: Store;
  ledger: Ledger;
  policy: CloudPolicy;
  limits?: PlanLimits;
  leaseMs?: number;
  maxRounds: number;
  /** Seam blocks per blend Map item (a range of the region's block grid holds about this many). */
  blocksPerBlendItem?: number;
  /**
   * Rows one PlanRange task writes (default PLAN_RANGE_ROWS): the Plan task leaves a job
   * of more chunks to the PlanRanges Map. Tests lower it to take that path on a small job.
   */
  planRangeRows?: number;
  /**
   * Reads a manifest object; `version` is its VersionId (versioned buckets) or ETag. An
   * object over `maxBytes` may come back unread, as its size only (the S3 adapter stops at
   * the response headers); one read whole anyway is refused by size before it is parsed.
   */
  fetchManifest(loc: ManifestLocation, o: { maxBytes: number }): Promise<FetchedManifest>;
  /** StartExecution with a deterministic name; an existing execution is success. */
  startExecution?(
    name: string,
    input: PipelineInput,
  ): Promise<{ executionArn?: string; alreadyExists: boolean }>;
  /**
   * Failed workers of a Work round's Batch job: its failed array children (the first
   * `limit` described), or the job itself when it is not an array. Throws BatchReadError
   * or BatchJobNotFoundError when Batch cannot say. Absent: Verify reads no Batch state.
   */
  workFailures?(batchJobId: string, o: { limit: number }): Promise<WorkFailures>;
  /**
   * The owned level-0 blocks of a job missing from its output (cloudDeps: one listing
   * with sizes, S3 writes being whole or absent). Verify re-runs the chunks that own them
   * before it calls a job COMPLETE. Absent: Verify trusts the ledger (unit tests of its
   * other decisions, over jobs that have no input).
   */
  ownedOutputDamage?(ctx: JobContext): Promise<readonly DamagedObject[]>;
  /**
   * The keys of the seam blocks (or shards) no worker finished (cloudDeps: jobLeftovers,
   * one listing): a COMPLETE Verify hands only those to the Blend Map. Absent: the Blend
   * Map gets the planner's items (every seam block).
   */
  leftovers?(ctx: JobContext): Promise<readonly string[]>;
  /** Operational warnings (a Lambda's log); default: one JSON line on stderr. */
  warn?(message: string, fields: Record<string, unknown>): void;
  now?: () => Date;
}

/** What Batch says about a Work round's failed workers. */
export interface WorkFailures {
  /** Failed workers in all (the parent's status summary), described or not. */
  failed: number;
  described: Omit<WorkerFailure, 'round'>[];
}

export type FetchedManifest =
  | { bytes: Uint8Array; version: string }
  /** Over the limit asked for: its size in bytes, body not read. */
  | { oversize: number; version: string };

/** What reading and writing status documents needs (the watchdog has no more). */
export type StatusDeps = Pick<CloudDeps, 'bucketStore' | 'now'>;

/** Operational warnings go to the deps' log, or one JSON line on stderr. */
export function warn(
  deps: Pick<CloudDeps, 'warn'>,
  message: string,
  fields: Record<string, unknown>,
): void {
  if (deps.warn) deps.warn(message, fields);
  else process.stderr.write(`${JSON.stringify({ level: 'WARN', message, ...fields })}\n`);
}
