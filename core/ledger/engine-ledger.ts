// The Ledger port over an engine: each method runs the engine's transition (synchronous,
// so atomic) inside the port's promise, so a refusal arrives as a rejection. MemoryLedger
// and LocalLedger are this over their own engines (no persistence; a journal); it has
// nothing to override: what differs between them is the engine's Persistence.

import type { LedgerEngine } from './engine.ts';
import type {
  ChunkRef,
  ChunkRow,
  ChunkStatus,
  Claim,
  JobSpec,
  Ledger,
  RearmSelection,
  StatusCounts,
} from './port.ts';

export class EngineLedger implements Ledger {
  constructor(protected readonly engine: LedgerEngine) {}

  async createJob(
    job: JobSpec,
    chunks: Iterable<ChunkRef>,
  ): Promise<{ created: boolean; job: JobSpec }> {
    return this.engine.createJob(job, chunks);
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
