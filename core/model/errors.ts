/** Failures of the model runner, one class per thing a caller can act on. */

/** The model bytes do not match the pinned sha256: wrong or modified file. */
export class ModelChecksumError extends Error {
  override readonly name = 'ModelChecksumError';
  constructor(
    readonly model: string,
    readonly expected: string,
    readonly actual: string,
  ) {
    super(
      `model ${model}: sha256 mismatch, expected ${expected} but the file hashes to ${actual}. ` +
        'If the model was replaced on purpose, update model.sha256 to the new hash; ' +
        'otherwise restore the file the hash was pinned for.',
    );
  }
}

/** The model cannot be read or is not a usable ONNX model for this runner. */
export class ModelLoadError extends Error {
  override readonly name = 'ModelLoadError';
  constructor(
    readonly model: string,
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`model ${model}: ${detail}`, options);
  }
}

/** The caller's batch does not match the dims it claims. */
export class ModelInputError extends Error {
  override readonly name = 'ModelInputError';
  constructor(
    readonly model: string,
    readonly detail: string,
  ) {
    super(`model ${model}: ${detail}`);
  }
}

/** onnxruntime failed while running a batch. */
export class ModelRunError extends Error {
  override readonly name = 'ModelRunError';
  constructor(
    readonly model: string,
    readonly inputDims: readonly number[],
    readonly detail: string,
    options?: { cause?: unknown },
  ) {
    super(`model ${model}: ${detail}`, options);
  }
}

/** The model ran but returned a tensor of the wrong shape or type. */
export class ModelOutputError extends Error {
  override readonly name = 'ModelOutputError';
  constructor(
    readonly model: string,
    readonly expectedDims: readonly (number | string)[],
    readonly actualDims: readonly number[],
    readonly detail: string,
  ) {
    super(
      `model ${model}: output has dims [${actualDims.join(', ')}], expected ` +
        `[${expectedDims.join(', ')}]. ${detail}`,
    );
  }
}
