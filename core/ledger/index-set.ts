// A set of chunk indices 0..n-1 with O(log₃₂ n) add, delete and "next member ≥ i": the
// claimable chunks of a job with 10^6 chunks, found without scanning rows. Level 0 holds
// one bit per index; each level above holds one bit per non-empty word below, so a search
// skips 32^k empty indices per word it reads at level k. 10^6 indices cost ~128 KB.
//
//   level 2  [1·······]
//   level 1  [1·1·····][········]…
//   level 0  [0100…][0000…][1000…]…   bit i = index i is in the set

const lowestBit = (w: number): number => 31 - Math.clz32(w & -w);

export class IndexSet {
  private readonly levels: Uint32Array[] = [];
  private count = 0;

  /** `full`: start with every index 0..n-1 in the set (a fresh job: all PENDING). */
  constructor(
    readonly capacity: number,
    full = false,
  ) {
    let bits = Math.max(capacity, 1);
    do {
      const words = Math.ceil(bits / 32);
      this.levels.push(new Uint32Array(words));
      bits = words;
    } while (bits > 1);
    if (full) this.fill();
  }

  get size(): number {
    return this.count;
  }

  has(i: number): boolean {
    const w = this.levels[0]![i >>> 5] ?? 0;
    return i >= 0 && i < this.capacity && (w & (1 << (i & 31))) !== 0;
  }

  add(i: number): void {
    if (i < 0 || i >= this.capacity || this.has(i)) return;
    this.count++;
    let pos = i;
    for (const words of this.levels) {
      const wi = pos >>> 5;
      const wasEmpty = words[wi] === 0;
      words[wi]! |= 1 << (pos & 31);
      if (!wasEmpty) return;
      pos = wi;
    }
  }

  delete(i: number): void {
    if (!this.has(i)) return;
    this.count--;
    let pos = i;
    for (const words of this.levels) {
      const wi = pos >>> 5;
      words[wi]! &= ~(1 << (pos & 31));
      if (words[wi] !== 0) return;
      pos = wi;
    }
  }

  /** Smallest member ≥ from, or -1. */
  next(from: number): number {
    return from < this.capacity ? this.nextAt(0, Math.max(from, 0)) : -1;
  }

  /** Smallest member ≥ from, else the smallest member overall (a ring), or -1 if empty. */
  nextWrapping(from: number): number {
    const i = this.next(from);
    return i >= 0 ? i : this.next(0);
  }

  *[Symbol.iterator](): IterableIterator<number> {
    for (let i = this.next(0); i >= 0; i = this.next(i + 1)) yield i;
  }

  private nextAt(level: number, from: number): number {
    const words = this.levels[level]!;
    let wi = from >>> 5;
    if (wi >= words.length) return -1;
    const m = words[wi]! & (~0 << (from & 31));
    if (m !== 0) return (wi << 5) + lowestBit(m);
    if (level + 1 === this.levels.length) {
      // The top level is a single word; this loop runs at most once past it.
      for (wi++; wi < words.length; wi++)
        if (words[wi] !== 0) return (wi << 5) + lowestBit(words[wi]!);
      return -1;
    }
    const up = this.nextAt(level + 1, wi + 1);
    return up < 0 ? -1 : (up << 5) + lowestBit(words[up]!);
  }

  private fill(): void {
    let bits = this.capacity;
    for (const words of this.levels) {
      words.fill(0xffffffff, 0, bits >>> 5);
      if (bits & 31) words[bits >>> 5] = (1 << (bits & 31)) - 1;
      bits = Math.ceil(bits / 32);
      if (this.capacity === 0) break;
    }
    this.count = this.capacity;
  }
}
