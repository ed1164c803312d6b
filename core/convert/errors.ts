// Errors of `tessera convert`: each names the input (and the dataset or page), says what
// is wrong and what to do.

/** The input cannot be converted as it is: no such dataset, a rank or data type Tessera cannot use, pages that differ. */
export class ConvertInputError extends Error {
  override readonly name = 'ConvertInputError';
  constructor(
    /** The input file or directory. */
    readonly input: string,
    readonly reason: 'format' | 'dataset' | 'shape' | 'data_type' | 'pages' | 'option',
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Cannot convert ${input}: ${detail}`, options);
  }
}

/** The output already holds something: convert never writes over data. */
export class ConvertOutputExistsError extends Error {
  override readonly name = 'ConvertOutputExistsError';
  constructor(readonly output: string) {
    super(
      `The output ${output} already holds a Zarr hierarchy (zarr.json); tessera convert never writes over one. Choose another output path, or delete it first.`,
    );
  }
}
