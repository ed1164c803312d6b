// The storage port: a key → bytes map, nothing more. Shaped like zarrita's own
// AsyncReadable/AsyncWritable so one object serves both Tessera and zarrita.
//
// Keys are absolute, '/'-separated paths ('/0/zarr.json'). A missing object is
// `undefined`, never an exception: absence is a normal answer (an unwritten Zarr
// chunk reads as the fill value, an unfinished block is simply not there yet).

export type AbsolutePath = `/${string}`;

export type RangeQuery = { offset: number; length: number } | { suffixLength: number };

export interface Store {
  /** Where the store points, for messages (a directory, `s3://bucket/prefix`, `memory`). */
  readonly location?: string;
  get(key: AbsolutePath): Promise<Uint8Array | undefined>;
  getRange?(key: AbsolutePath, range: RangeQuery): Promise<Uint8Array | undefined>;
  /** Replaces the whole object; readers never see a partially written one. */
  set(key: AbsolutePath, value: Uint8Array): Promise<void>;
  /** Removes the object; deleting a missing key is not an error. */
  delete?(key: AbsolutePath): Promise<void>;
  /** Every key that starts with `prefix` (a plain string prefix, as in S3), any order. */
  list?(prefix: string): AsyncIterable<AbsolutePath>;
  /**
   * `list` with each object's size in bytes. One listing: S3's ListObjectsV2 carries
   * sizes beside the keys, a directory walk stats what it finds. Lets a check of a whole
   * output (output-check.ts) see an empty or cut-short object without reading it.
   */
  listWithSizes?(prefix: string): AsyncIterable<ListedObject>;
}

/** One object of a listing with sizes. */
export interface ListedObject {
  readonly key: AbsolutePath;
  readonly size: number;
}

/** A store's location for messages, or a neutral word when it has none. */
export function describeStore(store: Store): string {
  return store.location ?? 'the store';
}
