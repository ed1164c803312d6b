// Errors of the Neuroglancer precomputed reader and writer. Each names the volume (its
// location), the file at fault (`info`, a chunk file or a shard) and, where one is
// involved, the scale, and says what to do.

/** The `info` file is missing, not JSON, or describes a volume Tessera cannot read. */
export class PrecomputedInfoError extends Error {
  override readonly name = 'PrecomputedInfoError';
  constructor(
    readonly location: string,
    /** The info key at fault, dotted (`scales[1].encoding`); '' for the file as a whole. */
    readonly field: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Neuroglancer precomputed volume at ${location}: ${field === '' ? 'info' : `info ${field}`} ${detail}`,
      options,
    );
  }
}

/** `input.mip` names no scale of the volume. */
export class PrecomputedScaleError extends Error {
  override readonly name = 'PrecomputedScaleError';
  constructor(
    readonly location: string,
    readonly mip: number | string,
    readonly available: readonly string[],
  ) {
    super(
      `Neuroglancer precomputed volume at ${location} has no scale ${JSON.stringify(mip)} (input.mip): ` +
        `its scales are ${available.map((k, i) => `${i} ("${k}")`).join(', ')}. Give input.mip as one of these indices or keys.`,
    );
  }
}

/**
 * A chunk file or shard whose bytes do not decode as the info says (the file, the scale
 * and the cause named). Bad data: retrying will not help; the file must be rewritten.
 */
export class PrecomputedChunkError extends Error {
  override readonly name = 'PrecomputedChunkError';
  constructor(
    readonly location: string,
    readonly scale: string,
    readonly file: string,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `Neuroglancer precomputed volume at ${location}, scale "${scale}": ${file} ${detail}. The file is damaged or was not written as the info file describes: rewrite it (or the scale).`,
      options,
    );
  }
}
