// From a storage URL to a Store. Local paths and file:// are built in; every other
// scheme comes from a registry, so the AWS adapter can plug in `s3` without core
// importing the AWS SDK:
//
//   registerStoreScheme('s3', (url) => new S3Store(parseS3Url(url)));   // adapters/aws
//   const store = openStoreForUrl(manifest.output.url, { baseDir });     // core

import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidStoreUrlError, UnsupportedStoreSchemeError } from './errors.ts';
import { LocalStore, type LocalStoreOptions } from './local.ts';
import type { Store } from './port.ts';

export interface OpenStoreOptions {
  /** Directory that relative paths are resolved against (the manifest's); default cwd. */
  readonly baseDir?: string;
  /** Passed to LocalStore for local paths. */
  readonly local?: LocalStoreOptions;
}

export type StoreFactory = (url: string, options: OpenStoreOptions) => Store;

const factories = new Map<string, StoreFactory>();
const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;

/**
 * Makes `scheme://...` URLs open through `factory`. Registering a scheme again
 * replaces the earlier factory (tests swap in fakes); `file` is built in.
 */
export function registerStoreScheme(scheme: string, factory: StoreFactory): void {
  const name = scheme.toLowerCase().replace(/:(\/\/)?$/, '');
  if (name === 'file') throw new TypeError('file:// is built in and cannot be replaced');
  factories.set(name, factory);
}

/** Removes a registered scheme; returns whether one was registered. */
export function unregisterStoreScheme(scheme: string): boolean {
  return factories.delete(scheme.toLowerCase());
}

export function registeredStoreSchemes(): string[] {
  return [...factories.keys()].sort();
}

/** Opens the store a URL names: a local path (relative to baseDir), file://, or a registered scheme. */
export function openStoreForUrl(spelled: string, options: OpenStoreOptions = {}): Store {
  // Neuroglancer's `precomputed://` says what the data is, not where: the store is the URL after it.
  const url = spelled.replace(/^precomputed:\/\//i, '');
  if (url.trim() === '') throw new InvalidStoreUrlError(spelled, 'it is empty');
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) {
    const base = options.baseDir ?? process.cwd();
    return new LocalStore(isAbsolute(url) ? url : resolve(base, url), options.local);
  }
  if (scheme === 'file') return new LocalStore(fileUrlPath(url), options.local);
  const factory = factories.get(scheme);
  if (factory === undefined)
    throw new UnsupportedStoreSchemeError(url, scheme, registeredStoreSchemes());
  return factory(url, options);
}

function fileUrlPath(url: string): string {
  try {
    return fileURLToPath(new URL(url));
  } catch (error) {
    // URL and fileURLToPath report malformed input (a host, an encoded '/') as TypeError.
    if (!(error instanceof TypeError)) throw error;
    throw new InvalidStoreUrlError(url, `${error.message}; write file:///absolute/path`, {
      cause: error,
    });
  }
}
