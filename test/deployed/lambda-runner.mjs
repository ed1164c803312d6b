// One Lambda invocation, as the nodejs runtime makes it: imports the bundle's handler
// module from LAMBDA_TASK_ROOT, calls `handler(event, context)` once, and writes the
// outcome as one JSON line to the file named by argv[3]:
//   {"ok": true, "result": ...}  or  {"ok": false, "errorType", "errorMessage", "trace"}
// (the error payload the runtime reports for an unhandled error). The event is read
// from the file named by argv[2]. Plain JavaScript, run by the Node binary the twin
// takes as the runtime's: nothing of the test's own loader or process is involved.

import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const [eventFile, outFile] = process.argv.slice(2);
const root = process.env.LAMBDA_TASK_ROOT;
const [moduleName, exportName] = splitHandler(process.env._HANDLER ?? 'index.handler');

function splitHandler(h) {
  const dot = h.lastIndexOf('.');
  return [h.slice(0, dot), h.slice(dot + 1)];
}

function write(outcome) {
  writeFileSync(outFile, `${JSON.stringify(outcome)}\n`);
}

function errorPayload(error) {
  const e = error instanceof Error ? error : new Error(String(error));
  return {
    ok: false,
    errorType: e.name || 'Error',
    errorMessage: e.message,
    trace: String(e.stack ?? '').split('\n'),
  };
}

const deadline = Date.now() + Number(process.env.TWIN_LAMBDA_TIMEOUT_MS ?? 900_000);
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: process.env.AWS_LAMBDA_FUNCTION_VERSION,
  invokedFunctionArn: process.env.TWIN_FUNCTION_ARN,
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  awsRequestId: process.env.TWIN_REQUEST_ID,
  logGroupName: process.env.AWS_LAMBDA_LOG_GROUP_NAME,
  logStreamName: process.env.AWS_LAMBDA_LOG_STREAM_NAME,
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
  done() {},
  fail() {},
  succeed() {},
};
// The twin's own variables are not the function's: remove them before the bundle loads.
for (const name of ['TWIN_LAMBDA_TIMEOUT_MS', 'TWIN_FUNCTION_ARN', 'TWIN_REQUEST_ID'])
  delete process.env[name];

let outcome;
try {
  // A module-scope failure (e.g. a missing file the bundle reads at import) is an
  // invocation error too: Runtime.ImportModuleError or the error itself.
  const mod = await import(pathToFileURL(join(root, `${moduleName}.mjs`)).href);
  const handler = mod[exportName];
  if (typeof handler !== 'function') {
    outcome = {
      ok: false,
      errorType: 'Runtime.HandlerNotFound',
      errorMessage: `${moduleName}.${exportName} is undefined or not exported`,
      trace: [],
    };
  } else {
    const event = JSON.parse(readFileSync(eventFile, 'utf8'));
    const result = await handler(event, context);
    outcome = { ok: true, result: result === undefined ? null : result };
  }
} catch (error) {
  outcome = errorPayload(error);
}
write(outcome);
// The runtime freezes the sandbox after the response; here the process ends.
process.exit(0);
