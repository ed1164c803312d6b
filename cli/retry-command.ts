// `tessera retry <jobId> --cloud`: the cloud's --retry-failed. Once the cause of a FAILED
// cloud job is fixed (an input chunk restored, a bucket policy corrected), its FAILED
// chunks are re-armed and the state machine runs the job again; every DONE chunk is kept.

import { SFNClient } from '@aws-sdk/client-sfn';
import { makeS3Client, registerS3 } from '../adapters/aws/clients.ts';
import { startExecution } from '../adapters/aws/deps.ts';
import { makeDynamoClient } from '../adapters/aws/dynamo-client.ts';
import { DynamoLedger } from '../adapters/aws/dynamo-ledger.ts';
import { retryFailedJob } from '../adapters/aws/retry-job.ts';
import { S3Store } from '../adapters/aws/s3-store.ts';
import { ENV } from '../contracts/cloud.ts';
import { parse } from './args.ts';
import { readStackOutputs } from './stack-outputs.ts';

const USAGE = `Usage: tessera retry <jobId> --cloud (--stack-outputs cdk-outputs.json [--stack NAME] | --bucket B --table T --state-machine ARN) [--json]

Runs a FAILED cloud job again once its cause is fixed: its FAILED chunks start again from
their first attempt, every DONE chunk is kept, and the state machine runs a new execution
<jobId>_r<n> of the same manifest version. (A local job: tessera run <manifest> --retry-failed.)

  --stack-outputs FILE  the bucket, table and state machine from \`cdk deploy --outputs-file FILE\`
  --bucket B, --table T, --state-machine ARN
                        the stack's BucketName, TableName and StateMachineArn outputs
                        (default: $${ENV.bucket}, $${ENV.table}, $${ENV.stateMachineArn})`;

export async function retryCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    {
      cloud: { type: 'boolean' },
      'stack-outputs': { type: 'string' },
      stack: { type: 'string' },
      bucket: { type: 'string' },
      table: { type: 'string' },
      'state-machine': { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (help) return 0;
  const [jobId] = positionals;
  if (!jobId || positionals.length > 1 || values.cloud !== true) {
    process.stderr.write(
      `${values.cloud === true ? '' : 'tessera retry is for cloud jobs (--cloud); a local job: tessera run <manifest> --retry-failed\n\n'}${USAGE}\n`,
    );
    return 2;
  }
  const env = process.env;
  const outputs =
    typeof values['stack-outputs'] === 'string'
      ? await readStackOutputs(values['stack-outputs'], values.stack as string | undefined)
      : undefined;
  const bucket = (values.bucket as string | undefined) ?? outputs?.bucket ?? env[ENV.bucket];
  const table = (values.table as string | undefined) ?? outputs?.table ?? env[ENV.table];
  const stateMachineArn =
    (values['state-machine'] as string | undefined) ??
    outputs?.stateMachineArn ??
    env[ENV.stateMachineArn];
  const missing = [
    bucket ? undefined : `--bucket (or $${ENV.bucket}: the stack's BucketName output)`,
    table ? undefined : `--table (or $${ENV.table}: the stack's TableName output)`,
    stateMachineArn
      ? undefined
      : `--state-machine (or $${ENV.stateMachineArn}: the stack's StateMachineArn output)`,
  ].filter((m) => m !== undefined);
  if (missing.length > 0 || !bucket || !table || !stateMachineArn) {
    process.stderr.write(
      `tessera retry: give ${missing.join(', ')}, or --stack-outputs cdk-outputs.json\n`,
    );
    return 2;
  }
  const s3 = makeS3Client(env);
  registerS3(s3);
  const endpoint = env.AWS_ENDPOINT_URL_SFN ?? env.AWS_ENDPOINT_URL;
  const sfn = new SFNClient(endpoint ? { endpoint } : {});
  const outcome = await retryFailedJob(
    {
      bucketStore: new S3Store({ client: s3, bucket }),
      ledger: new DynamoLedger({ client: makeDynamoClient(env), table }),
      startExecution: (name, input) => startExecution(sfn, stateMachineArn, name, input),
    },
    jobId,
  );
  process.stderr.write(
    `re-armed ${outcome.rearmed} FAILED chunk(s) of ${jobId}; every DONE chunk is kept. Started execution ${outcome.execution}\n` +
      `watch it: tessera status ${jobId} --cloud --bucket ${bucket} --table ${table} --watch\n`,
  );
  if (values.json === true) process.stdout.write(`${JSON.stringify(outcome)}\n`);
  return 0;
}
