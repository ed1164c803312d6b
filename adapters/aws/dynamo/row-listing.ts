// A job's chunk rows in index order, read from its P partition keys (schema.ts). With
// P = 1 that is one Query, as before partitions existed. With P > 1 each key's rows come
// back in index order (sk = C#<index:10>), so the listing merges P sorted streams with a
// heap on their head indices, each stream read a page at a time: memory stays at P pages
// whatever the job's size, and rows come out as soon as every stream has its first page.
//
//   key 0:  C#0  C#3  C#6 …  ─┐
//   key 1:  C#1  C#4  C#7 …  ─┼─ heap of heads ─► 0 1 2 3 4 5 …
//   key 2:  C#2  C#5  C#8 …  ─┘

import type { QueryCommandInput } from '@aws-sdk/lib-dynamodb';
import type { Item } from './expressions.ts';
import type { JobMeta } from './items.ts';
import { partitionPk } from './schema.ts';
import type { LedgerTable } from './table.ts';

/** Rows per page when P streams are open at once (P ≤ MAX_PARTITIONS). */
const MERGE_PAGE_ROWS = 100;
/** First pages requested at once when a merged listing starts. */
const OPENING_IN_FLIGHT = 32;

/** One partition key's Query: the caller's key condition, filter and projection for `pk`. */
export type PartitionQuery = (pk: string) => Omit<QueryCommandInput, 'TableName'>;

/** Every item of the job's chunk-row partitions that `query` selects, in index order. */
export async function* chunkItems(
  t: LedgerTable,
  job: JobMeta,
  query: PartitionQuery,
): AsyncGenerator<Item> {
  const { jobId } = job.spec;
  if (job.partitions <= 1) {
    yield* t.query(query(partitionPk(jobId, 0, 1)));
    return;
  }
  const streams = Array.from({ length: job.partitions }, (_, k) =>
    t.query({ ...query(partitionPk(jobId, k, job.partitions)), Limit: MERGE_PAGE_ROWS }),
  );
  const heap = new HeadHeap();
  for (let k = 0; k < streams.length; k += OPENING_IN_FLIGHT) {
    const opening = streams.slice(k, k + OPENING_IN_FLIGHT);
    const heads = await Promise.all(opening.map((s) => s.next()));
    heads.forEach((h, i) => {
      if (!h.done) heap.push({ item: h.value, index: indexOf(t, h.value), stream: opening[i]! });
    });
  }
  for (let head = heap.pop(); head !== undefined; head = heap.pop()) {
    yield head.item;
    const next = await head.stream.next();
    if (!next.done)
      heap.push({ item: next.value, index: indexOf(t, next.value), stream: head.stream });
  }
}

const indexOf = (t: LedgerTable, item: Item): number => t.items.num(item, 'index');

interface Head {
  item: Item;
  index: number;
  stream: AsyncGenerator<Item>;
}

/** A binary min-heap of stream heads by chunk index. */
class HeadHeap {
  private readonly a: Head[] = [];

  push(h: Head): void {
    const a = this.a;
    a.push(h);
    for (let i = a.length - 1; i > 0; ) {
      const up = (i - 1) >> 1;
      if (a[up]!.index <= a[i]!.index) break;
      [a[up], a[i]] = [a[i]!, a[up]!];
      i = up;
    }
  }

  pop(): Head | undefined {
    const a = this.a;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    a[0] = last;
    for (let i = 0; ; ) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < a.length && a[l]!.index < a[min]!.index) min = l;
      if (r < a.length && a[r]!.index < a[min]!.index) min = r;
      if (min === i) break;
      [a[min], a[i]] = [a[i]!, a[min]!];
      i = min;
    }
    return top;
  }
}
