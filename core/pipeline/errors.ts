// Failures of pipeline steps that a caller (CLI, Lambda, container) maps to a job outcome.

import type { EnvironmentFault, PausedStep } from './fault.ts';

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

/**
 * A chunk's input holds NaN while input.nan is "fail": found when the chunk is read,
 * before inference, so the model is never run on it (nor blamed for it).
 */
export class NanInputError extends Error {
  override readonly name = 'NanInputError';
  constructor(
    readonly chunkId: string,
    readonly nanCount: number,
    readonly voxels: number,
  ) {
    super(
      `chunk ${chunkId}: its input holds ${nanCount} NaN voxel(s) of ${voxels} (a float input's own NaN, ` +
        'or the NaN fill_value of input chunks never written) and input.nan is "fail"; set ' +
        'input.nan: "zero" in the manifest to feed them to the model as 0, or fix the input',
    );
  }
}

/** The input normalisation cannot be decided at plan time (input.normalize over a degenerate sample). */
export class InputNormalisationError extends Error {
  override readonly name = 'InputNormalisationError';
  constructor(
    message: string,
    /** The manifest field to change. */
    readonly field: string,
  ) {
    super(message);
  }
}

/**
 * A step kept failing for the place's fault (disk full, I/O, permissions, throttling, a
 * ledger that cannot record) through the whole pause, or the ledger's process is gone.
 * Not the chunk's fault: no attempt is spent.
 */
export class EnvironmentFaultError extends Error {
  override readonly name = 'EnvironmentFaultError';
  constructor(
    readonly fault: EnvironmentFault,
    readonly step: PausedStep,
    /** How long the step was retried before giving up (0: not at all). */
    readonly pausedMs: number,
    options?: { cause?: unknown },
  ) {
    const waited = pausedMs > 0 ? ` for ${+(pausedMs / 1000).toFixed(1)} s` : '';
    super(`${step.what} in ${step.place} failed${waited}: ${fault.message}`, options);
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

/** The model file is larger than a worker will load (see readModelBytes). */
export class ModelTooLargeError extends Error {
  override readonly name = 'ModelTooLargeError';
  constructor(
    readonly url: string,
    /** Its size in bytes when known; undefined when only "over the limit" was checked. */
    readonly size: number | undefined,
    readonly limit: number,
    readonly setting: string,
  ) {
    super(
      `model.url ${url} is ${size === undefined ? 'larger than' : `${size} bytes, over`} the ` +
        `${limit}-byte (${humanBytes(limit)}) limit on model files. Check that model.url names the ` +
        'model and not a data file; ONNX files cannot exceed 2 GiB anyway (larger models keep ' +
        `their weights as external data). To allow bigger models, raise ${setting} (bytes).`,
    );
  }
}

function humanBytes(bytes: number): string {
  const unit = bytes >= 1024 ** 3 ? 3 : bytes >= 1024 ** 2 ? 2 : 1;
  return `${+(bytes / 1024 ** unit).toFixed(2)} ${['', 'KiB', 'MiB', 'GiB'][unit]}`;
}

/** The input opened now is not the one the job was planned for (see job-description.ts). */
export class InputChangedError extends Error {
  override readonly name = 'InputChangedError';
  constructor(
    message: string,
    readonly jobId: string,
    readonly field: 'shape' | 'dtype',
  ) {
    super(message);
  }
}

/** This release plans the job differently from the plan it was created with. */
export class PlanChangedError extends Error {
  override readonly name = 'PlanChangedError';
  constructor(
    message: string,
    readonly jobId: string,
  ) {
    super(message);
  }
}

/** The job's frozen description cannot be read (not JSON, or not a description). */
export class JobDescriptionError extends Error {
  override readonly name = 'JobDescriptionError';
  constructor(
    message: string,
    /** The description's place (work store location + key). */
    readonly where: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
