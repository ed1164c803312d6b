// Step Functions execution names: what the watchdog and the retry command agree on. An
// execution is named after its job (the trigger starts `<jobId>`); a retry of a FAILED
// job runs as `<jobId>_r<n>` (execution names are unique per state machine for 90 days,
// and `_` never occurs in a job id, so the job id reads back unambiguously).

import { JOB_ID_SHAPE } from './job-id.ts';

/** Step Functions' limit on an execution name. */
const MAX_EXECUTION_NAME = 80;

/** The name of `jobId`'s execution: its first (retry 0), or its n-th retry. */
export function executionName(jobId: string, retry = 0): string {
  const name = retry === 0 ? jobId : `${jobId}_r${retry}`;
  if (name.length > MAX_EXECUTION_NAME)
    throw new RangeError(
      `execution name ${name} is ${name.length} characters, over Step Functions' ${MAX_EXECUTION_NAME}`,
    );
  return name;
}

/** The job an execution runs, or undefined for an execution Tessera did not name. */
export function jobIdOfExecution(name: string): string | undefined {
  const jobId = name.replace(/_r[1-9][0-9]*$/, '');
  return JOB_ID_SHAPE.test(jobId) ? jobId : undefined;
}
