// Errors a caller of the volume module can act on. Each names the array (store
// location + array path) and says what to do.

import type { Box } from '../geometry/index.ts';

/** No Zarr array where one was expected. */
export class VolumeNotFoundError extends Error {
  override readonly name = 'VolumeNotFoundError';
  constructor(
    readonly location: string,
    readonly arrayPath: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `No Zarr array at ${where(location, arrayPath)}: ${detail}. Check that the URL points at the Zarr store (the directory or prefix holding zarr.json or .zarray) and that the array path names an array inside it (for OME-Zarr usually "0").`,
      options,
    );
  }
}

/**
 * The part of an array's metadata at fault, by its Zarr v3 key (a v2 array's `dtype`,
 * `chunks` and `compressor`/`filters` map to data_type, chunk_grid and codecs; the
 * message names the key as written). 'metadata': the document as a whole.
 */
export type VolumeFormatField =
  | 'shape'
  | 'data_type'
  | 'chunk_grid'
  | 'chunk_key_encoding'
  | 'fill_value'
  | 'codecs'
  | 'metadata';

/** An array Tessera cannot use: wrong rank, unsupported data type, unusable metadata. */
export class VolumeFormatError extends Error {
  override readonly name = 'VolumeFormatError';
  constructor(
    readonly location: string,
    readonly arrayPath: string,
    readonly field: VolumeFormatField,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Unsupported Zarr array at ${where(location, arrayPath)}: ${detail}`, options);
  }
}

/**
 * Reading a box failed. `reason` separates bad data (a corrupt or truncated chunk:
 * retrying will not help, the input must be repaired) from I/O failures (may pass on retry).
 */
export class VolumeReadError extends Error {
  override readonly name = 'VolumeReadError';
  constructor(
    readonly location: string,
    readonly arrayPath: string,
    readonly box: Box,
    readonly reason: 'corrupt-chunk' | 'io',
    detail: string,
    /** `advice` replaces the reason's usual "what to do" (a chunk the metadata misdescribes). */
    options?: { cause?: unknown; advice?: string },
  ) {
    const advice =
      options?.advice ??
      (reason === 'corrupt-chunk'
        ? 'The chunk bytes are damaged: re-create or re-upload that chunk of the input.'
        : 'Check that the storage is reachable and readable, then retry.');
    super(
      `Reading box ${box} of the Zarr array at ${where(location, arrayPath)} failed: ${detail}. ${advice}`,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
  }
}

/** An existing output array whose metadata differs from what this run would write. */
export class OutputMismatchError extends Error {
  override readonly name = 'OutputMismatchError';
  constructor(
    readonly location: string,
    readonly field: string,
    readonly expected: unknown,
    readonly actual: unknown,
  ) {
    super(
      `The output at ${location} already holds a Zarr array whose ${field} is ${JSON.stringify(actual)}, but this run writes ${JSON.stringify(expected)}. Choose another output.url, or delete the old output if it is no longer needed.`,
    );
  }
}

/** The output belongs to another job (recorded in its attributes): never written into. */
export class OutputOwnedError extends Error {
  override readonly name = 'OutputOwnedError';
  constructor(
    readonly location: string,
    /** The job the output belongs to. */
    readonly owner: string,
    /** The job that was refused. */
    readonly jobId: string,
  ) {
    super(
      `The output at ${location} belongs to job "${owner}", so job "${jobId}" may not write there: ` +
        'two jobs never share an output (their blocks would mix). Choose another output.url, or, once ' +
        `job "${owner}" is finished, delete its output and run this job again.`,
    );
  }
}

/** A block handed to `writeBlock` that does not match the block it claims to be. */
export class InvalidBlockError extends Error {
  override readonly name = 'InvalidBlockError';
  constructor(
    readonly location: string,
    readonly coord: readonly number[],
    detail: string,
  ) {
    super(`Cannot write block [${coord.join(', ')}] of the output at ${location}: ${detail}`);
  }
}

/** Encoding or storing an output block failed. */
export class VolumeWriteError extends Error {
  override readonly name = 'VolumeWriteError';
  constructor(
    readonly location: string,
    readonly key: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Writing ${key} of the output at ${location} failed: ${detail}`, options);
  }
}

/**
 * A shard's index (Zarr v3 `sharding_indexed`: the table of inner chunks at the end of the
 * shard object) that cannot be trusted: cut short, failing its CRC-32C, or pointing
 * outside the shard. Without it no inner chunk of the shard can be found.
 */
export class ShardIndexError extends Error {
  override readonly name = 'ShardIndexError';
  constructor(
    readonly location: string,
    readonly key: string,
    readonly problem: 'length' | 'checksum' | 'entry',
    detail: string,
  ) {
    super(
      `The shard index of ${key} in the output at ${location} is damaged: ${detail}. ` +
        'The shard must be written again: run `tessera verify` on the job to re-run the chunks that write it.',
    );
  }
}

/**
 * A single block written into a sharded output whose shard holds other blocks too: a
 * shard is one object, so writing one block would drop its neighbours. Whole shards are
 * written with `writeShard`.
 */
export class ShardedWriteError extends Error {
  override readonly name = 'ShardedWriteError';
  constructor(
    readonly location: string,
    readonly coord: readonly number[],
    readonly shard: readonly number[],
    detail: string,
  ) {
    super(
      `Cannot write block [${coord.join(', ')}] of the sharded output at ${location} on its own: ${detail}. ` +
        `Write its whole shard [${shard.join(', ')}] with writeShard.`,
    );
  }
}

function where(location: string, arrayPath: string): string {
  const path = arrayPath.replace(/^\/+/, '');
  return path === '' ? location : `${location.replace(/\/+$/, '')}/${path} (array path "${path}")`;
}

/** The formats `input.url` may hold, for messages that send the user elsewhere. */
export const READABLE_FORMATS =
  'Zarr v3 or v2 (OME-Zarr included), N5, and Neuroglancer precomputed';

/**
 * The input is something Tessera does not read (an HDF5 file, a TIFF stack, an N5
 * container without dataset attributes, ...). `found` says what was recognised there.
 */
export class UnsupportedInputError extends Error {
  override readonly name = 'UnsupportedInputError';
  constructor(
    readonly location: string,
    readonly arrayPath: string,
    /** What is there, in words: 'an HDF5 file (signature \x89HDF)'. */
    readonly found: string,
    /** What to do instead; by default, convert it. */
    advice?: string,
  ) {
    super(
      `Cannot read the input at ${where(location, arrayPath)}: it is ${found}. Tessera reads ${READABLE_FORMATS}. ${
        advice ??
        'Convert it to OME-Zarr first: tessera convert <input> <output.zarr> [--dataset /path] (HDF5 datasets, TIFF stacks and multipage TIFFs), then set input.url to the .zarr.'
      }`,
    );
  }
}

/** `input.t` or `input.channels` does not fit the image (an index out of range, a missing time index). */
export class InputSelectionError extends Error {
  override readonly name = 'InputSelectionError';
  constructor(
    readonly location: string,
    readonly arrayPath: string,
    /** The manifest field at fault. */
    readonly field: 'input.t' | 'input.channels',
    detail: string,
  ) {
    super(`${field} does not fit the input at ${where(location, arrayPath)}: ${detail}`);
  }
}
