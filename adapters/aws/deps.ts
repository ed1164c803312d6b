// Builds the cloud steps' dependencies from the environment with the real AWS SDK
// clients (endpoints from AWS_ENDPOINT_URL* for emulators). Module-scope in handlers.

import type { BatchClient } from '@aws-sdk/client-batch';
import { GetObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { ExecutionAlreadyExists, SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import {
  KEYS,
  type ManifestLocation,
  PARTIAL_TAG,
  type PipelineInput,
} from '../../contracts/cloud.ts';
import type { CloudDeps, FetchedManifest } from '../../core/cloud/index.ts';
import type { Ledger } from '../../core/ledger/index.ts';
import { jobLeftovers } from '../../core/pipeline/seam-handoff.ts';
import { missingOwnedBlocks } from '../../core/pipeline/steps.ts';
import { batchWorkFailures, makeBatchClient } from './batch-failures.ts';
import { makeS3Client, registerS3 } from './clients.ts';
import { withClockOffset } from './clock-offset.ts';
import { makeDynamoClient } from './dynamo-client.ts';
import { DynamoLedger } from './dynamo-ledger.ts';
import { type CloudEnv, readCloudEnv } from './env.ts';
import { S3Store } from './s3-store.ts';

export interface CloudClients {
  s3: S3Client;
  ledger: Ledger;
  sfn?: SFNClient;
  /** For Verify's reading of failed workers; without it Verify records only what $.batch says. */
  batch?: BatchClient;
}

export function cloudClientsFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  e: CloudEnv = readCloudEnv(env),
): CloudClients {
  const s3 = makeS3Client(env);
  registerS3(s3);
  // withClockOffset is a fault-injection hook, a no-op unless TESSERA_CLOCK_OFFSET_MS is set.
  const ledger = withClockOffset(
    new DynamoLedger({ client: makeDynamoClient(env), table: e.table }),
    env,
  );
  const endpoint = env.AWS_ENDPOINT_URL_SFN ?? env.AWS_ENDPOINT_URL;
  const sfn = e.stateMachineArn ? new SFNClient(endpoint ? { endpoint } : {}) : undefined;
  // Constructing a client sends nothing: only Verify ever calls Batch through it.
  return { s3, ledger, ...(sfn ? { sfn } : {}), batch: makeBatchClient(env) };
}

export function cloudDeps(e: CloudEnv, clients: CloudClients): CloudDeps {
  const { s3, sfn, batch } = clients;
  return {
    bucket: e.bucket,
    bucketStore: new S3Store({ client: s3, bucket: e.bucket, tagging: partialTagging }),
    ledger: clients.ledger,
    policy: { stackBucket: e.bucket, allowedBuckets: e.allowedBuckets },
    ...(e.maxChunks ? { limits: { maxChunks: e.maxChunks } } : {}),
    maxRounds: e.maxRounds,
    fetchManifest: (loc, o) => fetchObject(s3, loc, o.maxBytes),
    ownedOutputDamage: missingOwnedBlocks,
    leftovers: jobLeftovers,
    ...(batch ? { workFailures: batchWorkFailures(batch) } : {}),
    ...(sfn && e.stateMachineArn
      ? {
          startExecution: (name: string, input: PipelineInput) =>
            startExecution(sfn, e.stateMachineArn!, name, input),
        }
      : {}),
  };
}

/** Seam partials carry the tag the stack's lifecycle rule expires them by. */
export function partialTagging(objectKey: string): string | undefined {
  return objectKey.startsWith(KEYS.jobsPrefix) && objectKey.includes('/partials/')
    ? `${PARTIAL_TAG.key}=${PARTIAL_TAG.value}`
    : undefined;
}

export function cloudDepsFromEnv(env: NodeJS.ProcessEnv = process.env): CloudDeps {
  const e = readCloudEnv(env);
  return cloudDeps(e, cloudClientsFromEnv(env, e));
}

/**
 * GETs a manifest object, reading the body only when the headers say it is within
 * `maxBytes`: a bigger one is aborted after the headers (one request, no download), so an
 * oversized upload costs the planner neither memory nor transfer.
 */
async function fetchObject(
  s3: S3Client,
  loc: ManifestLocation,
  maxBytes: number,
): Promise<FetchedManifest> {
  const r = await s3.send(
    new GetObjectCommand({
      Bucket: loc.bucket,
      Key: loc.key,
      ...(loc.versionId ? { VersionId: loc.versionId } : {}),
    }),
  );
  // Versioned buckets give a VersionId; elsewhere the ETag tells versions apart.
  const version =
    r.VersionId && r.VersionId !== 'null' ? r.VersionId : (r.ETag ?? '').replaceAll('"', '');
  if (r.ContentLength !== undefined && r.ContentLength > maxBytes) {
    (r.Body as { destroy?: () => void } | undefined)?.destroy?.();
    return { oversize: r.ContentLength, version };
  }
  const bytes = r.Body ? await r.Body.transformToByteArray() : new Uint8Array(0);
  return { bytes, version };
}

export async function startExecution(
  sfn: SFNClient,
  stateMachineArn: string,
  name: string,
  input: PipelineInput,
): Promise<{ executionArn?: string; alreadyExists: boolean }> {
  try {
    const r = await sfn.send(
      new StartExecutionCommand({ stateMachineArn, name, input: JSON.stringify(input) }),
    );
    return { ...(r.executionArn ? { executionArn: r.executionArn } : {}), alreadyExists: false };
  } catch (e) {
    // The name is the job id: a duplicate event or a retried planner finds it running.
    if (e instanceof ExecutionAlreadyExists) return { alreadyExists: true };
    throw e;
  }
}
