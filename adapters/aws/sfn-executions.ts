// The state machine's RUNNING executions (the stall watchdog's view of which jobs are
// live): ListExecutions with statusFilter RUNNING, page by page. Execution names are
// job ids (the trigger names each execution after its job), `<jobId>_r<n>` for a retry
// (contracts/executions.ts).

import { ListExecutionsCommand, type SFNClient } from '@aws-sdk/client-sfn';

export interface RunningExecution {
  name: string;
  startDate: Date;
}

export async function listRunningExecutions(
  sfn: SFNClient,
  stateMachineArn: string,
): Promise<RunningExecution[]> {
  const out: RunningExecution[] = [];
  let nextToken: string | undefined;
  do {
    const page = await sfn.send(
      new ListExecutionsCommand({
        stateMachineArn,
        statusFilter: 'RUNNING',
        maxResults: 1000,
        ...(nextToken ? { nextToken } : {}),
      }),
    );
    for (const e of page.executions ?? []) {
      if (e.name && e.startDate) out.push({ name: e.name, startDate: e.startDate });
    }
    nextToken = page.nextToken;
  } while (nextToken);
  return out;
}
