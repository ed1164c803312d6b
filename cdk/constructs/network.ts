// Where the Batch workers run. A new VPC by default, or an existing one by id.
//
// Cost note: a NAT gateway bills per hour and per GB. The workers' bulk traffic (S3
// chunk reads and writes, ECR image layers, which ECR serves from S3, and DynamoDB)
// goes through the free gateway endpoints below, so the NAT carries only API calls and
// ECR/CloudWatch control traffic. natGateways: 0 drops the NAT altogether and runs the
// workers in public subnets with public IPs (no inbound rules; outbound only).

import * as ec2 from 'aws-cdk-lib/aws-ec2';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface NetworkProps {
  /** Import this VPC (Vpc.fromLookup: the stack needs an account and region). */
  readonly vpcId?: string;
  /** NAT gateways of a new VPC; 0 means workers in public subnets. */
  readonly natGateways: number;
  /** Flow logs of a new VPC go here (rejected traffic only: enough to debug, cheap). */
  readonly flowLogBucket: s3.IBucket;
}

export class Network extends Construct {
  readonly vpc: ec2.IVpc;
  /** Subnets the workers run in. */
  readonly workerSubnets: ec2.SubnetSelection;
  /** Whether workers need a public IP to reach AWS APIs (no NAT). */
  readonly publicWorkers: boolean;

  constructor(scope: Construct, id: string, props: NetworkProps) {
    super(scope, id);
    this.publicWorkers = props.natGateways === 0;
    this.workerSubnets = {
      subnetType: this.publicWorkers ? ec2.SubnetType.PUBLIC : ec2.SubnetType.PRIVATE_WITH_EGRESS,
    };

    if (props.vpcId !== undefined) {
      this.vpc = ec2.Vpc.fromLookup(this, 'Vpc', { vpcId: props.vpcId });
      return;
    }

    const vpc = new ec2.Vpc(this, 'Vpc', {
      // More AZs mean more Spot capacity pools for the GPU fleet.
      maxAzs: 3,
      natGateways: props.natGateways,
      subnetConfiguration: [
        { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: 20 },
        ...(this.publicWorkers
          ? []
          : [{ name: 'workers', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: 18 }]),
      ],
      gatewayEndpoints: {
        S3: { service: ec2.GatewayVpcEndpointAwsService.S3 },
        DynamoDB: { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB },
      },
    });
    vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toS3(props.flowLogBucket, 'vpc-flow-logs/'),
      trafficType: ec2.FlowLogTrafficType.REJECT,
    });
    this.vpc = vpc;
  }
}
