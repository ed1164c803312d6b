// The recording proxy in front of s3rver and DynamoDB Local, with the production-configured
// SDK clients: requests pass through with their signatures intact (s3rver checks them),
// answers come back unchanged, and each request is recorded under its component with the
// authorization AWS would evaluate.

import { CreateTableCommand, DynamoDBClient, waitUntilTableExists } from '@aws-sdk/client-dynamodb';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
} from '@aws-sdk/client-s3';
import {
  DynamoDBDocumentClient,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
} from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tableDefinition } from '../../../adapters/aws/dynamo-ledger.ts';
import { type DynamoUnderTest, startDynamo } from '../../helpers/dynamo-emulator.ts';
import {
  emulatorClient,
  type S3Emulator,
  startS3,
  uniqueBucketName,
} from '../../helpers/s3-emulator.ts';
import { type Recorder, startRecorder } from './recorder.ts';

const ACCOUNT = '111122223333';
const REGION = 'us-east-1';
let s3: S3Emulator;
let ddb: DynamoUnderTest;
let recorder: Recorder;
const bucket = uniqueBucketName('recorder');
const table = `recorder-${Date.now()}`;

beforeAll(async () => {
  [s3, ddb] = await Promise.all([startS3({ local: true }), startDynamo()]);
  await s3.createBucket(bucket);
  await ddb.client.send(new CreateTableCommand(tableDefinition(table)));
  await waitUntilTableExists({ client: ddb.client, maxWaitTime: 60 }, { TableName: table });
  // No keySchemas given: the recorder describes the table through DynamoDB Local.
  recorder = await startRecorder({
    upstream: { s3: s3.endpoint, dynamodb: ddb.endpoint },
    account: ACCOUNT,
    region: REGION,
    components: ['planner'],
  });
}, 120_000);

afterAll(async () => {
  await recorder?.stop();
  await Promise.all([s3?.stop(), ddb?.stop()]);
});

const recorded = (component: string) =>
  recorder.calls
    .filter((c) => c.component === component)
    .map(({ action, resource, conditions }) => ({ action, resource, conditions }));

describe('the recording proxy', () => {
  it('forwards S3 requests with valid signatures and records what each needs', async () => {
    const client = emulatorClient(recorder.endpointFor('planner'));
    try {
      await client.send(
        new PutObjectCommand({
          Bucket: bucket,
          Key: 'jobs/j/partials/0',
          Body: 'abc',
          Tagging: 'tessera-kind=partial',
        }),
      );
      const got = await client.send(
        new GetObjectCommand({ Bucket: bucket, Key: 'jobs/j/partials/0' }),
      );
      expect(await got.Body?.transformToString()).toBe('abc');
      const listed = await client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: 'jobs/j/' }),
      );
      expect(listed.Contents?.map((o) => o.Key)).toEqual(['jobs/j/partials/0']);
      await client.send(
        new DeleteObjectsCommand({
          Bucket: bucket,
          Delete: { Objects: [{ Key: 'jobs/j/partials/0' }] },
        }),
      );
    } finally {
      client.destroy();
    }
    const obj = `arn:aws:s3:::${bucket}/jobs/j/partials/0`;
    const tags = {
      's3:RequestObjectTag/tessera-kind': 'partial',
      's3:RequestObjectTagKeys': ['tessera-kind'],
    };
    expect(recorded('planner')).toEqual([
      { action: 's3:PutObject', resource: obj, conditions: tags },
      { action: 's3:PutObjectTagging', resource: obj, conditions: tags },
      { action: 's3:GetObject', resource: obj, conditions: {} },
      {
        action: 's3:ListBucket',
        resource: `arn:aws:s3:::${bucket}`,
        conditions: { 's3:prefix': 'jobs/j/' },
      },
      { action: 's3:DeleteObject', resource: obj, conditions: {} },
    ]);
  });

  it('gives each component its own endpoint and records DynamoDB calls with their leading keys', async () => {
    const endpoint = recorder.endpointFor('worker');
    expect(endpoint).not.toBe(recorder.endpointFor('planner'));
    const raw = new DynamoDBClient({
      endpoint,
      region: REGION,
      credentials: { accessKeyId: 'tesseratest', secretAccessKey: 'tesseratest' },
    });
    const doc = DynamoDBDocumentClient.from(raw);
    try {
      await doc.send(
        new PutCommand({
          TableName: table,
          Item: { pk: 'JOB#j', sk: 'C#1', gpk: 'j#1', gsk: 'a' },
        }),
      );
      await doc.send(
        new TransactWriteCommand({
          TransactItems: [
            {
              Update: {
                TableName: table,
                Key: { pk: 'JOB#j', sk: 'C#1' },
                UpdateExpression: 'SET #s = :s',
                ExpressionAttributeNames: { '#s': 'status' },
                ExpressionAttributeValues: { ':s': 'RUNNING' },
              },
            },
          ],
        }),
      );
      const q = await doc.send(
        new QueryCommand({
          TableName: table,
          IndexName: 'open',
          KeyConditionExpression: 'gpk = :g',
          ExpressionAttributeValues: { ':g': 'j#1' },
        }),
      );
      expect(q.Items?.length).toBe(1);
    } finally {
      raw.destroy();
    }
    const arn = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${table}`;
    expect(recorded('worker')).toEqual([
      {
        action: 'dynamodb:PutItem',
        resource: arn,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
      },
      {
        action: 'dynamodb:UpdateItem',
        resource: arn,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
      },
      {
        action: 'dynamodb:Query',
        resource: `${arn}/index/open`,
        conditions: { 'dynamodb:LeadingKeys': ['j#1'] },
      },
    ]);
  });
});
