// The claim protocol's vocabulary (core/ledger/port.ts) as expression parts, one part per
// rule, and the two index moves a status change makes.
//
// Clock skew: a lease is written with the OWNER's clock (leaseExpiresAt = its now +
// leaseMs), and a lab box and a Batch child may disagree by seconds. A claimer treats a
// lease as expired only when `leaseExpiresAt + SKEW_MS < now` on ITS clock: every
// condition and key range compares leaseExpiresAt with `expiredBefore = now - SKEW_MS`.

import type { ChunkStatus, Claim } from '../../../core/ledger/port.ts';
import { allOf, atLeast, below, type Cond, equals, type Item } from './expressions.ts';
import { OPEN_PK, OPEN_SK, pendingKey } from './schema.ts';

export const statusIs = (s: ChunkStatus): Cond => equals('status', s);
/** Owner AND token name one tenure; the chunk id guards against a claim for another chunk. */
export const tenureOf = (c: Claim): Cond =>
  allOf(
    statusIs('RUNNING'),
    equals('owner', c.owner),
    equals('token', c.token),
    equals('chunkId', c.chunkId),
  );
/** `expiredBefore` is the claimer's now − SKEW_MS: see the header on clock skew. */
export const leaseExpiredBefore = (expiredBefore: number): Cond =>
  below('leaseExpiresAt', expiredBefore);
export const attemptsLeft = (max: number): Cond => below('attempts', max);
export const attemptsUsedUp = (max: number): Cond => atLeast('attempts', max);
/**
 * The expired lease a sweeper (or a claimer) saw is still the row's: same tenure, still
 * expired, and its attempts on the side `attempts` asks for (poison or re-drive).
 */
export const expiredLeaseOf = (token: number, expiredBefore: number, attempts: Cond): Cond =>
  allOf(statusIs('RUNNING'), equals('token', token), attempts, leaseExpiredBefore(expiredBefore));
/** Nothing moved since the claimer read the row: the claim is a compare-and-set. */
export const unchangedSince = (r: { token: number; attempts: number }): Cond =>
  allOf(equals('token', r.token), equals('attempts', r.attempts));

/** Leaving the GSI: a finished row must not be read by claimers ever again. */
export const LEAVE_OPEN = ['leaseExpiresAt', OPEN_PK, OPEN_SK];
/** Back to PENDING: the row re-enters its shard's claimable stretch at its index. */
export const reopen = (index: number): Item => ({ [OPEN_SK]: pendingKey(index) });
