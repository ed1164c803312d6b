// A store on the local filesystem, rooted at a directory: key '/a/b' is file <root>/a/b.
//
// `set` is atomic: bytes go to a temporary file in the target's own directory (same
// filesystem, so rename is atomic), are flushed, and the file is renamed over the
// target. A process killed mid-write leaves at worst a stray temporary file, never a
// torn object that a resumed run would mistake for a finished block.

import { randomBytes } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { checkKey } from './keys.ts';
import type { AbsolutePath, ListedObject, RangeQuery, Store } from './port.ts';

// Temporary files carry this marker so `list` skips them; Zarr's own keys (.zarray,
// .zattrs) also start with a dot, so a leading dot alone cannot mark them.
const TEMP_MARKER = '.tessera-tmp-';

export interface LocalStoreOptions {
  /**
   * fsync each object before renaming it into place (default true), so a completed
   * write survives a power loss, not just a killed process. Tests may turn it off.
   */
  readonly fsync?: boolean;
}

export class LocalStore implements Store {
  readonly root: string;
  readonly location: string;
  private readonly fsync: boolean;

  constructor(root: string, options: LocalStoreOptions = {}) {
    this.root = resolve(root);
    this.location = this.root;
    this.fsync = options.fsync ?? true;
  }

  private path(key: AbsolutePath): string {
    return join(this.root, checkKey(key).slice(1));
  }

  async get(key: AbsolutePath): Promise<Uint8Array | undefined> {
    try {
      const buffer = await readFile(this.path(key));
      return new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength);
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
  }

  async getRange(key: AbsolutePath, range: RangeQuery): Promise<Uint8Array | undefined> {
    let handle: Awaited<ReturnType<typeof open>>;
    try {
      handle = await open(this.path(key), 'r');
    } catch (error) {
      if (isMissing(error)) return undefined;
      throw error;
    }
    try {
      const stat = await handle.stat();
      if (!stat.isFile()) return undefined;
      const size = stat.size;
      const start = 'suffixLength' in range ? Math.max(0, size - range.suffixLength) : range.offset;
      const stop = 'suffixLength' in range ? size : Math.min(size, range.offset + range.length);
      const out = new Uint8Array(Math.max(0, stop - start));
      let done = 0;
      while (done < out.length) {
        const { bytesRead } = await handle.read(out, done, out.length - done, start + done);
        if (bytesRead === 0) break;
        done += bytesRead;
      }
      return out.subarray(0, done);
    } finally {
      await handle.close();
    }
  }

  async set(key: AbsolutePath, value: Uint8Array): Promise<void> {
    const target = this.path(key);
    const dir = dirname(target);
    await makeDir(dir);
    const temp = join(dir, `${TEMP_MARKER}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      const handle = await open(temp, 'w');
      try {
        await handle.writeFile(value);
        if (this.fsync) await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temp, target);
    } catch (error) {
      await rm(temp, { force: true });
      throw error;
    }
  }

  async delete(key: AbsolutePath): Promise<void> {
    try {
      await unlink(this.path(key));
    } catch (error) {
      if (!isMissing(error)) throw error;
    }
  }

  async *list(prefix: string): AsyncIterable<AbsolutePath> {
    // Walk only the deepest directory the prefix fully names, then filter by prefix.
    const normalized = prefix.startsWith('/') ? prefix : `/${prefix}`;
    const dirKey = normalized.slice(0, normalized.lastIndexOf('/') + 1);
    const start = dirKey === '/' ? this.root : this.path(dirKey.slice(0, -1) as AbsolutePath);
    for await (const key of this.walk(start, dirKey)) if (key.startsWith(normalized)) yield key;
  }

  async *listWithSizes(prefix: string): AsyncIterable<ListedObject> {
    for await (const key of this.list(prefix)) {
      let size: number;
      try {
        size = (await stat(this.path(key))).size;
      } catch (error) {
        // Deleted between the walk and the stat: not there, as a later listing would say.
        if (isMissing(error)) continue;
        throw error;
      }
      yield { key, size };
    }
  }

  private async *walk(dir: string, keyPrefix: string): AsyncGenerator<AbsolutePath> {
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (isMissing(error)) return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith(TEMP_MARKER)) continue;
      const key = `${keyPrefix}${entry.name}`;
      if (entry.isDirectory()) yield* this.walk(join(dir, entry.name), `${key}/`);
      else if (entry.isFile()) yield key as AbsolutePath;
    }
  }
}

function errorCode(error: unknown): unknown {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

// As in an object store, a key is missing unless a file holds it: a key below an
// existing object ('/a/b' when '/a' is a file, ENOTDIR) or naming a directory (EISDIR).
const isMissing = (error: unknown): boolean =>
  errorCode(error) === 'ENOENT' || errorCode(error) === 'ENOTDIR' || errorCode(error) === 'EISDIR';

/**
 * mkdir -p that fails with the real cause. On a read-only filesystem (and under some
 * permission setups) a recursive mkdir of a missing directory fails with ENOENT, which
 * names a directory instead of the fault: the first missing level is made on its own,
 * which fails with EROFS or EACCES where that is what is wrong.
 */
async function makeDir(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    let missing = dir;
    for (let up = dirname(missing); up !== missing; missing = up, up = dirname(up)) {
      const exists = await stat(up).then(
        () => true,
        (e: NodeJS.ErrnoException) => {
          if (e.code === 'ENOENT') return false;
          throw e;
        },
      );
      if (exists) break;
    }
    // Throws the real code (EROFS, EACCES, ENOTDIR, …); if it works, the rest can be made.
    await mkdir(missing);
    await mkdir(dir, { recursive: true });
  }
}
