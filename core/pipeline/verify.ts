// Verify: is every chunk finished? Expired leases are swept back to claimable first, so a
// job whose workers all died is reported INCOMPLETE (re-drive it), never COMPLETE; any
// FAILED (poison) chunk fails the job, by name.

import type { ChunkRow, Ledger, StatusCounts } from '../ledger/index.ts';

export interface VerifyResult {
  status: 'COMPLETE' | 'INCOMPLETE' | 'FAILED';
  counts: StatusCounts;
  poison: Pick<ChunkRow, 'chunkId' | 'attempts' | 'lastError'>[];
  swept: { expired: number; failed: number };
}

export async function verifyJob(
  ledger: Ledger,
  jobId: string,
  o: { now?: number } = {},
): Promise<VerifyResult> {
  const swept = await ledger.sweep(jobId, o);
  const counts = await ledger.counts(jobId);
  const poison: VerifyResult['poison'] = [];
  if (counts.FAILED > 0) {
    for await (const row of ledger.list(jobId, 'FAILED')) {
      poison.push({ chunkId: row.chunkId, attempts: row.attempts, lastError: row.lastError });
    }
  }
  const status =
    counts.FAILED > 0 ? 'FAILED' : counts.PENDING + counts.RUNNING > 0 ? 'INCOMPLETE' : 'COMPLETE';
  return { status, counts, poison, swept };
}

/** One line per poison chunk, for error messages and reports. */
export function describePoison(poison: VerifyResult['poison'], limit = 10): string {
  const lines = poison
    .slice(0, limit)
    .map(
      (p) =>
        `  chunk ${p.chunkId}: failed ${p.attempts} attempt(s); last error: ${p.lastError ?? 'unknown'}`,
    );
  if (poison.length > limit) lines.push(`  ... and ${poison.length - limit} more`);
  return lines.join('\n');
}
