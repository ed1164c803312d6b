// Items read back from the table, parsed into the port's values. Every field is checked
// for the type this adapter writes: an item of another shape (a table shared with
// something else, or edited by hand) is a LedgerItemInvalidError naming its key and field.

import {
  CHUNK_STATUSES,
  type ChunkRow,
  type ChunkStatus,
  type JobSpec,
} from '../../../core/ledger/port.ts';
import type { RowState } from '../../../core/ledger/protocol.ts';
import { LedgerItemInvalidError } from '../dynamo-errors.ts';
import type { Item } from './expressions.ts';
import { CHUNK_PREFIX, PK, SK } from './schema.ts';

/**
 * A job row: the spec, how many shards its index entries and counters use, and over how
 * many partition keys its chunk rows are spread (1 for jobs planned before partitions).
 */
export interface JobMeta {
  spec: JobSpec;
  shards: number;
  partitions: number;
}

/** What the GSI tells a claimer about a row (its projection). */
export interface Candidate {
  index: number;
  chunkId: string;
  state: RowState;
}

/** The parsers of one table's items (the table is named in every refusal). */
export class Items {
  constructor(private readonly table: string) {}

  job(item: Item): { meta: JobMeta; complete: boolean } {
    const spec: JobSpec = {
      jobId: this.str(item, 'jobId'),
      chunkCount: this.num(item, 'chunkCount'),
      maxAttempts: this.num(item, 'maxAttempts'),
      leaseMs: this.num(item, 'leaseMs'),
      createdAt: this.num(item, 'createdAt'),
    };
    const attributes: unknown = item.attributes;
    if (attributes !== undefined) spec.attributes = attributes as JobSpec['attributes'];
    return {
      meta: {
        spec,
        shards: this.num(item, 'shards'),
        partitions: item.partitions === undefined ? 1 : this.num(item, 'partitions'),
      },
      complete: item.planComplete === true,
    };
  }

  row(jobId: string, item: Item): ChunkRow {
    const row: ChunkRow = {
      jobId,
      chunkId: this.str(item, 'chunkId'),
      index: this.num(item, 'index'),
      status: this.status(item),
      attempts: this.num(item, 'attempts'),
      token: this.num(item, 'token'),
      updatedAt: this.num(item, 'updatedAt'),
    };
    if (item.owner !== undefined) row.owner = this.str(item, 'owner');
    if (item.leaseExpiresAt !== undefined) row.leaseExpiresAt = this.num(item, 'leaseExpiresAt');
    if (item.lastError !== undefined) row.lastError = this.str(item, 'lastError');
    return row;
  }

  /** A GSI entry (or a refusal's ALL_OLD row) as a claim candidate. */
  candidate(item: Item): Candidate {
    const state: RowState = {
      status: this.status(item),
      attempts: this.num(item, 'attempts'),
      token: this.num(item, 'token'),
      // Not projected into the index; no protocol rule reads it.
      updatedAt: 0,
    };
    if (item.owner !== undefined) state.owner = this.str(item, 'owner');
    if (item.leaseExpiresAt !== undefined) state.leaseExpiresAt = this.num(item, 'leaseExpiresAt');
    const index = Number(this.str(item, SK).slice(CHUNK_PREFIX.length));
    if (!Number.isSafeInteger(index)) this.invalid(item, SK, 'is not a chunk key');
    return { index, chunkId: this.str(item, 'chunkId'), state };
  }

  str(item: Item, field: string): string {
    const v: unknown = item[field];
    if (typeof v !== 'string') this.invalid(item, field, `should be a string, got ${typeof v}`);
    return v as string;
  }

  num(item: Item, field: string): number {
    const v: unknown = item[field];
    if (typeof v !== 'number') this.invalid(item, field, `should be a number, got ${typeof v}`);
    return v as number;
  }

  private status(item: Item): ChunkStatus {
    const s = this.str(item, 'status');
    if (!(CHUNK_STATUSES as readonly string[]).includes(s))
      this.invalid(item, 'status', `is "${s}"`);
    return s as ChunkStatus;
  }

  private invalid(item: Item, field: string, detail: string): never {
    throw new LedgerItemInvalidError(
      this.table,
      { pk: String(item[PK]), sk: String(item[SK]) },
      field,
      detail,
    );
  }
}
