// The manifest version an execution plans: the trigger accepts one object version and
// names the execution after it; the Plan task must plan exactly that version, even when
// the key was re-uploaded in between (S3 versioning keeps both). In memory: a versioned
// fake of the manifest bucket, the stack bucket behind the s3:// scheme, a MemoryLedger.

import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cloudDeps } from '../../adapters/aws/deps.ts';
import { S3EventError } from '../../adapters/aws/errors.ts';
import { plannerEvent } from '../../adapters/aws/s3-events.ts';
import type { ManifestLocation, PipelineInput } from '../../contracts/cloud.ts';
import {
  type CloudDeps,
  cloudJobId,
  handleManifestCreated,
  planFromManifest,
  readStatus,
} from '../../core/cloud/index.ts';
import { MemoryLedger } from '../../core/ledger/index.ts';
import { parseS3Url } from '../../core/manifest/url.ts';
import {
  MemoryStore,
  PrefixedStore,
  registerStoreScheme,
  unregisterStoreScheme,
} from '../../core/store/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';

const STACK = 'stack-bucket';
const KEY = 'manifests/cells.json';
const SHAPE = [16, 32, 32];
const store = new MemoryStore(`s3://${STACK}`);

const manifest = (maxWorkers: number) => ({
  version: 1,
  name: 'cells',
  input: { url: `s3://${STACK}/raw.zarr` },
  output: { url: `s3://${STACK}/outputs/cells.zarr`, dtype: 'float32', blockShape: [8, 16, 16] },
  model: { url: `s3://${STACK}/models/tiny.onnx`, patchShape: [8, 12, 12], outputChannels: 2 },
  overlap: [2, 4, 4],
  blend: 'bump',
  chunkShape: [8, 16, 16],
  compute: { device: 'cpu', maxWorkers, spot: true },
});

/** A versioned manifest object: versions in upload order; no versionId reads the latest. */
const versions: { versionId: string; bytes: Uint8Array }[] = [];
const reads: ManifestLocation[] = [];
const upload = (versionId: string, body: unknown): void => {
  versions.push({ versionId, bytes: new TextEncoder().encode(JSON.stringify(body)) });
};

function deps(started: { name: string; input: PipelineInput }[] = []): CloudDeps {
  return {
    bucket: STACK,
    bucketStore: store,
    ledger: new MemoryLedger(),
    policy: { stackBucket: STACK, allowedBuckets: [] },
    maxRounds: 3,
    fetchManifest: async (loc) => {
      reads.push(loc);
      const v = loc.versionId
        ? versions.find((x) => x.versionId === loc.versionId)
        : versions.at(-1);
      if (!v) throw Object.assign(new Error('NoSuchVersion'), { name: 'NoSuchVersion' });
      return { bytes: v.bytes, version: v.versionId };
    },
    startExecution: async (name, input) => {
      started.push({ name, input });
      return { executionArn: `arn:aws:states:::execution:tessera:${name}`, alreadyExists: false };
    },
  };
}

beforeAll(async () => {
  registerStoreScheme('s3', (url) => {
    const { key } = parseS3Url(url);
    return new PrefixedStore(store, key);
  });
  const data = new Uint8Array(SHAPE[0]! * SHAPE[1]! * SHAPE[2]!).map((_, i) => (i * 7) % 251);
  await writeZarrArray(new PrefixedStore(store, 'raw.zarr'), {
    data,
    shape: SHAPE,
    chunkShape: [8, 16, 16],
  });
});
afterAll(() => {
  unregisterStoreScheme('s3');
});

describe('the Plan task plans the version the trigger accepted', () => {
  it('a re-upload between the event and the Plan task does not change what the execution plans', async () => {
    const started: { name: string; input: PipelineInput }[] = [];
    const d = deps(started);
    upload('v1', manifest(2));
    // The notification for v1 arrives: validate, start the execution named after v1.
    await handleManifestCreated(d, [{ bucket: STACK, key: KEY, versionId: 'v1' }]);
    expect(started).toHaveLength(1);
    const [{ name, input }] = started as [(typeof started)[number]];
    expect(name).toBe(cloudJobId('cells', { bucket: STACK, key: KEY }, 'v1'));
    // The key is overwritten before the execution's Plan task runs.
    upload('v2', manifest(4));
    reads.length = 0;
    // The Plan task's payload, as it crosses Step Functions (JSON), through the
    // planner's own entry point.
    const task = plannerEvent(JSON.parse(JSON.stringify({ manifest: input.manifest })));
    expect(task).toEqual({
      kind: 'task',
      manifest: { bucket: STACK, key: KEY, versionId: 'v1' },
    });
    if (task.kind !== 'task') throw new Error('unreachable');
    const planned = await planFromManifest(d, task.manifest);
    expect(reads.map((r) => r.versionId)).toEqual(['v1']);
    expect(planned.kind).toBe('planned');
    if (planned.kind !== 'planned') throw new Error('unreachable');
    // Same job as the execution's name, and v1's fleet: 2 workers (v2 asks for 4; the
    // grid of 2×2×2 chunks allows 8).
    expect(planned.result.jobId).toBe(name);
    expect(planned.result.arraySize).toBe(2);
    expect((await readStatus(d, name))?.manifest).toEqual({
      bucket: STACK,
      key: KEY,
      versionId: 'v1',
    });
  });

  it('a Plan task without a versionId plans the latest; a versionId of another type is refused by field', () => {
    expect(plannerEvent({ manifest: { bucket: STACK, key: KEY } })).toEqual({
      kind: 'task',
      manifest: { bucket: STACK, key: KEY },
    });
    // An empty versionId is S3's "no version" (unversioned bucket): read the object as is.
    expect(plannerEvent({ manifest: { bucket: STACK, key: KEY, versionId: '' } })).toEqual({
      kind: 'task',
      manifest: { bucket: STACK, key: KEY },
    });
    for (const bad of [7, {}, ['v1'], true]) {
      const call = () => plannerEvent({ manifest: { bucket: STACK, key: KEY, versionId: bad } });
      expect(call).toThrow(S3EventError);
      expect(call).toThrow(/manifest\.versionId: must be a string when present/);
    }
  });

  it("the S3 adapter's GET asks for exactly that version (s3rver keeps no versions: a mocked client)", async () => {
    const s3 = new S3Client({ region: 'us-east-1' });
    const mock = mockClient(s3);
    const body = new TextEncoder().encode('{}');
    mock.on(GetObjectCommand).resolves({
      VersionId: 'v1',
      ContentLength: body.byteLength,
      Body: { transformToByteArray: async () => body } as never,
    });
    const d = cloudDeps(
      {
        table: 't',
        bucket: STACK,
        allowedBuckets: [],
        stateMachineArn: undefined,
        maxChunks: undefined,
        maxRounds: 3,
      },
      { s3, ledger: new MemoryLedger() },
    );
    const got = await d.fetchManifest(
      { bucket: STACK, key: KEY, versionId: 'v1' },
      { maxBytes: 10 },
    );
    expect(got).toEqual({ bytes: body, version: 'v1' });
    expect(mock.commandCalls(GetObjectCommand)[0]?.args[0].input).toEqual({
      Bucket: STACK,
      Key: KEY,
      VersionId: 'v1',
    });
  });
});
