// Errors of the cloud driver's ports.

/**
 * The fleet (AWS Batch) could not say why a Work round's workers failed: refused, no
 * answer, or no such job. Verify records it and carries on: the ledger, not the fleet,
 * decides the job's fate. Adapters subclass it with what they know of the cause.
 */
export class FleetReadError extends Error {
  override readonly name: string = 'FleetReadError';
  constructor(
    message: string,
    /** The fleet's id of the round's job (a Batch job id). */
    readonly batchJobId: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}
