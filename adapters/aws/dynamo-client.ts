// The DynamoDB client every Tessera process uses (handlers, workers, CLI), configured from
// the environment once. An endpoint variable points it at DynamoDB Local or LocalStack;
// without one it talks to the regional service with the default credential chain.

import { DynamoDBClient, type DynamoDBClientConfig } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Claims and completions from thousands of spot workers meet throttling in bursts; the
 * SDK's standard mode backs off with jitter and stops retrying when its token bucket
 * runs dry, so 10 attempts bound a call without amplifying an outage.
 */
export const DYNAMO_MAX_ATTEMPTS = 10;

export function dynamoClientConfig(env: Env = process.env): DynamoDBClientConfig {
  const nonEmpty = (v: string | undefined): string | undefined =>
    v === undefined || v.trim() === '' ? undefined : v.trim();
  const endpoint = nonEmpty(env.AWS_ENDPOINT_URL_DYNAMODB) ?? nonEmpty(env.AWS_ENDPOINT_URL);
  return {
    region: nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION) ?? 'us-east-1',
    retryMode: 'standard',
    maxAttempts: DYNAMO_MAX_ATTEMPTS,
    ...(endpoint === undefined ? {} : { endpoint }),
  };
}

/**
 * A DocumentClient over a fresh DynamoDBClient. `removeUndefinedValues` because optional
 * row fields (owner, lastError, attributes) are plain `undefined` in the domain types.
 * Call `destroy()` on the returned `base` client to close its sockets: destroying the
 * DocumentClient alone is a no-op in lib-dynamodb.
 */
export function makeDynamoClient(
  env: Env = process.env,
  overrides: Partial<DynamoDBClientConfig> = {},
): DynamoDBDocumentClient & { readonly base: DynamoDBClient } {
  const base = new DynamoDBClient({ ...dynamoClientConfig(env), ...overrides });
  const doc = DynamoDBDocumentClient.from(base, {
    marshallOptions: { removeUndefinedValues: true },
  });
  return Object.assign(doc, { base });
}
