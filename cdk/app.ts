// The CDK app: the one place that reads the environment and cdk.json context.
//   npx cdk synth | deploy [-c tessera:alarmEmail=me@lab.org -c tessera:maxGpuVcpus=512 ...]

import { App, Validations } from 'aws-cdk-lib';
import { type Knobs, knobContextKey, parseKnobs } from './knobs.ts';
import { AwsSolutionsChecks } from './nag.ts';
import { TesseraStack } from './stack.ts';

const app = new App();
const knobs = parseKnobs((name: keyof Knobs) => app.node.tryGetContext(knobContextKey(name)));
const stackName = (app.node.tryGetContext('tessera:stackName') as string | undefined) ?? 'Tessera';
const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;

new TesseraStack(app, stackName, {
  knobs,
  // Environment-agnostic unless the CLI knows the account (credentials present): a VPC
  // lookup (vpcId) and three-AZ VPCs need a concrete environment.
  ...(account !== undefined && region !== undefined ? { env: { account, region } } : {}),
  description:
    'Tessera: chunked ONNX inference over huge 3D volumes (S3, DynamoDB, Batch, Step Functions)',
});

// Any unacknowledged finding stops the synth; every acknowledgment carries a reason.
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
