// The pipeline's Lambdas: thin handlers (functions/*.ts) bundled by esbuild on this
// machine (no Docker) into one index.mjs each, with zstd.wasm beside it (see
// `lambdaBundling`). Each function has its own role holding only what its step does.
//
//   planner     S3 trigger + Plan task: read manifests/inputs, write jobs/, ledger rw,
//               states:StartExecution on the pipeline (by name: see `stateMachineArn`)
//   planRange   PlanRange/CompletePlan tasks: read the bucket and inputs, ledger rw
//   verify      ledger rw (expired leases may turn poison), jobs/ rw, batch:ListJobs and
//               batch:DescribeJobs (the round's failed workers; no resource scope exists)
//   blend       read partials and output, write outputs/ (stack bucket or allowed buckets)
//   pyramid     as blend: read the output (and the frozen manifest), write its levels
//   finalize    as blend, plus the ledger (reads counts, stamps the job row) and jobs/ (status.json)
//   markFailed  jobs/ rw (status.json); no ledger, no outputs
//   watchdog    schedule (monitoring.ts): states:ListExecutions on the pipeline, ledger
//               read, bucket read, jobs/ write (progress.json, status.json)

import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { ArnFormat, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3n from 'aws-cdk-lib/aws-s3-notifications';
import { Construct } from 'constructs';
import { ENV, HANDLERS, KEYS } from '../../contracts/cloud.ts';
import { LAMBDA_SIZING } from '../../contracts/stack-sizing.ts';
import { acknowledge, acknowledgeFindings } from '../nag.ts';
import { REPO_ROOT } from '../paths.ts';
import type { Storage } from './storage.ts';

export type FunctionName = keyof typeof HANDLERS;

/**
 * Modules kept out of the Lambda bundles. The AWS SDK is bundled, not taken from the
 * runtime: the handlers use @aws-sdk/lib-storage and lib-dynamodb at the versions the
 * tests ran, which the runtime's SDK copy does not promise to match or contain.
 */
export const LAMBDA_EXTERNALS = [
  // Native inference runtime (hundreds of MB): workers only. A handler importing it
  // would fail at cold start; the bundling test catches that before a deploy does.
  'onnxruntime-node',
];

/**
 * @bokuweb/zstd-wasm's Node build reads `zstd.wasm` from beside its own module
 * (`resolve(__dirname, './zstd.wasm')`). Bundled, that module is index.mjs, so the bundle
 * must define `__dirname` and carry the file there. This is the copy the bundled module
 * sits beside in node_modules (the package's `node` export), found as Node resolves it.
 */
export const ZSTD_WASM = join(
  dirname(createRequire(import.meta.url).resolve('@bokuweb/zstd-wasm')),
  'zstd.wasm',
);

/**
 * The ESM banner of every bundle. Bundled CommonJS dependencies still call require() and
 * read __dirname/__filename, none of which ESM defines. The imports are aliased to names
 * no bundled module uses, so the banner cannot clash with the code below it.
 */
export const LAMBDA_BANNER = [
  "import { createRequire as __tesseraCreateRequire } from 'node:module';",
  "import { fileURLToPath as __tesseraFileURLToPath } from 'node:url';",
  "import { dirname as __tesseraDirname } from 'node:path';",
  'const require = __tesseraCreateRequire(import.meta.url);',
  'const __filename = __tesseraFileURLToPath(import.meta.url);',
  'const __dirname = __tesseraDirname(__filename);',
].join(' ');

/** How every Lambda is bundled (esbuild on this machine, no Docker). */
export function lambdaBundling(): nodejs.BundlingOptions {
  return {
    forceDockerBundling: false,
    format: nodejs.OutputFormat.ESM,
    target: 'node22',
    mainFields: ['module', 'main'],
    externalModules: LAMBDA_EXTERNALS,
    banner: LAMBDA_BANNER,
    minify: true,
    sourceMap: true,
    logLevel: nodejs.LogLevel.ERROR,
    commandHooks: {
      beforeBundling: () => [],
      beforeInstall: () => [],
      // inputDir is the project root as the bundler sees it (the same path locally, the
      // mount point under Docker), so the source is named relative to it.
      afterBundling: (inputDir, outputDir) => [
        `cp ${shellQuote(join(inputDir, relative(REPO_ROOT, ZSTD_WASM)))} ${shellQuote(join(outputDir, 'zstd.wasm'))}`,
      ],
    },
  };
}

const shellQuote = (s: string): string => `'${s.replace(/'/g, "'\\''")}'`;

/** What Verify asks AWS Batch: the failed children of a round and their descriptions. */
export const BATCH_READ_ACTIONS = ['batch:ListJobs', 'batch:DescribeJobs'] as const;

export interface FunctionsProps {
  readonly storage: Storage;
  /** Name of the pipeline state machine the planner starts (see `stateMachineArn`). */
  readonly stateMachineName: string;
  readonly maxRounds: number;
  readonly maxChunks: number;
  /** Minutes without a finished chunk before the watchdog counts a job as stalled. */
  readonly stallMinutes: number;
}

interface Sizing {
  memoryMiB: number;
  timeout: Duration;
}

// From contracts/stack-sizing.ts, which `tessera plan --cloud` checks jobs against too.
const sized = (s: { memoryMiB: number; timeoutSeconds: number }): Sizing => ({
  memoryMiB: s.memoryMiB,
  timeout: Duration.seconds(s.timeoutSeconds),
});
const SIZING: Record<FunctionName, Sizing> = {
  planner: sized(LAMBDA_SIZING.planner),
  planRange: sized(LAMBDA_SIZING.planRange),
  verify: sized(LAMBDA_SIZING.verify),
  blend: sized(LAMBDA_SIZING.blend),
  pyramid: sized(LAMBDA_SIZING.pyramid),
  finalize: sized(LAMBDA_SIZING.finalize),
  markFailed: sized(LAMBDA_SIZING.markFailed),
  watchdog: sized(LAMBDA_SIZING.watchdog),
};

export class Functions extends Construct {
  readonly fns: Record<FunctionName, lambda.Function>;
  /** ARN of the pipeline state machine, built from its name. */
  readonly stateMachineArn: string;

  constructor(scope: Construct, id: string, props: FunctionsProps) {
    super(scope, id);
    const { storage } = props;
    // The planner must know the state machine, and the state machine invokes the planner:
    // referencing the state machine's ARN attribute would be a dependency cycle. Its
    // name is fixed by the stack, so the ARN is known without referencing the resource.
    this.stateMachineArn = Stack.of(this).formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: props.stateMachineName,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });

    const environment: Record<string, string> = {
      [ENV.table]: storage.table.tableName,
      [ENV.bucket]: storage.bucket.bucketName,
      [ENV.allowedBuckets]: storage.allowedBucketNames.join(','),
      [ENV.maxRounds]: String(props.maxRounds),
      [ENV.maxChunks]: String(props.maxChunks),
      NODE_OPTIONS: '--enable-source-maps',
    };

    const make = (name: FunctionName, extraEnv: Record<string, string> = {}): lambda.Function => {
      const sizing = SIZING[name];
      const logGroup = new logs.LogGroup(this, `${name}Logs`, {
        retention: logs.RetentionDays.ONE_MONTH,
        removalPolicy: RemovalPolicy.DESTROY,
      });
      // Own role, no AWSLambdaBasicExecutionRole: log writes scoped to this log group.
      const role = new iam.Role(this, `${name}Role`, {
        assumedBy: new iam.ServicePrincipal('lambda.amazonaws.com'),
        description: `Tessera ${name} Lambda`,
      });
      logGroup.grantWrite(role);
      const fn = new nodejs.NodejsFunction(this, name, {
        entry: join(REPO_ROOT, HANDLERS[name]),
        handler: 'handler',
        projectRoot: REPO_ROOT,
        depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.X86_64,
        memorySize: sizing.memoryMiB,
        timeout: sizing.timeout,
        role,
        logGroup,
        environment: { ...environment, ...extraEnv },
        bundling: lambdaBundling(),
      });
      acknowledge(
        fn,
        'AwsSolutions-L1',
        'nodejs22.x on purpose: the workers, the CI and the local test runs use Node 22, so handlers run on the runtime they are tested on.',
      );
      return fn;
    };

    const planner = make('planner', { [ENV.stateMachineArn]: this.stateMachineArn });
    storage.grantReadBucket(planner);
    storage.grantWriteJobs(planner);
    storage.grantReadAllowedBuckets(planner);
    storage.grantLedger(planner, 'readwrite');
    planner.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:StartExecution'],
        resources: [this.stateMachineArn],
      }),
    );
    storage.bucket.addEventNotification(
      // s3:ObjectCreated:* covers PUT, POST, COPY and multipart uploads of a manifest.
      s3.EventType.OBJECT_CREATED,
      new s3n.LambdaDestination(planner),
      { prefix: KEYS.manifestPrefix, suffix: '.json' },
    );
    // The notification is configured by CDK's singleton custom resource (one per stack).
    const notificationsHandler = Stack.of(this).node.children.find((c) =>
      c.node.id.startsWith('BucketNotificationsHandler'),
    );
    if (notificationsHandler !== undefined) {
      acknowledgeFindings(
        notificationsHandler,
        'AwsSolutions-IAM4',
        /AWSLambdaBasicExecutionRole$/,
        "CDK's bucket-notifications custom resource runs once per deployment; its role is CDK-managed and only logs besides s3:PutBucketNotification.",
      );
    }

    // A large plan's rows, a range a call: reads the frozen manifest and the input's
    // metadata (to list the chunks), writes ledger rows; nothing in the bucket.
    const planRange = make('planRange');
    storage.grantReadBucket(planRange);
    storage.grantReadAllowedBuckets(planRange);
    storage.grantLedger(planRange, 'readwrite');

    const verify = make('verify');
    storage.grantReadBucket(verify);
    storage.grantWriteJobs(verify);
    storage.grantLedger(verify, 'readwrite');
    // The failed children of the round's Batch job (status reason, exit code, log stream)
    // go into the job's failure reason.
    verify.addToRolePolicy(
      new iam.PolicyStatement({
        actions: [...BATCH_READ_ACTIONS],
        resources: ['*'],
      }),
    );
    acknowledgeFindings(
      this.node.findChild('verifyRole'),
      'AwsSolutions-IAM5',
      /^Resource::\*$/,
      'batch:ListJobs and batch:DescribeJobs have no resource-level permissions (Service Authorization Reference): Resource must be "*". Both only read job descriptions.',
    );

    const blend = make('blend');
    storage.grantReadBucket(blend);
    storage.grantWriteOutputs(blend);
    storage.grantReadAllowedBuckets(blend);

    // The pyramid's levels: reads the frozen manifest and the output, writes outputs/.
    const pyramid = make('pyramid');
    storage.grantReadBucket(pyramid);
    storage.grantWriteOutputs(pyramid);
    storage.grantReadAllowedBuckets(pyramid);

    const finalize = make('finalize');
    storage.grantReadBucket(finalize);
    // status.json SUCCEEDED (outputs/ alone does not cover jobs/).
    storage.grantWriteJobs(finalize);
    storage.grantWriteOutputs(finalize);
    storage.grantReadAllowedBuckets(finalize);
    storage.grantLedger(finalize, 'readwrite');

    const markFailed = make('markFailed');
    storage.grantReadBucket(markFailed);
    storage.grantWriteJobs(markFailed);

    // Execution names are job ids: listing the running executions finds the running jobs.
    const watchdog = make('watchdog', {
      [ENV.stateMachineArn]: this.stateMachineArn,
      [ENV.stallMinutes]: String(props.stallMinutes),
    });
    storage.grantReadBucket(watchdog);
    storage.grantWriteJobs(watchdog);
    storage.grantLedger(watchdog, 'read');
    watchdog.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['states:ListExecutions'],
        resources: [this.stateMachineArn],
      }),
    );

    this.fns = { planner, planRange, verify, blend, pyramid, finalize, markFailed, watchdog };
  }
}
