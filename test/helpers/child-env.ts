// The environment a child process (a `tessera` CLI command or worker) needs to reach the
// emulators the test started — or, against LocalStack or a real account, the endpoint and
// credentials of the test's own environment.

import type { DynamoUnderTest } from './dynamo-emulator.ts';
import { EMULATOR_CREDENTIALS, type S3Emulator } from './s3-emulator.ts';

export function emulatorChildEnv(s3: S3Emulator, ddb: DynamoUnderTest): NodeJS.ProcessEnv {
  return {
    ...process.env,
    ...ddb.childEnv,
    // Emulator endpoint and credentials only for our own s3rver (DynamoDB Local accepts
    // any alphanumeric key, s3rver only its own).
    ...(s3.emulated
      ? {
          AWS_ENDPOINT_URL_S3: s3.endpoint,
          AWS_ACCESS_KEY_ID: EMULATOR_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: EMULATOR_CREDENTIALS.secretAccessKey,
        }
      : {}),
    AWS_REGION: process.env.AWS_REGION ?? 'us-east-1',
    AWS_EC2_METADATA_DISABLED: 'true',
  };
}
