// The Ledger port over an engine: each method runs the engine's transition (synchronous,
// so atomic) inside the port's promise, so a refusal arrives as a rejection. MemoryLedger
// and LocalLedger are this over their own engines (no persistence; a journal); it has
// nothing to override: what differs between them is the engine's Persistence.
//
// Range planning (RangePlanner) stages the ranges' chunk ids in this object and hands the
// whole list to the engine's createJob at completePlan: the engine, and a LocalLedger's
// journal, only ever see whole jobs. Staged ranges are not persisted: a process that stops
// before completePlan plans its ranges again (local runs plan with createJob anyway).

import type { LedgerEngine } from './engine.ts';
import { InvalidJobError, JobNotFoundError, PlanIncompleteError } from './errors.ts';
import { collectRangeIds, uncovered, validateRange } from './plan-ranges.ts';
import type {
  ChunkRef,
  ChunkRow,
  ChunkStatus,
  Claim,
  IndexRange,
  JobSpec,
  Ledger,
  RangePlanner,
  RearmSelection,
  StatusCounts,
} from './port.ts';
import { validateJobSpec } from './protocol.ts';

interface StagedPlan {
  spec: JobSpec;
  ids: string[];
  ranges: IndexRange[];
}

export class EngineLedger implements Ledger, RangePlanner {
  private readonly staged = new Map<string, StagedPlan>();

  constructor(protected readonly engine: LedgerEngine) {}

  async createJob(
    job: JobSpec,
    chunks: Iterable<ChunkRef>,
  ): Promise<{ created: boolean; job: JobSpec }> {
    return this.engine.createJob(job, chunks);
  }
  async planRange(
    job: JobSpec,
    range: IndexRange,
    chunks: Iterable<ChunkRef>,
  ): Promise<{ written: number; complete: boolean }> {
    validateJobSpec(job);
    if (this.engine.state.has(job.jobId)) return { written: 0, complete: true };
    const plan = this.staged.get(job.jobId) ?? {
      spec: structuredClone(job),
      ids: new Array<string>(job.chunkCount),
      ranges: [],
    };
    if (plan.spec.chunkCount !== job.chunkCount) {
      throw new InvalidJobError(
        job.jobId,
        'chunkCount',
        `is ${job.chunkCount} but the half-planned job has ${plan.spec.chunkCount}; resume it with the plan that started it`,
      );
    }
    validateRange(plan.spec, range);
    const ids = collectRangeIds(plan.spec, range, chunks);
    ids.forEach((id, i) => {
      plan.ids[range.from + i] = id;
    });
    plan.ranges.push({ from: range.from, to: range.to });
    this.staged.set(job.jobId, plan);
    return { written: ids.length, complete: false };
  }
  async completePlan(jobId: string): Promise<{ created: boolean; job: JobSpec }> {
    const spec = this.engine.state.getJob(jobId);
    if (spec !== undefined) return { created: false, job: spec };
    const plan = this.staged.get(jobId);
    if (!plan) throw new JobNotFoundError(jobId);
    const gaps = uncovered(plan.spec.chunkCount, plan.ranges);
    if (gaps.length > 0) {
      const count = gaps.reduce((n, g) => n + g.to - g.from, 0);
      throw new PlanIncompleteError(jobId, gaps.slice(0, 20), count);
    }
    const made = this.engine.createJob(
      plan.spec,
      plan.ids.map((chunkId, index) => ({ chunkId, index })),
    );
    this.staged.delete(jobId);
    return made;
  }
  async getJob(jobId: string): Promise<JobSpec | undefined> {
    return this.engine.state.getJob(jobId);
  }
  async claim(
    jobId: string,
    owner: string,
    o?: { startIndex?: number; now?: number },
  ): Promise<Claim | undefined> {
    return this.engine.claim(jobId, owner, o);
  }
  async heartbeat(claim: Claim, o?: { now?: number }): Promise<Claim> {
    return this.engine.heartbeat(claim, o);
  }
  async complete(claim: Claim, o?: { skipped?: boolean }): Promise<void> {
    this.engine.complete(claim, o);
  }
  async release(claim: Claim): Promise<void> {
    this.engine.release(claim);
  }
  async fail(claim: Claim, error: string): Promise<ChunkRow> {
    return this.engine.fail(claim, error);
  }
  async counts(jobId: string): Promise<StatusCounts> {
    return this.engine.state.counts(jobId);
  }
  async *list(jobId: string, status?: ChunkStatus): AsyncIterable<ChunkRow> {
    yield* this.engine.state.list(jobId, status);
  }
  async statuses(jobId: string, chunks: readonly ChunkRef[]): Promise<ChunkStatus[]> {
    return this.engine.state.statuses(jobId, chunks);
  }
  async sweep(jobId: string, o?: { now?: number }): Promise<{ expired: number; failed: number }> {
    return this.engine.sweep(jobId, o);
  }
  async claimOutput(url: string, jobId: string, o?: { replacing?: string }): Promise<void> {
    this.engine.claimOutput(url, jobId, o);
  }
  async rearm(jobId: string, which: RearmSelection): Promise<{ rearmed: number }> {
    return this.engine.rearm(jobId, which);
  }
  /** Local admin, not in the port: see LedgerEngine.abandonOwners. */
  async abandonOwners(
    jobId: string,
    predicate: (owner: string) => boolean,
    o?: { now?: number; spend?: boolean },
  ): Promise<{ released: number; failed: number }> {
    return this.engine.abandonOwners(jobId, predicate, o);
  }
}
