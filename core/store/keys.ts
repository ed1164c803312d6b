// Key hygiene shared by the stores. Stores that map keys onto a filesystem or a key
// prefix must refuse '.'/'..' segments, or a key could escape the store's root.

import { InvalidStoreKeyError } from './errors.ts';
import type { AbsolutePath } from './port.ts';

export function checkKey(key: string): AbsolutePath {
  if (!key.startsWith('/')) throw new InvalidStoreKeyError(key, 'it must start with "/"');
  if (key.length > 1) {
    for (const segment of key.slice(1).split('/')) {
      if (segment === '') throw new InvalidStoreKeyError(key, 'it has an empty segment');
      if (segment === '.' || segment === '..')
        throw new InvalidStoreKeyError(key, `it has a "${segment}" segment`);
    }
  }
  if (key.includes('\\') || key.includes('\0'))
    throw new InvalidStoreKeyError(key, 'it contains a backslash or NUL character');
  return key as AbsolutePath;
}

/** Normalises a key prefix to '' (the root) or 'a/b' (no leading or trailing slash). */
export function normalizePrefix(prefix: string): string {
  const trimmed = prefix.replace(/^\/+|\/+$/g, '');
  if (trimmed !== '') checkKey(`/${trimmed}`);
  return trimmed;
}

/** The bytes of `range` within `bytes` (a whole object), clipped as HTTP ranges are. */
export function sliceRange(
  bytes: Uint8Array,
  range: { offset: number; length: number } | { suffixLength: number },
): Uint8Array {
  if ('suffixLength' in range)
    return bytes.subarray(Math.max(0, bytes.length - range.suffixLength));
  return bytes.subarray(range.offset, range.offset + range.length);
}
