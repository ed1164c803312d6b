// Looking for work: the sharded claim search over the "open" index, the claim itself,
// and the two ways an expired lease leaves RUNNING (poison at maxAttempts, re-drive
// otherwise), shared by claim and sweep.
//
// A worker starts in the shard of its startIndex (a Batch array child's index) at
// startIndex, then walks the other shards (stealing), each entered at a random row so
// thieves do not all race for one shard's first row; it remembers where it last found
// work and starts there next time. The index only proposes candidates: each claim is a
// conditional write that pins the status, token and attempts it saw, so a stale index
// (GSIs are eventually consistent) costs a retry, never a double claim.

import { QueryCommand, type QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import { type Claim, SKEW_MS } from '../../../core/ledger/port.ts';
import {
  expiredMessage,
  holdsLease,
  isClaimable,
  isPoisoned,
  leaseExpired,
  poisonMessage,
  type RowState,
  startIndexFor,
  toClaim,
} from '../../../core/ledger/protocol.ts';
import {
  attemptsLeft,
  attemptsUsedUp,
  expiredLeaseOf,
  LEAVE_OPEN,
  leaseExpiredBefore,
  reopen,
  statusIs,
  unchangedSince,
} from './conditions.ts';
import { writeRow } from './counted-writes.ts';
import { allOf, Expr } from './expressions.ts';
import type { Candidate, JobMeta } from './items.ts';
import {
  LAST_PENDING_KEY,
  lastExpiredKey,
  leaseKey,
  OPEN_INDEX,
  OPEN_PK,
  OPEN_SK,
  openPk,
  pendingKey,
} from './schema.ts';
import type { LedgerTable } from './table.ts';

/** Small pages: a claimer usually needs one candidate, and ~25 small items are one read unit. */
const CLAIM_PAGE = 25;

/** One contiguous stretch of a shard's index entries: lo ≤ gsk ≤ hi. */
interface Range {
  shard: number;
  lo: string;
  hi: string;
}

/** The claim search of one ledger; remembers, per job and startIndex, where it found work. */
export class ClaimSearch {
  /** Job + startIndex → the shard of the last successful claim: where to look first. */
  private readonly cursors = new Map<string, number>();

  constructor(
    private readonly t: LedgerTable,
    private readonly spread: 'random' | 'ordered',
  ) {}

  async claim(
    job: JobMeta,
    owner: string,
    o: { startIndex?: number; now?: number },
  ): Promise<Claim | undefined> {
    if (job.spec.chunkCount === 0) return undefined;
    const now = o.now ?? Date.now();
    const start = startIndexFor(job.spec, o.startIndex);
    const cursor = `${job.spec.jobId}\u0000${start}`;
    for (const range of this.searchOrder(job, start, this.cursors.get(cursor), now)) {
      for await (const page of this.openPages(job, range)) {
        for (const candidate of page) {
          const claim = await this.tryClaim(job, owner, candidate, now);
          if (claim) {
            this.t.stats.claims++;
            this.cursors.set(cursor, range.shard);
            return claim;
          }
        }
      }
    }
    return undefined;
  }

  /** Reads exactly the expired leases, shard by shard, and moves each on. */
  async sweep(job: JobMeta, now: number): Promise<{ expired: number; failed: number }> {
    const last = lastExpiredKey(now - SKEW_MS);
    let expired = 0;
    let failed = 0;
    for (let shard = 0; last !== undefined && shard < job.shards; shard++) {
      for await (const page of this.openPages(job, { shard, lo: leaseKey(0), hi: last })) {
        for (const c of page) {
          if (isPoisoned(c.state, job.spec, now)) {
            if (await this.poison(job, c, now)) failed++;
          } else if (leaseExpired(c.state, now)) {
            if (await this.expire(job, c, now)) expired++;
          }
        }
      }
    }
    return { expired, failed };
  }

  /**
   * Shard after shard from the one where this claimer last found work (at first: the
   * shard of startIndex), wrapping around. Each shard is searched from an entry row up
   * through its expired leases, then below the entry. The entry is startIndex for the
   * first claim (array children start on distinct rows), and a random row afterwards: a
   * claimer coming back to a shard would otherwise race every other one there for the
   * same lowest PENDING row. Tiny jobs have one row per shard, so their order is exact.
   */
  private *searchOrder(
    job: JobMeta,
    start: number,
    lastShard: number | undefined,
    now: number,
  ): Generator<Range> {
    const S = job.shards;
    const own = start % S;
    const hi = lastExpiredKey(now - SKEW_MS) ?? LAST_PENDING_KEY;
    const first = lastShard ?? own;
    for (let i = 0; i < S; i++) {
      const shard = (first + i) % S;
      const rows = Math.ceil((job.spec.chunkCount - shard) / S);
      let entry = shard === own ? start : shard;
      if (this.spread === 'random' && lastShard !== undefined) {
        entry = shard + S * Math.floor(Math.random() * rows);
      }
      yield { shard, lo: pendingKey(entry), hi };
      if (entry >= S) yield { shard, lo: pendingKey(0), hi: pendingKey(entry - 1) };
    }
  }

  /** Pages of one stretch of a shard's index entries, as claim candidates. */
  private async *openPages(job: JobMeta, range: Range): AsyncGenerator<Candidate[]> {
    const x = new Expr();
    const input: QueryCommandInput = {
      TableName: this.t.name,
      IndexName: OPEN_INDEX,
      KeyConditionExpression:
        `${x.name(OPEN_PK)} = ${x.value(openPk(job.spec.jobId, range.shard))} AND ` +
        `${x.name(OPEN_SK)} BETWEEN ${x.value(range.lo)} AND ${x.value(range.hi)}`,
      ExpressionAttributeNames: x.names,
      ExpressionAttributeValues: x.values,
      Limit: CLAIM_PAGE,
    };
    for (;;) {
      const out = await this.t.doc.send(new QueryCommand(input));
      this.t.stats.pages++;
      const items = out.Items ?? [];
      if (items.length > 0) yield items.map((i) => this.t.items.candidate(i));
      if (!out.LastEvaluatedKey) return;
      input.ExclusiveStartKey = out.LastEvaluatedKey;
    }
  }

  /** One compare-and-set on what the claimer saw; re-judged once from the refusal's row. */
  private async tryClaim(
    job: JobMeta,
    owner: string,
    seen: Candidate,
    now: number,
  ): Promise<Claim | undefined> {
    const { spec } = job;
    let c = seen;
    for (let tries = 0; tries < 2; tries++) {
      if (isPoisoned(c.state, spec, now)) {
        await this.poison(job, c, now);
        return undefined;
      }
      if (!isClaimable(c.state, spec, now)) return undefined;
      const next: RowState = {
        status: 'RUNNING',
        owner,
        leaseExpiresAt: now + spec.leaseMs,
        attempts: c.state.attempts + 1,
        token: c.state.token + 1,
        updatedAt: now,
      };
      const from = c.state.status;
      const r = await writeRow(
        this.t,
        job,
        c.index,
        {
          set: {
            status: 'RUNNING',
            owner,
            leaseExpiresAt: next.leaseExpiresAt!,
            [OPEN_SK]: leaseKey(next.leaseExpiresAt!),
            attempts: next.attempts,
            token: next.token,
            updatedAt: now,
          },
        },
        allOf(
          statusIs(from),
          unchangedSince(c.state),
          attemptsLeft(spec.maxAttempts),
          ...(from === 'RUNNING' ? [leaseExpiredBefore(now - SKEW_MS)] : []),
        ),
        { from, to: 'RUNNING' },
      );
      if (r.ok) return toClaim(spec, c.chunkId, c.index, next);
      this.t.stats.conflicts++;
      if (!r.old) return undefined;
      const fresh = this.t.items.candidate(r.old);
      const mine: Claim = toClaim(spec, c.chunkId, c.index, next);
      // The SDK retried a write whose first response was lost: the claim is already ours.
      if (holdsLease(fresh.state, mine) && fresh.state.leaseExpiresAt === next.leaseExpiresAt) {
        return mine;
      }
      c = fresh;
    }
    return undefined;
  }

  /** A RUNNING row found expired at maxAttempts: its workers died or hung every time. */
  private async poison(job: JobMeta, c: Candidate, now: number): Promise<boolean> {
    const r = await writeRow(
      this.t,
      job,
      c.index,
      {
        set: { status: 'FAILED', lastError: poisonMessage(job.spec, c.state), updatedAt: now },
        remove: LEAVE_OPEN,
      },
      expiredLeaseOf(c.state.token, now - SKEW_MS, attemptsUsedUp(job.spec.maxAttempts)),
      { from: 'RUNNING', to: 'FAILED' },
    );
    if (r.ok) this.t.stats.poisoned++;
    return r.ok;
  }

  /** Sweep's re-drive of one expired lease with attempts left. */
  private async expire(job: JobMeta, c: Candidate, now: number): Promise<boolean> {
    const r = await writeRow(
      this.t,
      job,
      c.index,
      {
        set: {
          status: 'PENDING',
          lastError: expiredMessage(c.state),
          ...reopen(c.index),
          updatedAt: now,
        },
        remove: ['owner', 'leaseExpiresAt'],
      },
      expiredLeaseOf(c.state.token, now - SKEW_MS, attemptsLeft(job.spec.maxAttempts)),
      { from: 'RUNNING', to: 'PENDING' },
    );
    return r.ok;
  }
}
