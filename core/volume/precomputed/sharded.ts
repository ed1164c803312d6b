// Reading one chunk of a sharded scale (neuroglancer_uint64_sharded_v1, sharded.md):
//
//   <key>/<shard>.shard   [shard index: 2^minishard_bits × (start, end) uint64le]
//                         [... chunk data and minishard indices, anywhere after it]
//   minishard index       [3, n] uint64le: chunk ids (delta), starts (delta from the
//                         end of the previous chunk), sizes; offsets relative to the
//                         end of the shard index
//
// Two ranged reads per shard index entry and minishard, cached: a chunk read then costs
// one ranged GET of its own bytes.

import { gunzipSync } from 'node:zlib';
import type { AbsolutePath, Store } from '../../store/index.ts';
import { sliceRange } from '../../store/keys.ts';
import { hashedChunkId } from './chunk-id.ts';
import { PrecomputedChunkError } from './errors.ts';
import type { ShardingSpec } from './info.ts';

const MAX_CACHED_MINISHARDS = 4096;

interface Minishard {
  /** chunk id → [start, end) in the shard file. */
  readonly chunks: Map<bigint, readonly [number, number]>;
}

export class ShardedScale {
  private readonly minishards = new Map<string, Promise<Minishard | undefined>>();

  constructor(
    private readonly store: Store,
    private readonly location: string,
    /** The scale's directory inside the store, no slashes around it. */
    private readonly dir: string,
    private readonly scaleKey: string,
    private readonly spec: ShardingSpec,
  ) {}

  /** The chunk's (decoded transport) bytes, or undefined when the shard holds none for it. */
  async chunk(id: bigint): Promise<Uint8Array | undefined> {
    const hashed = hashedChunkId(id, this.spec.preshiftBits, this.spec.hash);
    const minishard = Number(hashed & ((1n << BigInt(this.spec.minishardBits)) - 1n));
    const shard =
      (hashed >> BigInt(this.spec.minishardBits)) & ((1n << BigInt(this.spec.shardBits)) - 1n);
    const file = this.shardFile(shard);
    const cacheKey = `${file}#${minishard}`;
    let entry = this.minishards.get(cacheKey);
    if (entry === undefined) {
      // A worker reads its chunk's region, a few minishards; the cap bounds a long scan.
      if (this.minishards.size >= MAX_CACHED_MINISHARDS) this.minishards.clear();
      entry = this.readMinishard(file, minishard);
      this.minishards.set(cacheKey, entry);
      // A failed read is not cached: the next chunk of it tries again.
      entry.catch(() => this.minishards.delete(cacheKey));
    }
    const found = (await entry)?.chunks.get(id);
    if (found === undefined) return undefined;
    const bytes = await this.range(file, found[0], found[1] - found[0]);
    if (bytes === undefined || bytes.length !== found[1] - found[0])
      throw this.fail(
        file,
        `ends before chunk ${id}'s bytes [${found[0]}, ${found[1]}) that its minishard index lists`,
      );
    return this.spec.dataEncoding === 'gzip' ? this.gunzip(file, bytes, `chunk ${id}`) : bytes;
  }

  private shardFile(shard: bigint): string {
    const digits = Math.ceil(this.spec.shardBits / 4);
    const name = shard.toString(16).padStart(digits, '0');
    return `${this.dir}/${name}.shard`;
  }

  private async readMinishard(file: string, minishard: number): Promise<Minishard | undefined> {
    const indexEnd = 16 * 2 ** this.spec.minishardBits;
    const entry = await this.range(file, 16 * minishard, 16);
    if (entry === undefined) return undefined; // no shard file: no chunk of it was written
    if (entry.length !== 16)
      throw this.fail(
        file,
        `is ${entry.length + 16 * minishard} bytes, shorter than its shard index (${indexEnd} bytes)`,
      );
    const view = new DataView(entry.buffer, entry.byteOffset, 16);
    const start = toNumber(view.getBigUint64(0, true));
    const end = toNumber(view.getBigUint64(8, true));
    if (end < start)
      throw this.fail(
        file,
        `has minishard ${minishard} at [${start}, ${end}): its end is before its start`,
      );
    if (end === start) return { chunks: new Map() };
    let index = await this.range(file, indexEnd + start, end - start);
    if (index === undefined || index.length !== end - start)
      throw this.fail(
        file,
        `ends before minishard ${minishard}'s index [${indexEnd + start}, ${indexEnd + end})`,
      );
    if (this.spec.minishardIndexEncoding === 'gzip')
      index = this.gunzip(file, index, `minishard ${minishard}'s index`);
    if (index.length % 24 !== 0)
      throw this.fail(
        file,
        `has a minishard ${minishard} index of ${index.length} bytes, not a multiple of 24`,
      );
    const n = index.length / 24;
    const iv = new DataView(index.buffer, index.byteOffset, index.byteLength);
    const chunks = new Map<bigint, readonly [number, number]>();
    let id = 0n;
    let at = indexEnd;
    for (let i = 0; i < n; i++) {
      id += iv.getBigUint64(8 * i, true);
      const begin = at + toNumber(iv.getBigUint64(8 * (n + i), true));
      const size = toNumber(iv.getBigUint64(8 * (2 * n + i), true));
      chunks.set(id, [begin, begin + size]);
      at = begin + size;
    }
    return { chunks };
  }

  private async range(
    file: string,
    offset: number,
    length: number,
  ): Promise<Uint8Array | undefined> {
    const key = `/${file}` as AbsolutePath;
    if (this.store.getRange) return this.store.getRange(key, { offset, length });
    const whole = await this.store.get(key);
    return whole === undefined ? undefined : sliceRange(whole, { offset, length });
  }

  private gunzip(file: string, bytes: Uint8Array, what: string): Uint8Array {
    try {
      return gunzipSync(bytes);
    } catch (error) {
      throw this.fail(
        file,
        `holds ${what} that does not gunzip (${(error as Error).message})`,
        error,
      );
    }
  }

  private fail(file: string, detail: string, cause?: unknown): PrecomputedChunkError {
    return new PrecomputedChunkError(
      this.location,
      this.scaleKey,
      file,
      detail,
      cause === undefined ? undefined : { cause },
    );
  }
}

function toNumber(v: bigint): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`offset ${v} is beyond 2^53`);
  return Number(v);
}
