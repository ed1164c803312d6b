// The worker fleet's job definitions: the container images (built from
// containers/worker/ at deploy time), the job role, the retry policy, and the role of a
// hybrid fleet (workers outside AWS Batch) holding the same data grants.
//
// Retry policy (evaluateOnExit, first match wins):
//   exit 75 (WORKER_EXIT.interrupted)  RETRY  SIGTERM or a Spot notice: chunks released unspent
//   exit 76 (WORKER_EXIT.hung)         RETRY  an inference hung; its chunk was abandoned
//   "Host EC2*"                        RETRY  the instance went away before the worker could exit
//   "Your Spot Task was interrupted*"  RETRY  Fargate Spot reclaim
//   anything else                      EXIT   a real failure ends the attempt at once
// So Batch attempts are spent only by interruptions, which have a budget of their own
// (WORKER_ATTEMPTS); a chunk's attempts are the ledger's, and a release does not count
// one. Work lost to a crash is not lost to the job: the ledger still holds the chunk and
// the Verify step re-drives it, bounded by maxRounds. Retrying crashes here would
// instead repeat a poison chunk's crash on every attempt of every round.

import { Duration, RemovalPolicy, Size } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { ENV, WORKER_EXIT } from '../../contracts/cloud.ts';
import { WORKER_VCPUS } from '../../contracts/stack-sizing.ts';
import { CLOUD_WORKER_MEMORY_MIB } from '../../core/pipeline/memory-estimate.ts';
import { acknowledgeFindings } from '../nag.ts';
import { REPO_ROOT } from '../paths.ts';
import type { Storage } from './storage.ts';

export const WORKER_DOCKERFILES = {
  cpu: 'containers/worker/Dockerfile',
  gpu: 'containers/worker/Dockerfile.cuda',
} as const;

/** The job's id reaches the container as a Batch parameter substituted into the command. */
export const WORKER_COMMAND = ['worker', '--job', 'Ref::jobId'];

/**
 * Batch attempts per array child (Batch's maximum is 10). Only interruptions retry, so
 * this is the interruption budget: a child survives nine Spot reclaims in a row.
 */
export const WORKER_ATTEMPTS = 10;

/** Exit codes `tessera worker` ends with when it should simply be run again. */
export const RETRY_ON_EXIT_CODES = [WORKER_EXIT.interrupted, WORKER_EXIT.hung].map(String);

export const RETRY_ON_HOST_LOSS = [
  // EC2 Spot reclaim (and any other loss of the instance) as Batch reports it.
  'Host EC2*',
  // Fargate Spot reclaim.
  'Your Spot Task was interrupted*',
];

/**
 * What a worker needs of the job data, wherever it runs: the Batch job role and the
 * hybrid fleet's role get exactly these. Reads anything the manifest may name; writes
 * only seam partials and outputs/ (never manifests: denied); the ledger read/write.
 */
export function grantWorkerData(storage: Storage, grantee: iam.IGrantable): void {
  storage.grantReadBucket(grantee);
  storage.grantReadAllowedBuckets(grantee);
  storage.grantWritePartials(grantee);
  storage.grantWriteOutputs(grantee);
  storage.grantLedger(grantee, 'readwrite');
}

export interface WorkersProps {
  readonly storage: Storage;
  /** Attempt timeout: a worker claims chunks until none are left, so this bounds a hang. */
  readonly timeout: Duration;
  /** Fargate tasks need a public IP when the subnets have no NAT. */
  readonly assignPublicIp: boolean;
  /** Build the images for x86_64 whatever machine runs `cdk deploy`. */
  readonly platform?: ecrAssets.Platform;
}

export class Workers extends Construct {
  readonly gpuJobDefinition: batch.EcsJobDefinition;
  readonly cpuJobDefinition: batch.EcsJobDefinition;
  readonly jobRole: iam.Role;
  readonly executionRole: iam.Role;
  /** For `tessera worker --job <id>` outside AWS Batch: assumable in this account. */
  readonly hybridRole: iam.Role;

  constructor(scope: Construct, id: string, props: WorkersProps) {
    super(scope, id);
    const { storage } = props;
    const platform = props.platform ?? ecrAssets.Platform.LINUX_AMD64;

    this.jobRole = new iam.Role(this, 'JobRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Tessera worker containers: the ledger and the job data',
    });
    grantWorkerData(storage, this.jobRole);

    // A hybrid fleet (on-premises GPUs, other clouds) runs the same worker with the same
    // rights and nothing else: the account's principals may assume it, so which people or
    // machines may is decided by their own IAM policies (sts:AssumeRole on this role).
    this.hybridRole = new iam.Role(this, 'HybridWorkerRole', {
      assumedBy: new iam.AccountRootPrincipal(),
      description: 'Tessera workers outside AWS Batch: the ledger and the job data',
      // A worker runs for hours; the SDK refreshes assumed-role credentials as they expire.
      maxSessionDuration: Duration.hours(12),
    });
    grantWorkerData(storage, this.hybridRole);

    // Own execution role instead of the default one with AmazonECSTaskExecutionRolePolicy:
    // the image assets and the log group grant exactly what pulling and logging need.
    this.executionRole = new iam.Role(this, 'ExecutionRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Tessera worker containers: pull the image, write logs',
    });

    acknowledgeFindings(
      this.executionRole,
      'AwsSolutions-IAM5',
      /^Resource::\*$/,
      'ecr:GetAuthorizationToken has no resource-level permissions; image pulls themselves are scoped to the asset repository.',
    );

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_MONTH,
      removalPolicy: RemovalPolicy.DESTROY,
    });
    const logging = ecs.LogDriver.awsLogs({ logGroup, streamPrefix: 'worker' });

    const environment: Record<string, string> = {
      [ENV.table]: storage.table.tableName,
      [ENV.bucket]: storage.bucket.bucketName,
      [ENV.allowedBuckets]: storage.allowedBucketNames.join(','),
    };
    const image = (file: string) =>
      ecs.ContainerImage.fromAsset(REPO_ROOT, { file, platform, exclude: ['cdk.out'] });

    const retryStrategies = [
      ...RETRY_ON_EXIT_CODES.map((onExitCode) =>
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom({ onExitCode })),
      ),
      ...RETRY_ON_HOST_LOSS.map((onStatusReason) =>
        batch.RetryStrategy.of(batch.Action.RETRY, batch.Reason.custom({ onStatusReason })),
      ),
      batch.RetryStrategy.of(batch.Action.EXIT, batch.Reason.custom({ onStatusReason: '*' })),
    ];
    const common = {
      retryAttempts: WORKER_ATTEMPTS,
      retryStrategies,
      timeout: props.timeout,
      // The submit task sets jobId; the default keeps a hand-submitted job from running blind.
      parameters: { jobId: 'missing-job-id' },
      propagateTags: true,
    };

    this.gpuJobDefinition = new batch.EcsJobDefinition(this, 'GpuJob', {
      ...common,
      container: new batch.EcsEc2ContainerDefinition(this, 'GpuContainer', {
        image: image(WORKER_DOCKERFILES.gpu),
        command: WORKER_COMMAND,
        gpu: 1,
        // Fits the smallest default type (g4dn/g5/g6.xlarge: 4 vCPU, 16 GiB, ECS keeps some).
        cpu: WORKER_VCPUS.gpu,
        memory: Size.mebibytes(CLOUD_WORKER_MEMORY_MIB.gpu),
        environment,
        jobRole: this.jobRole,
        executionRole: this.executionRole,
        logging,
        linuxParameters: workerInit(this, 'GpuLinux'),
      }),
    });
    this.cpuJobDefinition = new batch.EcsJobDefinition(this, 'CpuJob', {
      ...common,
      container: new batch.EcsFargateContainerDefinition(this, 'CpuContainer', {
        image: image(WORKER_DOCKERFILES.cpu),
        command: WORKER_COMMAND,
        // CPU workers run the model with all cores (intra-op threads) and large batches.
        cpu: WORKER_VCPUS.cpu,
        // The planner refuses a job whose workers would not fit (see CLOUD_WORKER_MEMORY_MIB).
        memory: Size.mebibytes(CLOUD_WORKER_MEMORY_MIB.cpu),
        environment,
        jobRole: this.jobRole,
        executionRole: this.executionRole,
        logging,
        assignPublicIp: props.assignPublicIp,
        fargatePlatformVersion: ecs.FargatePlatformVersion.LATEST,
        fargateCpuArchitecture: ecs.CpuArchitecture.X86_64,
        ephemeralStorageSize: Size.gibibytes(50),
        linuxParameters: workerInit(this, 'CpuLinux'),
      }),
    });
  }
}

/**
 * An init process as PID 1 (docker --init). A worker whose inference thread hangs in
 * native code cannot exit normally (Node joins its threads first) and SIGKILLs itself;
 * the kernel ignores a signal PID 1 sends itself, so without an init the container would
 * hang until the attempt timeout. It also reaps zombies.
 */
function workerInit(scope: Construct, id: string): batch.LinuxParameters {
  return new batch.LinuxParameters(scope, id, { initProcessEnabled: true });
}
