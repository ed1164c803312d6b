// An in-memory store for unit tests and small demos. Values are copied in and out, so
// a caller mutating a buffer after `set` (zarrita's bytes codec hands out views over
// chunk data) can never change what is stored.

import { checkKey, sliceRange } from './keys.ts';
import type { AbsolutePath, ListedObject, RangeQuery, Store } from './port.ts';

export class MemoryStore implements Store {
  readonly location: string;
  private readonly objects = new Map<AbsolutePath, Uint8Array>();

  constructor(location = 'memory://') {
    this.location = location;
  }

  async get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    return this.objects.get(checkKey(key))?.slice();
  }

  async getRange(key: AbsolutePath, range: RangeQuery): Promise<Uint8Array | undefined> {
    const bytes = this.objects.get(checkKey(key));
    return bytes === undefined ? undefined : sliceRange(bytes, range).slice();
  }

  async set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    this.objects.set(checkKey(key), value.slice());
  }

  async delete(key: AbsolutePath): Promise<void> {
    this.objects.delete(checkKey(key));
  }

  async *list(prefix: string): AsyncIterable<AbsolutePath> {
    for (const key of [...this.objects.keys()]) if (key.startsWith(prefix)) yield key;
  }

  async *listWithSizes(prefix: string): AsyncIterable<ListedObject> {
    for (const [key, bytes] of [...this.objects])
      if (key.startsWith(prefix)) yield { key, size: bytes.byteLength };
  }

  /** Number of stored objects (tests count writes with it). */
  get size(): number {
    return this.objects.size;
  }
}
