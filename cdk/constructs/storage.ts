// The pipeline's state: one bucket (manifests, per-job control files, seam partials,
// outputs, and by default inputs and models) and one DynamoDB table (the ledger). The
// grant methods here are the only way other constructs get at either, so each access
// pattern is named once:
//
//   s3://<bucket>/manifests/*.json          written by users and other pipelines; never by workers
//   s3://<bucket>/jobs/<jobId>/...          control files, status.json (Lambdas), seam partials
//   s3://<bucket>/jobs/<jobId>/partials/... the only control prefix workers write
//   s3://<bucket>/jobs/<name>/status.json   status of a manifest that never became a job
//                                           (jobs/rejected/<name>/ if its name has a job id's shape)
//   s3://<bucket>/outputs/...               job outputs: workers, blend and finalize write here
//   s3://<bucket>/<anything else>           inputs, models: read-only for the whole pipeline
//   s3://<allowed bucket>/...               read-only, except outputs/ (written as above)
//
// The manifest cloud policy (core/manifest/cloud-policy.ts) refuses any output.url outside
// `outputs/`, so a job never needs a write grant these do not give.

import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct, type IConstruct } from 'constructs';
import {
  OPEN_INDEX,
  OPEN_PK,
  OPEN_PROJECTED,
  OPEN_SK,
  PK,
  SK,
} from '../../adapters/aws/dynamo-ledger.ts';
import { KEYS, PARTIAL_TAG } from '../../contracts/cloud.ts';
import { CLOUD_OUTPUT_PREFIX } from '../../core/manifest/index.ts';
import { acknowledge, acknowledgeFindings } from '../nag.ts';

export interface StorageProps {
  /** Seam partials older than this are expired (the safety net for abandoned jobs). */
  readonly partialsExpireDays: number;
  /** Extra buckets manifests may use (read inputs/models anywhere, write outputs under outputs/). */
  readonly allowedBuckets: readonly string[];
  /** Keep bucket and table when the stack is deleted (default true). */
  readonly retain?: boolean;
}

export type Access = 'read' | 'readwrite';

export class Storage extends Construct {
  readonly bucket: s3.Bucket;
  readonly logBucket: s3.Bucket;
  readonly table: dynamodb.TableV2;
  private readonly allowed: s3.IBucket[];

  constructor(scope: Construct, id: string, props: StorageProps) {
    super(scope, id);
    const retain = props.retain ?? true;
    const removalPolicy = retain ? RemovalPolicy.RETAIN : RemovalPolicy.DESTROY;

    this.logBucket = new s3.Bucket(this, 'AccessLogs', {
      // Server access log delivery supports SSE-S3 only.
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [{ id: 'expire-logs', expiration: Duration.days(365) }],
      removalPolicy,
    });
    acknowledge(
      this.logBucket,
      'AwsSolutions-S1',
      'This is the access-log bucket itself; logging it to another bucket would only move the finding.',
    );

    this.bucket = new s3.Bucket(this, 'Bucket', {
      encryption: s3.BucketEncryption.S3_MANAGED,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      enforceSSL: true,
      versioned: true,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: this.logBucket,
      serverAccessLogsPrefix: 'bucket/',
      lifecycleRules: [
        {
          // Lifecycle prefixes cannot hold wildcards (jobs/*/partials/), so partials are
          // tagged by their writer and matched by tag under jobs/. Expiring a partial of a
          // job still running fails its blend loudly (missing partial), never silently.
          id: 'expire-seam-partials',
          prefix: KEYS.jobsPrefix,
          tagFilters: { [PARTIAL_TAG.key]: PARTIAL_TAG.value },
          expiration: Duration.days(props.partialsExpireDays),
        },
        {
          // Versioning keeps every overwritten chunk block and deleted partial; bound it.
          id: 'expire-noncurrent-versions',
          noncurrentVersionExpiration: Duration.days(props.partialsExpireDays),
          expiredObjectDeleteMarker: true,
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy,
    });

    this.table = new dynamodb.TableV2(this, 'Ledger', {
      // The layout is the DynamoDB ledger adapter's (its tableDefinition), imported so the
      // two cannot drift.
      partitionKey: { name: PK, type: dynamodb.AttributeType.STRING },
      sortKey: { name: SK, type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: retain,
      removalPolicy,
      globalSecondaryIndexes: [
        {
          // Sparse (only unfinished chunks carry gpk/gsk) and write-sharded in gpk. INCLUDE
          // rather than ALL: a claimer judges a candidate from these without reading the
          // base row, and the index stores no more than unfinished chunks need.
          indexName: OPEN_INDEX,
          partitionKey: { name: OPEN_PK, type: dynamodb.AttributeType.STRING },
          sortKey: { name: OPEN_SK, type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: [...OPEN_PROJECTED],
        },
      ],
    });

    this.allowed = props.allowedBuckets.map((name, i) =>
      s3.Bucket.fromBucketName(this, `Allowed${i}`, name),
    );
  }

  // Grants are written out rather than taken from bucket.grantRead & co., whose action
  // wildcards (s3:GetObject*, s3:List*, s3:Abort*) allow more than the stores call.

  /** Read anything in the stack bucket: manifests (any version), control files, inputs, models. */
  grantReadBucket(grantee: iam.IGrantable): void {
    this.allow(grantee, READ_OBJECT, [this.bucket.arnForObjects('*')]);
    this.allow(grantee, LIST, [this.bucket.bucketArn]);
  }

  /** Write and delete per-job control files and partials under jobs/ (partials are tagged). */
  grantWriteJobs(grantee: iam.IGrantable): void {
    this.allow(
      grantee,
      [...WRITE_OBJECT, 's3:PutObjectTagging', 's3:DeleteObject'],
      [this.bucket.arnForObjects(`${KEYS.jobsPrefix}*`)],
    );
  }

  /**
   * Write (and tag) seam partials only, under jobs/<jobId>/partials/: all a worker writes
   * under jobs/. It cannot touch a job's frozen manifest, status or blend items.
   */
  grantWritePartials(grantee: iam.IGrantable): void {
    this.allow(
      grantee,
      [...WRITE_OBJECT, 's3:PutObjectTagging'],
      [this.bucket.arnForObjects(`${KEYS.jobsPrefix}*/partials/*`)],
    );
  }

  /**
   * Write outputs: under outputs/ of the stack bucket and of every allowed bucket, nowhere
   * else (the cloud policy refuses other output URLs). Models, inputs and other teams'
   * data stay read-only. The explicit deny on manifests/ is kept as a second line: a
   * worker dropping a manifest would start new jobs with the pipeline's privileges.
   */
  grantWriteOutputs(grantee: iam.IGrantable): void {
    this.allow(grantee, WRITE_OBJECT, [
      this.bucket.arnForObjects(`${CLOUD_OUTPUT_PREFIX}*`),
      ...this.allowed.map((b) => b.arnForObjects(`${CLOUD_OUTPUT_PREFIX}*`)),
    ]);
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({
        effect: iam.Effect.DENY,
        actions: [...WRITE_OBJECT, 's3:DeleteObject', 's3:DeleteObjectVersion'],
        resources: [this.bucket.arnForObjects(`${KEYS.manifestPrefix}*`)],
      }),
    );
  }

  /** Read the operator's extra buckets: inputs, models and manifests (outputs: grantWriteOutputs). */
  grantReadAllowedBuckets(grantee: iam.IGrantable): void {
    if (this.allowed.length === 0) return;
    this.allow(
      grantee,
      READ_OBJECT,
      this.allowed.map((b) => b.arnForObjects('*')),
    );
    this.allow(
      grantee,
      LIST,
      this.allowed.map((b) => b.bucketArn),
    );
  }

  /** Ledger rows and the `open` index of this table only. */
  grantLedger(grantee: iam.IGrantable, access: Access): void {
    const actions = access === 'read' ? LEDGER_READ : [...LEDGER_READ, ...LEDGER_WRITE];
    this.allow(grantee, actions, [
      this.table.tableArn,
      `${this.table.tableArn}/index/${OPEN_INDEX}`,
    ]);
  }

  /** Bucket names of the allowed extra buckets (for the environment). */
  get allowedBucketNames(): string[] {
    return this.allowed.map((b) => b.bucketName);
  }

  private allow(grantee: iam.IGrantable, actions: readonly string[], resources: string[]): void {
    const principal = grantee.grantPrincipal;
    principal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: [...actions], resources }));
    if (isConstruct(principal)) {
      acknowledgeFindings(
        principal,
        'AwsSolutions-IAM5',
        OBJECT_WILDCARD,
        'S3 object ARNs name keys by pattern: reads cover the bucket, writes only its jobs/ control prefix, jobs/*/partials/ (workers) or outputs/; manifests/ is denied explicitly where outputs are written.',
      );
    }
  }
}

const READ_OBJECT = ['s3:GetObject', 's3:GetObjectVersion'] as const;
const LIST = ['s3:ListBucket'] as const;
// Multipart uploads (lib-storage) need AbortMultipartUpload besides PutObject.
const WRITE_OBJECT = ['s3:PutObject', 's3:AbortMultipartUpload'] as const;
const LEDGER_READ = [
  'dynamodb:GetItem',
  'dynamodb:BatchGetItem',
  'dynamodb:Query',
  'dynamodb:Scan',
  'dynamodb:ConditionCheckItem',
  'dynamodb:DescribeTable',
] as const;
const LEDGER_WRITE = [
  'dynamodb:PutItem',
  'dynamodb:UpdateItem',
  'dynamodb:DeleteItem',
  'dynamodb:BatchWriteItem',
] as const;
/**
 * IAM5 findings of the object grants above: `<bucket ARN>/*`, `.../jobs/*`,
 * the workers' partials (`jobs/` + `*` + `/partials/*`), `.../outputs/*`, and the same in
 * allowed buckets.
 */
const OBJECT_WILDCARD =
  /^Resource::(<Storage[A-Za-z0-9]+\.Arn>|arn:<AWS::Partition>:s3:::[a-z0-9.-]+)\/(jobs\/|jobs\/\*\/partials\/|outputs\/)?\*$/;

function isConstruct(x: unknown): x is IConstruct {
  return typeof x === 'object' && x !== null && 'node' in x;
}
