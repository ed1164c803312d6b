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

/** One way a model's declared inputs/outputs disagree with the manifest (or with Tessera). */
export interface ModelIssue {
  /** The manifest field (or worker option) to change, e.g. `model.patchShape`, `model.output`. */
  readonly field: string;
  /** What the model declares, what the manifest says, and the fix; one line. */
  readonly message: string;
}

/**
 * The model's declared signature cannot run this job: every chunk would fail the same
 * way, so this is raised once, at plan and at load, never per chunk. One line per issue.
 */
export class ModelSignatureError extends Error {
  override readonly name = 'ModelSignatureError';
  /** Parallel arrays (not `ModelIssue[]`) so the error crosses the inference thread's boundary. */
  readonly fields: readonly string[];
  readonly problems: readonly string[];
  constructor(
    readonly model: string,
    issues: readonly ModelIssue[],
  ) {
    const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
    super(
      [
        `model ${model} does not fit the manifest (${count}):`,
        ...issues.map((i) => `  ${i.field}: ${i.message}`),
      ].join('\n'),
    );
    this.fields = issues.map((i) => i.field);
    this.problems = issues.map((i) => i.message);
  }

  get issues(): ModelIssue[] {
    return this.fields.map((field, i) => ({ field, message: this.problems[i] ?? '' }));
  }
}
