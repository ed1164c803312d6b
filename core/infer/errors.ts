/** Failures of chunk inference that a caller can act on. */

/**
 * model.tta asks for a transform the patch cannot take: a quarter turn in yx maps y onto
 * x, so it needs a patch (input and output) square in y and x.
 */
export class TtaShapeError extends Error {
  override readonly name = 'TtaShapeError';
  constructor(
    readonly patch: readonly number[],
    readonly rot90: number,
  ) {
    super(
      `model.tta: ${rot90} quarter turn(s) in yx need a patch square in y and x, but the patch is ` +
        `[${patch.join(', ')}]: make model.patchShape (and model.outputPatchShape) square in y and x, ` +
        'or drop "rot90" and odd rot90 counts from model.tta',
    );
  }
}

/** A model under test-time augmentation returned a different amount of output for one transform. */
export class TtaOutputError extends Error {
  override readonly name = 'TtaOutputError';
  constructor(
    readonly transform: string,
    readonly expected: number,
    readonly actual: number,
  ) {
    super(
      `model.tta: under transform ${transform} the model returned ${actual} values, but ${expected} ` +
        'under the identity: its output size must not depend on the input orientation. Check ' +
        'model.outputPatchShape, or turn model.tta off for this model',
    );
  }
}
