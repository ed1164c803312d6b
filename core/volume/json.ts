// Reading and writing the small JSON documents of a Zarr hierarchy (zarr.json, .zattrs).
// Written with one fixed formatting, so rewriting unchanged metadata produces
// identical bytes (every write in Tessera is idempotent).

import type { AbsolutePath, Store } from '../store/index.ts';

export type JsonObject = { [key: string]: unknown };

export const isObject = (value: unknown): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

export const isNumberArray = (value: unknown): value is number[] =>
  Array.isArray(value) && value.every((v) => typeof v === 'number' && Number.isFinite(v));

/** The parsed document, undefined when the key is missing; throws SyntaxError on bad JSON. */
export async function readJson(store: Store, key: AbsolutePath): Promise<unknown> {
  const bytes = await store.get(key);
  return bytes === undefined ? undefined : JSON.parse(new TextDecoder().decode(bytes));
}

export async function writeJson(store: Store, key: AbsolutePath, value: unknown): Promise<void> {
  await store.set(key, new TextEncoder().encode(`${JSON.stringify(value, null, 2)}\n`));
}
