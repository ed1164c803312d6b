// Step Functions on loopback: the API calls the stack's components make (awsJson1_0:
// POST / with X-Amz-Target AWSStepFunctions.<Action>) answered by running the deployed
// definition in aws-local-stepfunctions. StartExecution starts one (the name must be new,
// as the service requires), DescribeExecution and ListExecutions report on them.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { StateMachine } from 'aws-local-stepfunctions';
import type { AslDefinition } from '../helpers/state-machine-definition.ts';

export type TaskHandlers = Record<string, (input: unknown) => Promise<unknown>>;

export interface Execution {
  name: string;
  arn: string;
  input: string;
  status: 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';
  startDate: Date;
  stopDate?: Date;
  output?: string;
  error?: string;
  cause?: string;
  /** Settles when the execution stops (never rejects). */
  done: Promise<void>;
}

export interface SfnService {
  endpoint: string;
  executions: Map<string, Execution>;
  /** Requests by action, for the test to see what was called. */
  requests: { action: string; body: Record<string, unknown> }[];
  stop(): Promise<void>;
}

class ApiError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export async function startSfnService(o: {
  stateMachineArn: string;
  roleArn: string;
  definition: AslDefinition;
  /** taskResourceLocalHandlers for one execution (keyed by state name). */
  handlers: (executionName: string) => TaskHandlers;
}): Promise<SfnService> {
  const executions = new Map<string, Execution>();
  const requests: SfnService['requests'] = [];
  const executionArn = (name: string) =>
    `${o.stateMachineArn.replace(':stateMachine:', ':execution:')}:${name}`;
  const byArn = (arn: unknown) => [...executions.values()].find((e) => e.arn === arn);
  const epoch = (d: Date | undefined) => (d ? d.getTime() / 1000 : undefined);
  const checkMachine = (arn: unknown) => {
    if (arn !== o.stateMachineArn)
      throw new ApiError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${arn}'`);
  };

  const actions: Record<string, (b: Record<string, unknown>) => unknown> = {
    StartExecution(b) {
      checkMachine(b.stateMachineArn);
      const name = String(b.name ?? crypto.randomUUID());
      if (!/^[A-Za-z0-9_-]{1,80}$/.test(name))
        throw new ApiError('InvalidName', `Invalid Name: '${name}'`);
      const existing = executions.get(name);
      if (existing) {
        // The service answers a repeat of the same start with the same execution.
        if (existing.input === (b.input ?? '{}') && existing.status === 'RUNNING')
          return { executionArn: existing.arn, startDate: epoch(existing.startDate) };
        throw new ApiError('ExecutionAlreadyExists', `Execution Already Exists: '${existing.arn}'`);
      }
      const input = String(b.input ?? '{}');
      const arn = executionArn(name);
      const startDate = new Date();
      const machine = new StateMachine(o.definition as never, {
        validationOptions: { checkArn: false },
      });
      const run = machine.run(JSON.parse(input), {
        overrides: { taskResourceLocalHandlers: o.handlers(name) as never },
        context: {
          Execution: {
            Id: arn,
            Name: name,
            Input: JSON.parse(input),
            StartTime: startDate.toISOString(),
            RoleArn: o.roleArn,
          },
          StateMachine: { Id: o.stateMachineArn, Name: o.stateMachineArn.split(':').pop() },
        } as never,
      });
      const execution: Execution = {
        name,
        arn,
        input,
        status: 'RUNNING',
        startDate,
        done: run.result
          .then(
            (output) => {
              execution.status = 'SUCCEEDED';
              execution.output = JSON.stringify(output);
            },
            (e: Error & { cause?: Error }) => {
              execution.status = e.name === 'ExecutionTimeoutError' ? 'TIMED_OUT' : 'FAILED';
              // A Fail state's Error and Cause, or the uncaught error's.
              const cause = e.cause instanceof Error ? e.cause : e;
              execution.error = cause.name;
              execution.cause = cause.message;
            },
          )
          .finally(() => {
            execution.stopDate = new Date();
          }),
      };
      executions.set(name, execution);
      return { executionArn: arn, startDate: epoch(startDate) };
    },
    DescribeExecution(b) {
      const e = byArn(b.executionArn);
      if (!e)
        throw new ApiError(
          'ExecutionDoesNotExist',
          `Execution Does Not Exist: '${b.executionArn}'`,
        );
      return {
        executionArn: e.arn,
        stateMachineArn: o.stateMachineArn,
        name: e.name,
        status: e.status,
        startDate: epoch(e.startDate),
        ...(e.stopDate ? { stopDate: epoch(e.stopDate) } : {}),
        input: e.input,
        ...(e.output !== undefined ? { output: e.output } : {}),
        ...(e.error !== undefined ? { error: e.error, cause: e.cause } : {}),
      };
    },
    ListExecutions(b) {
      checkMachine(b.stateMachineArn);
      const list = [...executions.values()]
        .filter((e) => b.statusFilter === undefined || e.status === b.statusFilter)
        .sort((x, y) => y.startDate.getTime() - x.startDate.getTime());
      return {
        executions: list.map((e) => ({
          executionArn: e.arn,
          stateMachineArn: o.stateMachineArn,
          name: e.name,
          status: e.status,
          startDate: epoch(e.startDate),
          ...(e.stopDate ? { stopDate: epoch(e.stopDate) } : {}),
        })),
      };
    },
  };

  const server = createServer((req, res) => void handle(req, res));
  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const target = String(req.headers['x-amz-target'] ?? '');
    const action = target.replace(/^AWSStepFunctions\./, '');
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.0' });
      res.end(JSON.stringify(body));
    };
    try {
      const body = JSON.parse(Buffer.concat(chunks).toString() || '{}') as Record<string, unknown>;
      requests.push({ action, body });
      const fn = actions[action];
      if (!target.startsWith('AWSStepFunctions.') || !fn)
        throw new ApiError('UnknownOperationException', `the twin does not serve ${target}`);
      reply(200, fn(body));
    } catch (e) {
      const err = e instanceof ApiError ? e : new ApiError('InternalFailure', String(e), 500);
      reply(err.status, { __type: err.type, message: err.message });
    }
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    endpoint: `http://127.0.0.1:${port}`,
    executions,
    requests,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
