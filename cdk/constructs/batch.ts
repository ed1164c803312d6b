// AWS Batch compute: where worker containers run.
//
//   GPU queue ── 1: EC2 Spot   (SPOT_PRICE_CAPACITY_OPTIMIZED, g4dn/g5/g6…, ECS_AL2023_NVIDIA)
//            └─ 2: EC2 On-Demand (same types, small cap: overflow when Spot is at its max)
//   CPU queue ── 1: Fargate Spot
//            └─ 2: Fargate
//
// Every environment scales to zero (minvCpus 0): an idle stack costs nothing here.
// Batch moves jobs to order 2 when order 1 is at maxvCpus, not when Spot capacity is
// short; Spot shortages show up as jobs waiting in RUNNABLE (see monitoring.ts).

import { Duration } from 'aws-cdk-lib';
import * as batch from 'aws-cdk-lib/aws-batch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { Construct } from 'constructs';
import { acknowledgeFindings } from '../nag.ts';

export interface BatchComputeProps {
  readonly vpc: ec2.IVpc;
  readonly subnets: ec2.SubnetSelection;
  readonly gpuInstanceTypes: readonly string[];
  readonly maxGpuVcpus: number;
  readonly maxOnDemandGpuVcpus: number;
  readonly maxCpuVcpus: number;
}

export class BatchCompute extends Construct {
  readonly gpuQueue: batch.JobQueue;
  readonly cpuQueue: batch.JobQueue;
  readonly securityGroup: ec2.SecurityGroup;
  readonly launchTemplate: ec2.LaunchTemplate;

  constructor(scope: Construct, id: string, props: BatchComputeProps) {
    super(scope, id);
    this.securityGroup = new ec2.SecurityGroup(this, 'WorkerSg', {
      vpc: props.vpc,
      description: 'Tessera workers: no inbound; outbound to AWS APIs',
      allowAllOutbound: true,
    });

    this.launchTemplate = new ec2.LaunchTemplate(this, 'GpuLaunchTemplate', {
      // IMDSv2 only; hop limit 2 lets a container on the bridge network reach IMDS and
      // poll spot/instance-action, the two-minute interruption notice.
      requireImdsv2: true,
      httpTokens: ec2.LaunchTemplateHttpTokens.REQUIRED,
      httpPutResponseHopLimit: 2,
      blockDevices: [
        {
          // The CUDA image is several GB; the AMI's default root volume is tight.
          deviceName: '/dev/xvda',
          volume: ec2.BlockDeviceVolume.ebs(100, {
            volumeType: ec2.EbsDeviceVolumeType.GP3,
            encrypted: true,
          }),
        },
      ],
    });

    const gpuCommon = {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [this.securityGroup],
      instanceTypes: props.gpuInstanceTypes.map((t) => new ec2.InstanceType(t)),
      // The default ("optimal") adds C4/M4/R4: CPU-only instances a GPU job cannot use.
      useOptimalInstanceClasses: false,
      images: [{ imageType: batch.EcsMachineImageType.ECS_AL2023_NVIDIA }],
      launchTemplate: this.launchTemplate,
      minvCpus: 0,
      // Instances pick up the newest ECS GPU AMI (drivers) on infrastructure updates.
      updateToLatestImageVersion: true,
    };
    const gpuSpot = new batch.ManagedEc2EcsComputeEnvironment(this, 'GpuSpot', {
      ...gpuCommon,
      spot: true,
      allocationStrategy: batch.AllocationStrategy.SPOT_PRICE_CAPACITY_OPTIMIZED,
      maxvCpus: props.maxGpuVcpus,
    });
    const gpuOnDemand = new batch.ManagedEc2EcsComputeEnvironment(this, 'GpuOnDemand', {
      ...gpuCommon,
      spot: false,
      allocationStrategy: batch.AllocationStrategy.BEST_FIT_PROGRESSIVE,
      maxvCpus: props.maxOnDemandGpuVcpus,
    });
    for (const ce of [gpuSpot, gpuOnDemand]) {
      acknowledgeFindings(
        ce,
        'AwsSolutions-IAM4',
        /AmazonEC2ContainerServiceforEC2Role$/,
        'AmazonEC2ContainerServiceforEC2Role is the AWS-maintained policy an ECS container instance needs to register with the cluster Batch manages for this environment.',
      );
    }

    const cpuSpot = new batch.FargateComputeEnvironment(this, 'CpuFargateSpot', {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [this.securityGroup],
      spot: true,
      maxvCpus: props.maxCpuVcpus,
    });
    const cpuOnDemand = new batch.FargateComputeEnvironment(this, 'CpuFargate', {
      vpc: props.vpc,
      vpcSubnets: props.subnets,
      securityGroups: [this.securityGroup],
      spot: false,
      maxvCpus: props.maxCpuVcpus,
    });

    // A job that can never be placed (asks for more than any instance has, or the
    // environment's max is below one instance) would sit in RUNNABLE forever and hold the
    // Step Functions execution with it. Cancel it; the pipeline then fails with the reason.
    const neverPlaceable: batch.JobStateTimeLimitAction[] = [
      {
        reason: batch.JobStateTimeLimitActionsReason.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        maxTime: Duration.minutes(30),
        action: batch.JobStateTimeLimitActionsAction.CANCEL,
      },
      {
        reason: batch.JobStateTimeLimitActionsReason.JOB_RESOURCE_REQUIREMENT,
        maxTime: Duration.minutes(30),
        action: batch.JobStateTimeLimitActionsAction.CANCEL,
      },
    ];
    this.gpuQueue = new batch.JobQueue(this, 'GpuQueue', {
      priority: 1,
      computeEnvironments: [
        { computeEnvironment: gpuSpot, order: 1 },
        { computeEnvironment: gpuOnDemand, order: 2 },
      ],
      jobStateTimeLimitActions: neverPlaceable,
    });
    this.cpuQueue = new batch.JobQueue(this, 'CpuQueue', {
      priority: 1,
      computeEnvironments: [
        { computeEnvironment: cpuSpot, order: 1 },
        { computeEnvironment: cpuOnDemand, order: 2 },
      ],
      jobStateTimeLimitActions: neverPlaceable,
    });
  }
}
