// From an HTTP request to the IAM authorizations AWS evaluates for it. One request can
// need several: CopyObject reads the source and writes the target, DeleteObjects deletes
// each key, a DynamoDB transaction is authorized item by item, SubmitJob is checked
// against the job queue and the job definition. Each comes out as { action, resource,
// conditions }, with the condition keys a policy of this stack could test (s3:prefix,
// dynamodb:LeadingKeys, ...). A request the table below does not know comes out with
// action "?" so that the evaluator reports it instead of letting it pass.
//
// S3 (path-style, as the stack's clients address an endpoint):
//   GET|HEAD /b/k             s3:GetObject (s3:GetObjectVersion with versionId)
//   GET /b/k?tagging          s3:GetObjectTagging (…VersionTagging)
//   GET /b/k?uploadId         s3:ListMultipartUploadParts
//   PUT /b/k                  s3:PutObject, + s3:PutObjectTagging with x-amz-tagging,
//                             + s3:PutObjectAcl with x-amz-acl
//   PUT /b/k + copy-source    s3:GetObject(Version) on the source + the PUT's own
//   PUT /b/k?partNumber&uploadId  s3:PutObject (UploadPart; UploadPartCopy also reads)
//   PUT /b/k?tagging          s3:PutObjectTagging (…VersionTagging)
//   POST /b/k?uploads         s3:PutObject (+ s3:PutObjectTagging with x-amz-tagging)
//   POST /b/k?uploadId        s3:PutObject (CompleteMultipartUpload)
//   DELETE /b/k               s3:DeleteObject (s3:DeleteObjectVersion with versionId)
//   DELETE /b/k?uploadId      s3:AbortMultipartUpload
//   DELETE /b/k?tagging       s3:DeleteObjectTagging
//   POST /b?delete            s3:DeleteObject(Version) per key in the XML body
//   GET /b (?list-type=2)     s3:ListBucket on the bucket, s3:prefix / s3:delimiter / s3:max-keys
//   HEAD /b                   s3:ListBucket (HeadBucket)
//   GET /b?versions|uploads|versioning|location|notification|tagging|policy|…  the matching s3:GetBucket*/List*
//   GET /                     s3:ListAllMyBuckets
// DynamoDB (X-Amz-Target DynamoDB_20120810.<Op>): dynamodb:<Op> on the table ARN (…/index/<name>
//   for a Query or Scan with IndexName); BatchGetItem / BatchWriteItem once per table
//   (their own actions); TransactWriteItems / TransactGetItems per item as PutItem,
//   UpdateItem, DeleteItem, ConditionCheckItem, GetItem; dynamodb:LeadingKeys = the
//   partition key values the request touches.
// Step Functions (X-Amz-Target AWSStepFunctions.<Op>): states:<Op> on the ARN the request
//   names (executionArn, else stateMachineArn, mapRunArn, activityArn), else "*".
// Batch (POST /v1/<op>): batch:<Op>; SubmitJob on the job queue and on the job
//   definition, TerminateJob / CancelJob on the job, the rest on "*" (no resource-level
//   permissions).

export type AwsService = 's3' | 'dynamodb' | 'states' | 'batch';

export interface RecordedCall {
  /** The component that made the request (its endpoint's name). */
  component: string;
  service: AwsService;
  /** The IAM action AWS authorizes, e.g. s3:GetObject; "?" when the request is not mapped. */
  action: string;
  /** The resource ARN it is authorized against; "*" for actions without resource-level permissions. */
  resource: string;
  /** Request condition keys (without aws:SecureTransport, which the evaluator sets). */
  conditions: Record<string, string | string[]>;
  /** The API request it came from, e.g. "PUT /bucket/key" or "DynamoDB TransactWriteItems". */
  operation: string;
}

export type Authorization = Omit<RecordedCall, 'component'>;

export interface TableKeySchema {
  /** The table's partition key attribute. */
  hash: string;
  /** Partition key attribute per index name. */
  indexes: Record<string, string>;
}
export type KeySchemas = Record<string, TableKeySchema>;

export interface ArnContext {
  account: string;
  region: string;
  partition: string;
}

export interface RequestHead {
  method: string;
  url: string;
  headers: Record<string, string | string[] | undefined>;
}

export interface ClassifyContext {
  arn: ArnContext;
  keySchema: (table: string) => TableKeySchema | undefined;
}

export function classifyRequest(
  service: AwsService,
  head: RequestHead,
  body: Buffer,
  ctx: ClassifyContext,
): Authorization[] {
  switch (service) {
    case 's3':
      return classifyS3(head, body, ctx.arn);
    case 'dynamodb':
      return classifyDynamo(head, body, ctx);
    case 'states':
      return classifyStates(head, body);
    case 'batch':
      return classifyBatch(head, body, ctx.arn);
  }
}

// --- S3 ------------------------------------------------------------------------------

/** GET ?<subresource> on a bucket → action. */
const BUCKET_GET: Record<string, string> = {
  versions: 's3:ListBucketVersions',
  uploads: 's3:ListBucketMultipartUploads',
  versioning: 's3:GetBucketVersioning',
  location: 's3:GetBucketLocation',
  notification: 's3:GetBucketNotification',
  tagging: 's3:GetBucketTagging',
  policy: 's3:GetBucketPolicy',
  acl: 's3:GetBucketAcl',
  cors: 's3:GetBucketCORS',
  lifecycle: 's3:GetLifecycleConfiguration',
  encryption: 's3:GetEncryptionConfiguration',
  'object-lock': 's3:GetBucketObjectLockConfiguration',
  'public-access-block': 's3:GetBucketPublicAccessBlock',
  ownershipControls: 's3:GetBucketOwnershipControls',
  logging: 's3:GetBucketLogging',
};
const BUCKET_PUT: Record<string, string> = {
  versioning: 's3:PutBucketVersioning',
  notification: 's3:PutBucketNotification',
  tagging: 's3:PutBucketTagging',
  policy: 's3:PutBucketPolicy',
  acl: 's3:PutBucketAcl',
  cors: 's3:PutBucketCORS',
  lifecycle: 's3:PutLifecycleConfiguration',
  encryption: 's3:PutEncryptionConfiguration',
};
/** Query parameters that are not subresources (they do not change the action). */
const S3_PARAMS = new Set([
  'x-id',
  'versionId',
  'list-type',
  'prefix',
  'delimiter',
  'max-keys',
  'continuation-token',
  'start-after',
  'encoding-type',
  'fetch-owner',
  'marker',
  'partNumber',
  'uploadId',
  'response-content-type',
  'response-content-disposition',
  'response-cache-control',
  'response-content-encoding',
  'response-content-language',
  'response-expires',
  'key-marker',
  'version-id-marker',
  'upload-id-marker',
  'max-uploads',
  'max-parts',
  'part-number-marker',
]);

function classifyS3(head: RequestHead, body: Buffer, arn: ArnContext): Authorization[] {
  const url = new URL(head.url, 'http://s3.invalid');
  const [, bucket = '', ...rest] = url.pathname.split('/');
  const key = rest.map((s) => decodeURIComponent(s)).join('/');
  const q = url.searchParams;
  const sub = [...q.keys()].filter((k) => !S3_PARAMS.has(k));
  const method = head.method.toUpperCase();
  const operation = `${method} ${url.pathname}${url.search}`;
  const header = (name: string): string | undefined => {
    const v = head.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };
  const out: Authorization[] = [];
  const add = (
    action: string,
    resource: string,
    conditions: Record<string, string | string[]> = {},
  ) => out.push({ service: 's3', action, resource, conditions, operation });
  const bucketArn = `arn:${arn.partition}:s3:::${decodeURIComponent(bucket)}`;
  const objectArn = `${bucketArn}/${key}`;
  const versionId = q.get('versionId') ?? undefined;
  const versioned: Record<string, string> = versionId ? { 's3:versionid': versionId } : {};
  const unmapped = () => add('?', key ? objectArn : bucketArn);

  if (bucket === '') {
    if (method === 'GET') add('s3:ListAllMyBuckets', '*');
    else unmapped();
    return out;
  }

  if (key === '') {
    const s = sub[0];
    if (sub.length > 1) unmapped();
    else if ((method === 'GET' && s === undefined) || (method === 'HEAD' && s === undefined)) {
      const c: Record<string, string> = {};
      for (const [param, k] of [
        ['prefix', 's3:prefix'],
        ['delimiter', 's3:delimiter'],
        ['max-keys', 's3:max-keys'],
      ] as const) {
        const v = q.get(param);
        if (v !== null) c[k] = v;
      }
      add('s3:ListBucket', bucketArn, method === 'GET' ? c : {});
    } else if (method === 'GET' && s && BUCKET_GET[s]) add(BUCKET_GET[s], bucketArn);
    else if (method === 'PUT' && s === undefined) add('s3:CreateBucket', bucketArn);
    else if (method === 'PUT' && s && BUCKET_PUT[s]) add(BUCKET_PUT[s], bucketArn);
    else if (method === 'DELETE' && s === undefined) add('s3:DeleteBucket', bucketArn);
    else if (method === 'POST' && s === 'delete') {
      // DeleteObjects: S3 authorizes a delete of each key it names.
      for (const m of body.toString('utf8').matchAll(/<Object>([\s\S]*?)<\/Object>/g)) {
        const inner = m[1] ?? '';
        const k = xmlText(/<Key>([\s\S]*?)<\/Key>/.exec(inner)?.[1] ?? '');
        const v = /<VersionId>([\s\S]*?)<\/VersionId>/.exec(inner)?.[1];
        if (v) add('s3:DeleteObjectVersion', `${bucketArn}/${k}`, { 's3:versionid': xmlText(v) });
        else add('s3:DeleteObject', `${bucketArn}/${k}`);
      }
    } else unmapped();
    return out;
  }

  const s = sub[0];
  if (sub.length > 1) {
    unmapped();
    return out;
  }
  const uploadId = q.has('uploadId');
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (s === undefined && uploadId) add('s3:ListMultipartUploadParts', objectArn);
      else if (s === undefined)
        add(versionId ? 's3:GetObjectVersion' : 's3:GetObject', objectArn, versioned);
      else if (s === 'tagging')
        add(versionId ? 's3:GetObjectVersionTagging' : 's3:GetObjectTagging', objectArn, versioned);
      else if (s === 'acl')
        add(versionId ? 's3:GetObjectVersionAcl' : 's3:GetObjectAcl', objectArn, versioned);
      else if (s === 'attributes')
        add(
          versionId ? 's3:GetObjectVersionAttributes' : 's3:GetObjectAttributes',
          objectArn,
          versioned,
        );
      else if (s === 'retention') add('s3:GetObjectRetention', objectArn, versioned);
      else if (s === 'legal-hold') add('s3:GetObjectLegalHold', objectArn, versioned);
      else unmapped();
      break;
    case 'PUT': {
      if (s === 'tagging') {
        add(versionId ? 's3:PutObjectVersionTagging' : 's3:PutObjectTagging', objectArn, {
          ...versioned,
          ...tagConditions(tagsFromXml(body.toString('utf8'))),
        });
        break;
      }
      if (s === 'acl') {
        add(versionId ? 's3:PutObjectVersionAcl' : 's3:PutObjectAcl', objectArn, versioned);
        break;
      }
      if (s !== undefined) {
        unmapped();
        break;
      }
      const copySource = header('x-amz-copy-source');
      if (copySource) {
        // "/bucket/key?versionId=v", the key URL-encoded.
        const [path = '', query = ''] = copySource.split('?');
        const srcVersion = new URLSearchParams(query).get('versionId');
        const srcArn = `arn:${arn.partition}:s3:::${decodeURIComponent(path).replace(/^\//, '')}`;
        add(
          srcVersion ? 's3:GetObjectVersion' : 's3:GetObject',
          srcArn,
          srcVersion ? { 's3:versionid': srcVersion } : {},
        );
      }
      const tagging = header('x-amz-tagging');
      const acl = header('x-amz-acl');
      add('s3:PutObject', objectArn, {
        ...(acl ? { 's3:x-amz-acl': acl } : {}),
        ...(copySource ? { 's3:x-amz-copy-source': copySource } : {}),
        ...(tagging ? tagConditions(new URLSearchParams(tagging)) : {}),
      });
      // UploadPart carries no tags; a PUT or CopyObject that sets them needs the
      // tagging permission as well (S3 User Guide, object tagging).
      const replacesTags = !copySource || header('x-amz-tagging-directive') === 'REPLACE';
      if (tagging && replacesTags && !uploadId)
        add('s3:PutObjectTagging', objectArn, tagConditions(new URLSearchParams(tagging)));
      if (acl && !uploadId) add('s3:PutObjectAcl', objectArn, { 's3:x-amz-acl': acl });
      break;
    }
    case 'POST':
      if (s === 'uploads') {
        const tagging = header('x-amz-tagging');
        add('s3:PutObject', objectArn, tagging ? tagConditions(new URLSearchParams(tagging)) : {});
        if (tagging)
          add('s3:PutObjectTagging', objectArn, tagConditions(new URLSearchParams(tagging)));
      } else if (s === undefined && uploadId) add('s3:PutObject', objectArn);
      else if (s === 'restore') add('s3:RestoreObject', objectArn);
      else if (s === 'select') add('s3:GetObject', objectArn);
      else unmapped();
      break;
    case 'DELETE':
      if (s === undefined && uploadId) add('s3:AbortMultipartUpload', objectArn);
      else if (s === undefined)
        add(versionId ? 's3:DeleteObjectVersion' : 's3:DeleteObject', objectArn, versioned);
      else if (s === 'tagging')
        add(
          versionId ? 's3:DeleteObjectVersionTagging' : 's3:DeleteObjectTagging',
          objectArn,
          versioned,
        );
      else unmapped();
      break;
    default:
      unmapped();
  }
  return out;
}

function tagConditions(
  tags: URLSearchParams | Map<string, string>,
): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const keys: string[] = [];
  for (const [k, v] of tags) {
    keys.push(k);
    out[`s3:RequestObjectTag/${k}`] = v;
  }
  out['s3:RequestObjectTagKeys'] = keys;
  return out;
}

function tagsFromXml(xml: string): Map<string, string> {
  const tags = new Map<string, string>();
  for (const m of xml.matchAll(/<Tag>([\s\S]*?)<\/Tag>/g)) {
    const inner = m[1] ?? '';
    tags.set(
      xmlText(/<Key>([\s\S]*?)<\/Key>/.exec(inner)?.[1] ?? ''),
      xmlText(/<Value>([\s\S]*?)<\/Value>/.exec(inner)?.[1] ?? ''),
    );
  }
  return tags;
}

function xmlText(s: string): string {
  return s
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&#(\d+);/g, (_, d: string) => String.fromCodePoint(Number(d)))
    .replace(/&amp;/g, '&');
}

// --- DynamoDB ------------------------------------------------------------------------

type AttributeValue = { S?: string; N?: string; B?: string };
type Item = Record<string, AttributeValue>;

interface DynamoRequest {
  TableName?: string;
  IndexName?: string;
  Key?: Item;
  Item?: Item;
  KeyConditionExpression?: string;
  KeyConditions?: Record<
    string,
    { AttributeValueList?: AttributeValue[]; ComparisonOperator?: string }
  >;
  ExpressionAttributeNames?: Record<string, string>;
  ExpressionAttributeValues?: Item;
  Select?: string;
  ReturnValues?: string;
  ReturnConsumedCapacity?: string;
  RequestItems?: Record<
    string,
    { Keys?: Item[] } | { PutRequest?: { Item: Item }; DeleteRequest?: { Key: Item } }[]
  >;
  TransactItems?: Record<string, DynamoRequest>[];
}

/** What a transaction's item kinds are authorized as. */
const TRANSACT_ACTION: Record<string, string> = {
  Put: 'dynamodb:PutItem',
  Update: 'dynamodb:UpdateItem',
  Delete: 'dynamodb:DeleteItem',
  ConditionCheck: 'dynamodb:ConditionCheckItem',
  Get: 'dynamodb:GetItem',
};

function classifyDynamo(head: RequestHead, body: Buffer, ctx: ClassifyContext): Authorization[] {
  const op = String(head.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
  const operation = `DynamoDB ${op}`;
  let req: DynamoRequest;
  try {
    req = JSON.parse(body.toString('utf8')) as DynamoRequest;
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return [{ service: 'dynamodb', action: '?', resource: '*', conditions: {}, operation }];
  }
  const out: Authorization[] = [];
  const add = (
    action: string,
    table: string,
    index: string | undefined,
    conditions: Record<string, string | string[]>,
  ) =>
    out.push({
      service: 'dynamodb',
      action,
      resource: tableArn(table, index, ctx.arn),
      conditions,
      operation,
    });
  const leading = (values: string[]): Record<string, string[]> =>
    values.length > 0 ? { 'dynamodb:LeadingKeys': [...new Set(values)] } : {};
  const hashOf = (table: string, index?: string): string | undefined => {
    const s = ctx.keySchema(tableName(table));
    return index ? s?.indexes[index] : s?.hash;
  };
  const keyValue = (table: string, item: Item | undefined): string[] => {
    const h = hashOf(table);
    const v = h && item ? attrString(item[h]) : undefined;
    return v === undefined ? [] : [v];
  };
  const extra = (r: DynamoRequest): Record<string, string> => ({
    ...(r.Select ? { 'dynamodb:Select': r.Select } : {}),
    ...(r.ReturnValues ? { 'dynamodb:ReturnValues': r.ReturnValues } : {}),
    ...(r.ReturnConsumedCapacity
      ? { 'dynamodb:ReturnConsumedCapacity': r.ReturnConsumedCapacity }
      : {}),
  });

  switch (op) {
    case 'GetItem':
    case 'DeleteItem':
    case 'UpdateItem':
    case 'PutItem': {
      const t = req.TableName ?? '';
      add(`dynamodb:${op}`, t, undefined, {
        ...leading(keyValue(t, op === 'PutItem' ? req.Item : req.Key)),
        ...extra(req),
      });
      break;
    }
    case 'Query': {
      const t = req.TableName ?? '';
      const h = hashOf(t, req.IndexName);
      add('dynamodb:Query', t, req.IndexName, {
        ...leading(h ? queriedHash(req, h) : []),
        ...extra(req),
      });
      break;
    }
    case 'Scan':
      add('dynamodb:Scan', req.TableName ?? '', req.IndexName, extra(req));
      break;
    case 'BatchGetItem':
      for (const [t, r] of Object.entries(req.RequestItems ?? {})) {
        const keys = Array.isArray(r) ? [] : (r.Keys ?? []);
        add('dynamodb:BatchGetItem', t, undefined, leading(keys.flatMap((k) => keyValue(t, k))));
      }
      break;
    case 'BatchWriteItem':
      for (const [t, r] of Object.entries(req.RequestItems ?? {})) {
        const writes = Array.isArray(r) ? r : [];
        const values = writes.flatMap((w) =>
          keyValue(t, w.PutRequest ? w.PutRequest.Item : w.DeleteRequest?.Key),
        );
        add('dynamodb:BatchWriteItem', t, undefined, leading(values));
      }
      break;
    case 'TransactWriteItems':
    case 'TransactGetItems':
      for (const item of req.TransactItems ?? []) {
        for (const [kind, r] of Object.entries(item)) {
          const action = TRANSACT_ACTION[kind];
          const t = r.TableName ?? '';
          if (!action) add('?', t, undefined, {});
          else add(action, t, undefined, leading(keyValue(t, kind === 'Put' ? r.Item : r.Key)));
        }
      }
      break;
    case 'ListTables':
      out.push({
        service: 'dynamodb',
        action: 'dynamodb:ListTables',
        resource: '*',
        conditions: {},
        operation,
      });
      break;
    default:
      if (req.TableName && /^[A-Z][A-Za-z]+$/.test(op) && !op.startsWith('ExecuteStatement'))
        // Table-level operations (DescribeTable, CreateTable, DescribeTimeToLive, ...) are
        // authorized as the operation's name on the table.
        add(`dynamodb:${op}`, req.TableName, undefined, {});
      else out.push({ service: 'dynamodb', action: '?', resource: '*', conditions: {}, operation });
  }
  return out;
}

function tableName(t: string): string {
  return t.replace(/^arn:[^:]+:dynamodb:[^:]*:[^:]*:table\//, '');
}

function tableArn(table: string, index: string | undefined, arn: ArnContext): string {
  const base = table.startsWith('arn:')
    ? table
    : `arn:${arn.partition}:dynamodb:${arn.region}:${arn.account}:table/${table}`;
  return index ? `${base}/index/${index}` : base;
}

function attrString(v: AttributeValue | undefined): string | undefined {
  return v?.S ?? v?.N ?? v?.B;
}

/** The partition key values a Query's key condition names (`#pk = :pk`, or KeyConditions). */
function queriedHash(req: DynamoRequest, hash: string): string[] {
  if (req.KeyConditions) {
    const c = req.KeyConditions[hash];
    const v = attrString(c?.AttributeValueList?.[0]);
    return v === undefined ? [] : [v];
  }
  const names = req.ExpressionAttributeNames ?? {};
  const values = req.ExpressionAttributeValues ?? {};
  const out: string[] = [];
  for (const m of (req.KeyConditionExpression ?? '').matchAll(/([#\w.]+)\s*=\s*(:\w+)/g)) {
    const name = m[1]!.startsWith('#') ? names[m[1]!] : m[1];
    if (name !== hash) continue;
    const v = attrString(values[m[2]!]);
    if (v !== undefined) out.push(v);
  }
  return out;
}

// --- Step Functions --------------------------------------------------------------------

function classifyStates(head: RequestHead, body: Buffer): Authorization[] {
  const op = String(head.headers['x-amz-target'] ?? '').split('.')[1] ?? '';
  const operation = `StepFunctions ${op}`;
  let req: Record<string, unknown>;
  try {
    req = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return [{ service: 'states', action: '?', resource: '*', conditions: {}, operation }];
  }
  const named = [req.executionArn, req.stateMachineArn, req.mapRunArn, req.activityArn].find(
    (v): v is string => typeof v === 'string' && v.length > 0,
  );
  return [
    {
      service: 'states',
      action: op ? `states:${op}` : '?',
      resource: named ?? '*',
      conditions: {},
      operation,
    },
  ];
}

// --- Batch -------------------------------------------------------------------------------

const BATCH_OPS: Record<string, string> = {
  submitjob: 'SubmitJob',
  describejobs: 'DescribeJobs',
  listjobs: 'ListJobs',
  terminatejob: 'TerminateJob',
  canceljob: 'CancelJob',
  describejobqueues: 'DescribeJobQueues',
  describejobdefinitions: 'DescribeJobDefinitions',
  describecomputeenvironments: 'DescribeComputeEnvironments',
  registerjobdefinition: 'RegisterJobDefinition',
  listtagsforresource: 'ListTagsForResource',
};

function classifyBatch(head: RequestHead, body: Buffer, arn: ArnContext): Authorization[] {
  const path = new URL(head.url, 'http://batch.invalid').pathname;
  const op = BATCH_OPS[path.replace(/^\/v1\//, '').toLowerCase()];
  const operation = `Batch ${head.method} ${path}`;
  if (!op) return [{ service: 'batch', action: '?', resource: '*', conditions: {}, operation }];
  let req: Record<string, unknown>;
  try {
    req = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
  } catch (e) {
    if (!(e instanceof SyntaxError)) throw e;
    return [{ service: 'batch', action: '?', resource: '*', conditions: {}, operation }];
  }
  const a = (action: string, resource: string): Authorization => ({
    service: 'batch',
    action: `batch:${action}`,
    resource,
    conditions: {},
    operation,
  });
  const batchArn = (kind: string, nameOrArn: unknown) =>
    typeof nameOrArn === 'string' && nameOrArn.startsWith('arn:')
      ? nameOrArn
      : `arn:${arn.partition}:batch:${arn.region}:${arn.account}:${kind}/${String(nameOrArn)}`;
  switch (op) {
    case 'SubmitJob':
      // Authorized against both the queue and the definition (both resource types).
      return [
        a(op, batchArn('job-queue', req.jobQueue)),
        a(op, batchArn('job-definition', req.jobDefinition)),
      ];
    case 'TerminateJob':
    case 'CancelJob':
      return [a(op, batchArn('job', req.jobId))];
    default:
      return [a(op, '*')];
  }
}
