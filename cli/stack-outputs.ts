// The deployed stack's outputs as `cdk deploy --outputs-file cdk-outputs.json` writes
// them: { "<stack name>": { "BucketName": "...", "TableName": "...", ... } }. Lets
// `submit`, `status` and `retry` find the bucket, table and state machine without copying names by hand.

import { readFile } from 'node:fs/promises';

export interface StackOutputs {
  stack: string;
  bucket?: string;
  table?: string;
  stateMachineArn?: string;
}

export class StackOutputsError extends Error {
  override readonly name = 'StackOutputsError';
}

export async function readStackOutputs(path: string, stackName?: string): Promise<StackOutputs> {
  let doc: unknown;
  try {
    doc = JSON.parse(await readFile(path, 'utf8'));
  } catch (cause) {
    throw new StackOutputsError(
      `cannot read stack outputs ${path}: ${(cause as Error).message}; write it with \`npx cdk deploy --outputs-file ${path}\``,
      { cause },
    );
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc))
    throw new StackOutputsError(`${path}: expected {"<stack>": {"BucketName": ...}}`);
  const stacks = Object.entries(doc as Record<string, unknown>).filter(
    ([name, v]) =>
      typeof v === 'object' && v !== null && (stackName === undefined || name === stackName),
  ) as [string, Record<string, unknown>][];
  const withBucket = stacks.filter(([, v]) => typeof v.BucketName === 'string');
  if (withBucket.length === 0)
    throw new StackOutputsError(
      `${path} has no ${stackName === undefined ? 'stack' : `stack "${stackName}"`} with a BucketName output; is it the outputs file of the Tessera stack?`,
    );
  if (withBucket.length > 1)
    throw new StackOutputsError(
      `${path} holds several stacks with a BucketName (${withBucket.map(([n]) => n).join(', ')}); choose one with --stack NAME`,
    );
  const [stack, v] = withBucket[0]!;
  return {
    stack,
    bucket: v.BucketName as string,
    ...(typeof v.TableName === 'string' ? { table: v.TableName } : {}),
    ...(typeof v.StateMachineArn === 'string' ? { stateMachineArn: v.StateMachineArn } : {}),
  };
}
