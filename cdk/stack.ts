// TesseraStack: the whole cloud pipeline in one deployable unit. It wires the constructs
// together and exposes what other teams need (bucket, table, state machine, queues, and
// the role a hybrid fleet's workers assume).

import { CfnOutput, Duration, Stack, type StackProps, Token } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { BatchCompute } from './constructs/batch.ts';
import { Functions } from './constructs/functions.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { Network } from './constructs/network.ts';
import { Pipeline } from './constructs/pipeline.ts';
import { Storage } from './constructs/storage.ts';
import { Workers } from './constructs/workers.ts';
import { checkKnobs, jobTimeoutHours, KnobError, type Knobs } from './knobs.ts';

export interface TesseraStackProps extends StackProps {
  readonly knobs: Knobs;
  /** Keep bucket and table on stack deletion (default true; tests and sandboxes pass false). */
  readonly retainData?: boolean;
}

export class TesseraStack extends Stack {
  readonly storage: Storage;
  readonly functions: Functions;
  readonly compute: BatchCompute;
  readonly workers: Workers;
  readonly pipeline: Pipeline;
  readonly monitoring: Monitoring;

  constructor(scope: Construct, id: string, props: TesseraStackProps) {
    super(scope, id, props);
    const knobs = checkKnobs(props.knobs);
    if (
      knobs.vpcId !== undefined &&
      (Token.isUnresolved(this.account) || Token.isUnresolved(this.region))
    ) {
      throw new KnobError(
        'vpcId',
        'needs the stack to know its account and region (set CDK_DEFAULT_ACCOUNT/CDK_DEFAULT_REGION, e.g. by running with AWS credentials) so the VPC can be looked up',
      );
    }
    // Fixed so that the planner can be given the state machine's ARN without a cycle.
    const stateMachineName = `${this.stackName.slice(0, 70)}-pipeline`;

    this.storage = new Storage(this, 'Storage', {
      partialsExpireDays: knobs.partialsExpireDays,
      allowedBuckets: knobs.allowedBuckets,
      retain: props.retainData ?? true,
    });
    const network = new Network(this, 'Network', {
      ...(knobs.vpcId !== undefined ? { vpcId: knobs.vpcId } : {}),
      natGateways: knobs.natGateways,
      flowLogBucket: this.storage.logBucket,
    });
    this.functions = new Functions(this, 'Functions', {
      storage: this.storage,
      stateMachineName,
      maxRounds: knobs.maxRounds,
      maxChunks: knobs.maxChunks,
      stallMinutes: knobs.stallMinutes,
    });
    this.compute = new BatchCompute(this, 'Compute', {
      vpc: network.vpc,
      subnets: network.workerSubnets,
      gpuInstanceTypes: knobs.gpuInstanceTypes,
      maxGpuVcpus: knobs.maxGpuVcpus,
      maxOnDemandGpuVcpus: knobs.maxOnDemandGpuVcpus,
      maxCpuVcpus: knobs.maxCpuVcpus,
    });
    this.workers = new Workers(this, 'Workers', {
      storage: this.storage,
      timeout: Duration.hours(knobs.workerTimeoutHours),
      assignPublicIp: network.publicWorkers,
    });
    this.pipeline = new Pipeline(this, 'Pipeline', {
      stateMachineName,
      storage: this.storage,
      fns: this.functions.fns,
      gpu: {
        queueArn: this.compute.gpuQueue.jobQueueArn,
        jobDefinitionArn: this.workers.gpuJobDefinition.jobDefinitionArn,
      },
      cpu: {
        queueArn: this.compute.cpuQueue.jobQueueArn,
        jobDefinitionArn: this.workers.cpuJobDefinition.jobDefinitionArn,
      },
      jobTimeout: Duration.hours(jobTimeoutHours(knobs)),
    });
    this.monitoring = new Monitoring(this, 'Monitoring', {
      stateMachine: this.pipeline.stateMachine,
      fns: this.functions.fns,
      queueArns: [this.compute.gpuQueue.jobQueueArn, this.compute.cpuQueue.jobQueueArn],
      ...(knobs.alarmEmail !== undefined ? { alarmEmail: knobs.alarmEmail } : {}),
    });

    const out = (id: string, value: string, description: string) =>
      new CfnOutput(this, id, { value, description });
    out('BucketName', this.storage.bucket.bucketName, 'Drop manifests under manifests/ here');
    out('TableName', this.storage.table.tableName, 'The chunk ledger');
    out(
      'StateMachineArn',
      this.pipeline.stateMachine.stateMachineArn,
      'Start with {"manifest":{"bucket","key"}}; callable via states:startExecution.sync:2',
    );
    out(
      'GpuQueueArn',
      this.compute.gpuQueue.jobQueueArn,
      'GPU worker queue (Spot, On-Demand fallback)',
    );
    out(
      'CpuQueueArn',
      this.compute.cpuQueue.jobQueueArn,
      'CPU worker queue (Fargate Spot, Fargate fallback)',
    );
    out('AlarmTopicArn', this.monitoring.topic.topicArn, 'Alarm notifications');
    out(
      'HybridWorkerRoleArn',
      this.workers.hybridRole.roleArn,
      "Assume this role to run `tessera worker --job <id>` outside AWS Batch (the job role's data grants, nothing more)",
    );
  }
}
