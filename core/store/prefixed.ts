// A view of a store under a key prefix: key '/x' of the view is '/<prefix>/x' of the
// inner store. Lets one bucket store hold the output Zarr and a job's partials side by
// side (`s3://b/out.zarr` and `s3://b/jobs/<id>/partials`) behind one client.

import { StoreCapabilityError } from './errors.ts';
import { checkKey, normalizePrefix, sliceRange } from './keys.ts';
import type { AbsolutePath, ListedObject, RangeQuery, Store } from './port.ts';

export class PrefixedStore implements Store {
  readonly inner: Store;
  /** The prefix without leading or trailing slash; '' is the inner store's root. */
  readonly prefix: string;
  readonly location: string;

  constructor(inner: Store, prefix: string) {
    this.inner = inner;
    this.prefix = normalizePrefix(prefix);
    const base = (inner.location ?? '').replace(/\/+$/, '');
    this.location = this.prefix === '' ? base : `${base}/${this.prefix}`;
  }

  private outer(key: AbsolutePath): AbsolutePath {
    checkKey(key);
    return this.prefix === '' ? key : `/${this.prefix}${key}`;
  }

  get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    return this.inner.get(this.outer(key));
  }

  getRange(key: AbsolutePath, range: RangeQuery): Promise<Uint8Array | undefined> {
    const full = this.outer(key);
    if (this.inner.getRange) return this.inner.getRange(full, range);
    // The port makes ranges optional; answer from the whole object rather than fail.
    return this.inner
      .get(full)
      .then((bytes) => (bytes === undefined ? undefined : sliceRange(bytes, range)));
  }

  set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    return this.inner.set(this.outer(key), value);
  }

  async delete(key: AbsolutePath): Promise<void> {
    if (!this.inner.delete) throw new StoreCapabilityError(this.inner, 'delete');
    await this.inner.delete(this.outer(key));
  }

  async *list(prefix: string): AsyncIterable<AbsolutePath> {
    if (!this.inner.list) throw new StoreCapabilityError(this.inner, 'list');
    const relative = prefix.startsWith('/') ? prefix : `/${prefix}`;
    const head = this.prefix === '' ? '' : `/${this.prefix}`;
    for await (const key of this.inner.list(`${head}${relative}`))
      yield key.slice(head.length) as AbsolutePath;
  }

  async *listWithSizes(prefix: string): AsyncIterable<ListedObject> {
    if (!this.inner.listWithSizes) throw new StoreCapabilityError(this.inner, 'listWithSizes');
    const relative = prefix.startsWith('/') ? prefix : `/${prefix}`;
    const head = this.prefix === '' ? '' : `/${this.prefix}`;
    for await (const o of this.inner.listWithSizes(`${head}${relative}`))
      yield { key: o.key.slice(head.length) as AbsolutePath, size: o.size };
  }
}
