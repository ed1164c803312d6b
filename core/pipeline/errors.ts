// Failures of pipeline steps that a caller (CLI, Lambda, container) maps to a job outcome.

export class ChunkFailure extends Error {
  override readonly name = 'ChunkFailure';
  constructor(
    message: string,
    readonly chunkId: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export class MissingPartialError extends Error {
  override readonly name = 'MissingPartialError';
  constructor(
    readonly blockKey: string,
    readonly chunkId: string,
    readonly key: string,
  ) {
    super(
      `seam block ${blockKey} needs the partial of chunk ${chunkId} (${key}), which is missing; ` +
        'the chunk is not DONE or its output was deleted — re-run the job to recompute it',
    );
  }
}
