// Min-heap of leases by expiry: the earliest lease is the only one a claim or sweep must
// look at to know whether any lease has expired, whatever clock the caller brings.
// Entries are never updated in place: a heartbeat or a transition pushes a new entry and
// the old one goes stale; `isLive` lets the owner discard stale entries lazily.

export interface LeaseEntry {
  readonly expiresAt: number;
  readonly index: number;
  readonly token: number;
}

export class LeaseHeap {
  private items: LeaseEntry[] = [];

  get size(): number {
    return this.items.length;
  }

  push(e: LeaseEntry): void {
    const a = this.items;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p]!.expiresAt <= e.expiresAt) break;
      a[i] = a[p]!;
      i = p;
    }
    a[i] = e;
  }

  /** Earliest live entry, dropping stale ones on the way. */
  peek(isLive: (e: LeaseEntry) => boolean): LeaseEntry | undefined {
    while (this.items.length > 0) {
      const top = this.items[0]!;
      if (isLive(top)) return top;
      this.pop();
    }
    return undefined;
  }

  pop(): LeaseEntry | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && a[r]!.expiresAt < a[l]!.expiresAt ? r : l;
      if (a[c]!.expiresAt >= last.expiresAt) break;
      a[i] = a[c]!;
      i = c;
    }
    a[i] = last;
    return top;
  }

  /** Drops stale entries when they outnumber live ones, so heartbeats cannot grow it unboundedly. */
  compact(isLive: (e: LeaseEntry) => boolean, live: number): void {
    if (this.items.length <= 2 * live + 64) return;
    const keep = this.items.filter(isLive);
    this.items = [];
    for (const e of keep) this.push(e);
  }
}
