// Reading a job's model file with a size cap. A manifest comes from another team, and
// model.url may name anything readable: a worker checks the size before loading it, so a
// multi-gigabyte object (a volume named by mistake, or on purpose) fails the worker at
// once with a message, instead of exhausting memory or downloading for minutes.
//
//   local path / file://  →  stat, then read
//   s3:// (any registered scheme)  →  one 1-byte ranged read at offset `limit`: any byte
//                                     there means too large; otherwise read it whole

import { readFile, stat } from 'node:fs/promises';
import { localPathOf } from '../manifest/url.ts';
import { openStoreForUrl } from '../store/index.ts';
import { ModelTooLargeError } from './errors.ts';

/** Default cap on model files: ONNX's own protobuf limit (2 GiB). */
export const DEFAULT_MAX_MODEL_BYTES = 2 * 1024 ** 3;

export interface ModelSourceOptions {
  /** Directory relative model paths resolve against (the manifest's). */
  readonly baseDir?: string;
  /** Largest file accepted, in bytes (default DEFAULT_MAX_MODEL_BYTES). */
  readonly maxBytes?: number;
  /** The setting that changes the cap, for the error (e.g. an environment variable). */
  readonly setting?: string;
}

const DEFAULT_SETTING = "the worker's model size limit";

/** model.url names a store (s3://), and this process reads models only from local files. */
export class ModelNotLocalError extends Error {
  override readonly name = 'ModelNotLocalError';
  constructor(readonly url: string) {
    super(
      `model.url ${url}: a local run reads models from local paths; download it or run in the cloud`,
    );
  }
}

/**
 * The local file model.url names: the one path the size check stats and the loader opens
 * (localPathOf: relative to `baseDir`, file:// percent-decoded). ModelNotLocalError for a
 * store URL.
 */
export function resolveModelPath(url: string, baseDir?: string): string {
  const path = localPathOf(url, baseDir);
  if (path === undefined) throw new ModelNotLocalError(url);
  return path;
}

/**
 * Throws ModelTooLargeError when the local model file at `url` is over the cap; returns
 * its resolved path (resolveModelPath), the one to open. A missing file is left to the
 * loader (which names it).
 */
export async function checkLocalModelSize(
  url: string,
  o: ModelSourceOptions = {},
): Promise<string> {
  const limit = o.maxBytes ?? DEFAULT_MAX_MODEL_BYTES;
  const path = resolveModelPath(url, o.baseDir);
  const size = await stat(path).then(
    (s) => s.size,
    (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') return undefined;
      throw error;
    },
  );
  if (size !== undefined && size > limit)
    throw new ModelTooLargeError(url, size, limit, o.setting ?? DEFAULT_SETTING);
  return path;
}

/**
 * The model's bytes, refused with ModelTooLargeError before it is downloaded when over
 * the cap. Undefined when no object is there.
 */
export async function readModelBytes(
  url: string,
  o: ModelSourceOptions = {},
): Promise<Uint8Array | undefined> {
  const limit = o.maxBytes ?? DEFAULT_MAX_MODEL_BYTES;
  if (localPathOf(url, o.baseDir) !== undefined) {
    const path = await checkLocalModelSize(url, o);
    return readFile(path).then(
      (b) => new Uint8Array(b.buffer, b.byteOffset, b.byteLength),
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'ENOENT') return undefined;
        throw error;
      },
    );
  }
  const slash = url.lastIndexOf('/');
  const store = openStoreForUrl(url.slice(0, slash));
  const key = `/${url.slice(slash + 1)}` as const;
  if (store.getRange) {
    const beyond = await store.getRange(key, { offset: limit, length: 1 });
    if (beyond === undefined) return undefined;
    if (beyond.byteLength > 0)
      throw new ModelTooLargeError(url, undefined, limit, o.setting ?? DEFAULT_SETTING);
  }
  const bytes = await store.get(key);
  // A store without ranged reads, or an object replaced in between: check what came.
  if (bytes !== undefined && bytes.byteLength > limit)
    throw new ModelTooLargeError(url, bytes.byteLength, limit, o.setting ?? DEFAULT_SETTING);
  return bytes;
}
