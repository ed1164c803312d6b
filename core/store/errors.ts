// Errors a caller of the store module can act on.

export class InvalidStoreKeyError extends Error {
  override readonly name = 'InvalidStoreKeyError';
  constructor(
    readonly key: string,
    readonly reason: string,
  ) {
    super(
      `Invalid store key "${key}": ${reason}. Keys are absolute '/'-separated paths without '.', '..' or empty segments.`,
    );
  }
}

/** A URL whose scheme no store is registered for (e.g. s3:// before the AWS adapter is loaded). */
export class UnsupportedStoreSchemeError extends Error {
  override readonly name = 'UnsupportedStoreSchemeError';
  constructor(
    readonly url: string,
    readonly scheme: string,
    readonly registered: readonly string[],
  ) {
    const known = ['file', ...registered].map((s) => `${s}://`).join(', ');
    const hint =
      scheme === 's3'
        ? 'S3 storage needs the AWS adapter: register it with registerStoreScheme("s3", ...) (the AWS adapter module does this) before opening s3:// URLs.'
        : `Use a local path or one of: ${known}.`;
    super(`Cannot open "${url}": no store is registered for "${scheme}://". ${hint}`);
  }
}

export class InvalidStoreUrlError extends Error {
  override readonly name = 'InvalidStoreUrlError';
  constructor(
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`Invalid storage URL "${url}": ${reason}.`, options);
  }
}

/** An optional store operation (list, delete) that this store does not offer. */
export class StoreCapabilityError extends Error {
  override readonly name = 'StoreCapabilityError';
  readonly location: string;
  constructor(
    store: { readonly location?: string },
    readonly capability: 'list' | 'listWithSizes' | 'delete' | 'getRange',
  ) {
    const location = store.location ?? 'the store';
    const what = capability === 'listWithSizes' ? 'list objects with their sizes' : capability;
    super(`The store at ${location} cannot ${what}; use a store adapter that supports it.`);
    this.location = location;
  }
}
