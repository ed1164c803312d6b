// Requests as the SDK sends them, and the IAM authorizations AWS evaluates for each
// (action, resource, condition keys), written out by hand from the S3, DynamoDB, Step
// Functions and Batch authorization references.

import { describe, expect, it } from 'vitest';
import { type AwsService, classifyRequest, type KeySchemas } from './actions.ts';

const ARN = { account: '111122223333', region: 'eu-west-1', partition: 'aws' };
const SCHEMAS: KeySchemas = { ledger: { hash: 'pk', indexes: { open: 'gpk' } } };
const TABLE = 'arn:aws:dynamodb:eu-west-1:111122223333:table/ledger';

function classify(
  service: AwsService,
  method: string,
  url: string,
  o: { headers?: Record<string, string>; body?: unknown } = {},
) {
  const body =
    o.body === undefined
      ? Buffer.alloc(0)
      : Buffer.from(typeof o.body === 'string' ? o.body : JSON.stringify(o.body));
  return classifyRequest(service, { method, url, headers: o.headers ?? {} }, body, {
    arn: ARN,
    keySchema: (t) => SCHEMAS[t],
  }).map(({ action, resource, conditions }) => ({ action, resource, conditions }));
}
const s3 = (method: string, url: string, o?: Parameters<typeof classify>[3]) =>
  classify('s3', method, url, o);
const ddb = (op: string, body: unknown) =>
  classify('dynamodb', 'POST', '/', {
    headers: { 'x-amz-target': `DynamoDB_20120810.${op}` },
    body,
  });

describe('S3 requests', () => {
  it('reads: GetObject, HeadObject, a version, the tags', () => {
    expect(s3('GET', '/b/jobs/j/plan.json?x-id=GetObject')).toEqual([
      { action: 's3:GetObject', resource: 'arn:aws:s3:::b/jobs/j/plan.json', conditions: {} },
    ]);
    expect(s3('HEAD', '/b/manifests/a%20b.json')).toEqual([
      { action: 's3:GetObject', resource: 'arn:aws:s3:::b/manifests/a b.json', conditions: {} },
    ]);
    expect(s3('GET', '/b/manifests/m.json?versionId=v1&x-id=GetObject')).toEqual([
      {
        action: 's3:GetObjectVersion',
        resource: 'arn:aws:s3:::b/manifests/m.json',
        conditions: { 's3:versionid': 'v1' },
      },
    ]);
    expect(s3('GET', '/b/k?tagging')).toEqual([
      { action: 's3:GetObjectTagging', resource: 'arn:aws:s3:::b/k', conditions: {} },
    ]);
  });

  it('a PUT with x-amz-tagging also needs s3:PutObjectTagging', () => {
    expect(
      s3('PUT', '/b/jobs/j/partials/0.zst?x-id=PutObject', {
        headers: { 'x-amz-tagging': 'tessera-kind=partial' },
      }),
    ).toEqual([
      {
        action: 's3:PutObject',
        resource: 'arn:aws:s3:::b/jobs/j/partials/0.zst',
        conditions: {
          's3:RequestObjectTag/tessera-kind': 'partial',
          's3:RequestObjectTagKeys': ['tessera-kind'],
        },
      },
      {
        action: 's3:PutObjectTagging',
        resource: 'arn:aws:s3:::b/jobs/j/partials/0.zst',
        conditions: {
          's3:RequestObjectTag/tessera-kind': 'partial',
          's3:RequestObjectTagKeys': ['tessera-kind'],
        },
      },
    ]);
    expect(s3('PUT', '/b/jobs/j/status.json?x-id=PutObject')).toEqual([
      { action: 's3:PutObject', resource: 'arn:aws:s3:::b/jobs/j/status.json', conditions: {} },
    ]);
  });

  it('CopyObject reads the source and writes the target', () => {
    expect(
      s3('PUT', '/b/outputs/x', { headers: { 'x-amz-copy-source': '/src/in%20put?versionId=v9' } }),
    ).toEqual([
      {
        action: 's3:GetObjectVersion',
        resource: 'arn:aws:s3:::src/in put',
        conditions: { 's3:versionid': 'v9' },
      },
      {
        action: 's3:PutObject',
        resource: 'arn:aws:s3:::b/outputs/x',
        conditions: { 's3:x-amz-copy-source': '/src/in%20put?versionId=v9' },
      },
    ]);
  });

  it('multipart upload: create (with tags), parts, complete, list parts, abort', () => {
    const o = 'arn:aws:s3:::b/outputs/v.zarr/0.0.0';
    expect(
      s3('POST', '/b/outputs/v.zarr/0.0.0?uploads', { headers: { 'x-amz-tagging': 'k=v' } }).map(
        (c) => c.action,
      ),
    ).toEqual(['s3:PutObject', 's3:PutObjectTagging']);
    expect(s3('PUT', '/b/outputs/v.zarr/0.0.0?partNumber=2&uploadId=u&x-id=UploadPart')).toEqual([
      { action: 's3:PutObject', resource: o, conditions: {} },
    ]);
    expect(s3('POST', '/b/outputs/v.zarr/0.0.0?uploadId=u')).toEqual([
      { action: 's3:PutObject', resource: o, conditions: {} },
    ]);
    expect(s3('GET', '/b/outputs/v.zarr/0.0.0?uploadId=u&x-id=ListParts')).toEqual([
      { action: 's3:ListMultipartUploadParts', resource: o, conditions: {} },
    ]);
    expect(s3('DELETE', '/b/outputs/v.zarr/0.0.0?uploadId=u&x-id=AbortMultipartUpload')).toEqual([
      { action: 's3:AbortMultipartUpload', resource: o, conditions: {} },
    ]);
  });

  it('deletes: one object, a version, DeleteObjects per key', () => {
    expect(s3('DELETE', '/b/jobs/j/lock?x-id=DeleteObject')).toEqual([
      { action: 's3:DeleteObject', resource: 'arn:aws:s3:::b/jobs/j/lock', conditions: {} },
    ]);
    expect(s3('DELETE', '/b/k?versionId=v2')).toEqual([
      {
        action: 's3:DeleteObjectVersion',
        resource: 'arn:aws:s3:::b/k',
        conditions: { 's3:versionid': 'v2' },
      },
    ]);
    const xml =
      '<?xml version="1.0"?><Delete><Object><Key>jobs/a&amp;b</Key></Object><Object><Key>jobs/c</Key><VersionId>v3</VersionId></Object><Quiet>true</Quiet></Delete>';
    expect(s3('POST', '/b?delete', { body: xml })).toEqual([
      { action: 's3:DeleteObject', resource: 'arn:aws:s3:::b/jobs/a&b', conditions: {} },
      {
        action: 's3:DeleteObjectVersion',
        resource: 'arn:aws:s3:::b/jobs/c',
        conditions: { 's3:versionid': 'v3' },
      },
    ]);
  });

  it('bucket requests: ListObjectsV2 with s3:prefix on the bucket, HeadBucket, versioning, list buckets', () => {
    expect(s3('GET', '/b?list-type=2&prefix=jobs%2Fj%2F&delimiter=%2F&max-keys=1000')).toEqual([
      {
        action: 's3:ListBucket',
        resource: 'arn:aws:s3:::b',
        conditions: { 's3:prefix': 'jobs/j/', 's3:delimiter': '/', 's3:max-keys': '1000' },
      },
    ]);
    expect(s3('HEAD', '/b')).toEqual([
      { action: 's3:ListBucket', resource: 'arn:aws:s3:::b', conditions: {} },
    ]);
    expect(s3('GET', '/b?versioning')).toEqual([
      { action: 's3:GetBucketVersioning', resource: 'arn:aws:s3:::b', conditions: {} },
    ]);
    expect(s3('GET', '/b?uploads')).toEqual([
      { action: 's3:ListBucketMultipartUploads', resource: 'arn:aws:s3:::b', conditions: {} },
    ]);
    expect(s3('GET', '/')).toEqual([
      { action: 's3:ListAllMyBuckets', resource: '*', conditions: {} },
    ]);
  });

  it('an unknown subresource is reported, not guessed', () => {
    expect(s3('GET', '/b?inventory&id=x')).toEqual([
      { action: '?', resource: 'arn:aws:s3:::b', conditions: {} },
    ]);
    expect(s3('PUT', '/b/k?retention')).toEqual([
      { action: '?', resource: 'arn:aws:s3:::b/k', conditions: {} },
    ]);
  });
});

describe('DynamoDB requests', () => {
  it('item operations on the table, with the partition key as dynamodb:LeadingKeys', () => {
    expect(
      ddb('GetItem', { TableName: 'ledger', Key: { pk: { S: 'JOB#j' }, sk: { S: 'JOB' } } }),
    ).toEqual([
      {
        action: 'dynamodb:GetItem',
        resource: TABLE,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
      },
    ]);
    expect(
      ddb('PutItem', {
        TableName: 'ledger',
        Item: { pk: { S: 'OUT#h' }, sk: { S: 'OUT' } },
        ReturnValues: 'ALL_OLD',
      }),
    ).toEqual([
      {
        action: 'dynamodb:PutItem',
        resource: TABLE,
        conditions: { 'dynamodb:LeadingKeys': ['OUT#h'], 'dynamodb:ReturnValues': 'ALL_OLD' },
      },
    ]);
  });

  it('a Query on the index is authorized on the index, keyed by its partition key', () => {
    expect(
      ddb('Query', {
        TableName: 'ledger',
        IndexName: 'open',
        KeyConditionExpression: '#g = :g AND #s < :now',
        ExpressionAttributeNames: { '#g': 'gpk', '#s': 'gsk' },
        ExpressionAttributeValues: { ':g': { S: 'j#3' }, ':now': { S: '2030' } },
      }),
    ).toEqual([
      {
        action: 'dynamodb:Query',
        resource: `${TABLE}/index/open`,
        conditions: { 'dynamodb:LeadingKeys': ['j#3'] },
      },
    ]);
  });

  it('BatchWriteItem is its own action, once per table, with every key', () => {
    expect(
      ddb('BatchWriteItem', {
        RequestItems: {
          ledger: [
            { PutRequest: { Item: { pk: { S: 'JOB#j' }, sk: { S: 'C#1' } } } },
            { PutRequest: { Item: { pk: { S: 'JOB#j' }, sk: { S: 'C#2' } } } },
            { DeleteRequest: { Key: { pk: { S: 'JOB#k' }, sk: { S: 'C#1' } } } },
          ],
        },
      }),
    ).toEqual([
      {
        action: 'dynamodb:BatchWriteItem',
        resource: TABLE,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j', 'JOB#k'] },
      },
    ]);
  });

  it('a transaction is authorized item by item as the item actions', () => {
    expect(
      ddb('TransactWriteItems', {
        TransactItems: [
          { Update: { TableName: 'ledger', Key: { pk: { S: 'JOB#j' }, sk: { S: 'C#1' } } } },
          {
            ConditionCheck: { TableName: 'ledger', Key: { pk: { S: 'JOB#j' }, sk: { S: 'JOB' } } },
          },
          { Put: { TableName: 'ledger', Item: { pk: { S: 'JOB#j' }, sk: { S: 'N#1' } } } },
          { Delete: { TableName: 'other', Key: { id: { S: 'x' } } } },
        ],
      }),
    ).toEqual([
      {
        action: 'dynamodb:UpdateItem',
        resource: TABLE,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
      },
      {
        action: 'dynamodb:ConditionCheckItem',
        resource: TABLE,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
      },
      {
        action: 'dynamodb:PutItem',
        resource: TABLE,
        conditions: { 'dynamodb:LeadingKeys': ['JOB#j'] },
      },
      // No key schema known for "other": no LeadingKeys rather than a guessed one.
      {
        action: 'dynamodb:DeleteItem',
        resource: 'arn:aws:dynamodb:eu-west-1:111122223333:table/other',
        conditions: {},
      },
    ]);
  });

  it('table-level operations on the table; ListTables on "*"', () => {
    expect(ddb('DescribeTable', { TableName: 'ledger' })).toEqual([
      { action: 'dynamodb:DescribeTable', resource: TABLE, conditions: {} },
    ]);
    expect(ddb('ListTables', {})).toEqual([
      { action: 'dynamodb:ListTables', resource: '*', conditions: {} },
    ]);
  });
});

describe('Step Functions and Batch requests', () => {
  const sfn = (op: string, body: unknown) =>
    classify('states', 'POST', '/', {
      headers: { 'x-amz-target': `AWSStepFunctions.${op}` },
      body,
    });
  const sm = 'arn:aws:states:eu-west-1:111122223333:stateMachine:pipeline';

  it('states:<Op> on the state machine or the execution the request names', () => {
    expect(sfn('StartExecution', { stateMachineArn: sm, name: 'j', input: '{}' })).toEqual([
      { action: 'states:StartExecution', resource: sm, conditions: {} },
    ]);
    expect(sfn('ListExecutions', { stateMachineArn: sm, statusFilter: 'RUNNING' })).toEqual([
      { action: 'states:ListExecutions', resource: sm, conditions: {} },
    ]);
    const ex = 'arn:aws:states:eu-west-1:111122223333:execution:pipeline:j';
    expect(sfn('DescribeExecution', { executionArn: ex })).toEqual([
      { action: 'states:DescribeExecution', resource: ex, conditions: {} },
    ]);
  });

  it('batch:ListJobs and DescribeJobs on "*", SubmitJob on the queue and the definition', () => {
    expect(
      classify('batch', 'POST', '/v1/listjobs', { body: { arrayJobId: 'a', jobStatus: 'FAILED' } }),
    ).toEqual([{ action: 'batch:ListJobs', resource: '*', conditions: {} }]);
    expect(classify('batch', 'POST', '/v1/describejobs', { body: { jobs: ['a:1'] } })).toEqual([
      { action: 'batch:DescribeJobs', resource: '*', conditions: {} },
    ]);
    expect(
      classify('batch', 'POST', '/v1/submitjob', {
        body: { jobQueue: 'gpu', jobDefinition: 'worker:3', jobName: 'x' },
      }),
    ).toEqual([
      {
        action: 'batch:SubmitJob',
        resource: 'arn:aws:batch:eu-west-1:111122223333:job-queue/gpu',
        conditions: {},
      },
      {
        action: 'batch:SubmitJob',
        resource: 'arn:aws:batch:eu-west-1:111122223333:job-definition/worker:3',
        conditions: {},
      },
    ]);
    expect(
      classify('batch', 'POST', '/v1/terminatejob', { body: { jobId: 'id-1', reason: 'r' } }),
    ).toEqual([
      {
        action: 'batch:TerminateJob',
        resource: 'arn:aws:batch:eu-west-1:111122223333:job/id-1',
        conditions: {},
      },
    ]);
  });
});
