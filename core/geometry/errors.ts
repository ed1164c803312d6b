// Errors a caller of the geometry module can act on.

export class PlanError extends Error {
  override readonly name = 'PlanError';
  constructor(
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export class ChunkIdError extends Error {
  override readonly name = 'ChunkIdError';
  constructor(
    message: string,
    readonly id: string,
  ) {
    super(message);
  }
}
