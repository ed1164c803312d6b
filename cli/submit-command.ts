// `tessera submit`: hand a manifest to the deployed stack. Everything the cloud planner
// would reject is rejected here first, with the same messages (schema, the stack's
// bucket policy, the input volume and the plan limits), so a typo costs seconds, not a
// REJECTED status document found later. Then the manifest goes to manifests/ in the
// stack's bucket, whose upload event starts the job.
//
//   local model.onnx ──(--model-upload)──► s3://B/models/<sha256>.onnx   (content-addressed:
//                                           re-submitting the same model uploads nothing)
//   manifest (model.url rewritten) ───────► s3://B/manifests/<name>-<UTC time>.json
//   job id = cloudJobId(name, {B, key}, VersionId or ETag of that PUT) — as the planner derives it
//   status: s3://B/jobs/<job id>/status.json, or s3://B/jobs/<name>/status.json
//           if the planner refuses it after all (e.g. the stack's allowed buckets differ)

import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { HeadObjectCommand, NotFound, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { makeS3Client, registerS3 } from '../adapters/aws/clients.ts';
import { ENV, KEYS } from '../contracts/cloud.ts';
import { cloudJobId } from '../core/cloud/index.ts';
import {
  checkCloudPolicy,
  isS3Url,
  MAX_MANIFEST_BYTES,
  type Manifest,
  ManifestError,
  manifestTooLargeIssue,
  parseManifest,
  parseManifestText,
} from '../core/manifest/index.ts';
import { openJob } from '../core/pipeline/index.ts';
import { resolveModelPath } from '../core/pipeline/model-source.ts';
import { neuroglancerLink } from '../core/pipeline/viewer.ts';
import { MemoryStore } from '../core/store/index.ts';
import { parse } from './args.ts';
import { readStackOutputs } from './stack-outputs.ts';

const USAGE = `Usage: tessera submit <manifest.json> (--bucket B | --stack-outputs cdk-outputs.json [--stack NAME])
                      [--allowed B1,B2] [--model-upload] [--skip-input-check] [--dry-run] [--json]

Validates the manifest as the cloud planner will (schema, s3:// URLs in allowed buckets,
the input volume and the plan limits), then uploads it to s3://B/manifests/, which
starts the job. Prints the job id and the status command.

  --bucket B            the stack's bucket (its BucketName output)
  --stack-outputs FILE  read the bucket from \`cdk deploy --outputs-file FILE\`
  --allowed B1,B2       the stack's allowedBuckets (default: $${ENV.allowedBuckets})
  --model-upload        upload a local model.url file to s3://B/models/<sha256>.onnx and
                        point the manifest at it (model.sha256 is set too)
  --skip-input-check    do not open the input volume (no read access from here)
  --dry-run             validate (and report what would be uploaded), upload nothing`;

export interface SubmitResult {
  jobId?: string;
  bucket: string;
  key: string;
  version?: string;
  model?: { url: string; sha256: string; uploaded: boolean };
  statusCommand?: string;
  /** Where the planner records why, should it refuse the manifest after all. */
  rejectedStatus?: string;
  neuroglancer?: string;
  dryRun: boolean;
}

export async function submitCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    {
      bucket: { type: 'string' },
      'stack-outputs': { type: 'string' },
      stack: { type: 'string' },
      allowed: { type: 'string' },
      'model-upload': { type: 'boolean' },
      'skip-input-check': { type: 'boolean' },
      'dry-run': { type: 'boolean' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (help) return 0;
  const [path] = positionals;
  if (!path || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const outputs =
    typeof values['stack-outputs'] === 'string'
      ? await readStackOutputs(values['stack-outputs'], values.stack as string | undefined)
      : undefined;
  const bucket = (values.bucket as string | undefined) ?? outputs?.bucket;
  if (!bucket) {
    process.stderr.write(
      `tessera submit: which bucket? give --bucket B or --stack-outputs cdk-outputs.json\n`,
    );
    return 2;
  }
  const allowed = ((values.allowed as string | undefined) ?? process.env[ENV.allowedBuckets] ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const s3 = makeS3Client(process.env);
  try {
    const result = await submit({
      path,
      bucket,
      allowedBuckets: allowed,
      s3,
      modelUpload: values['model-upload'] === true,
      inputCheck: values['skip-input-check'] !== true,
      dryRun: values['dry-run'] === true,
      ...(outputs?.table ? { table: outputs.table } : {}),
    });
    if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
    else process.stdout.write(`${describe(result)}\n`);
    return 0;
  } catch (error) {
    if (error instanceof ManifestError) {
      process.stderr.write(`tessera submit: nothing uploaded.\n${error.message}\n`);
      return 1;
    }
    throw error;
  } finally {
    s3.destroy();
  }
}

export interface SubmitOptions {
  path: string;
  bucket: string;
  allowedBuckets: readonly string[];
  s3: S3Client;
  modelUpload?: boolean;
  inputCheck?: boolean;
  dryRun?: boolean;
  /** The stack's table, for the printed status command. */
  table?: string;
  now?: Date;
}

/** Validates, uploads and returns what was submitted; throws ManifestError naming fields. */
export async function submit(o: SubmitOptions): Promise<SubmitResult> {
  const source = o.path;
  // The planner refuses manifests over 1 MiB unread; so does submit, before parsing.
  const { size } = await stat(o.path);
  if (size > MAX_MANIFEST_BYTES) throw new ManifestError([manifestTooLargeIssue(size)], { source });
  const text = await readFile(o.path, 'utf8');
  // Schema errors first, on the file as written.
  parseManifestText(text, source);
  const raw = JSON.parse(text.replace(/^\uFEFF/, '')) as Record<string, unknown> & {
    model: Record<string, unknown>;
  };
  let model: SubmitResult['model'];
  let modelBody: Uint8Array | undefined;
  if (o.modelUpload && typeof raw.model.url === 'string' && !isS3Url(raw.model.url)) {
    const prepared = await prepareModel(raw, dirname(resolve(o.path)), o.bucket, source);
    model = prepared.model;
    modelBody = prepared.bytes;
  }
  const manifest = parseManifest(raw, source);
  checkPolicy(manifest, o, source);
  if (o.inputCheck !== false) await checkInput(manifest, o.s3, source);

  const key = `${KEYS.manifestPrefix}${manifest.name}-${stamp(o.now ?? new Date())}.json`;
  const base: SubmitResult = {
    bucket: o.bucket,
    key,
    ...(model ? { model } : {}),
    dryRun: o.dryRun === true,
  };
  const link = neuroglancerLink({
    name: manifest.name,
    outputUrl: manifest.output.url,
    inputUrl: manifest.input.url,
    dtype: manifest.output.dtype,
    ...(manifest.input.array ? { inputArray: manifest.input.array } : {}),
  });
  if (o.dryRun) return { ...base, ...(link ? { neuroglancer: link } : {}) };

  // The model before the manifest: the manifest's upload starts the job, which loads it.
  if (model && modelBody)
    model.uploaded = await uploadModel(o.s3, o.bucket, model.sha256, modelBody);
  const put = await o.s3.send(
    new PutObjectCommand({
      Bucket: o.bucket,
      Key: key,
      Body: `${JSON.stringify(raw, null, 2)}\n`,
      ContentType: 'application/json',
    }),
  );
  // As the planner reads it back (adapters/aws/deps.ts): VersionId on versioned buckets, else the ETag.
  const version =
    put.VersionId && put.VersionId !== 'null'
      ? put.VersionId
      : (put.ETag ?? '').replaceAll('"', '');
  const jobId = cloudJobId(manifest.name, { bucket: o.bucket, key }, version);
  const where = o.table ? `--table ${o.table} --bucket ${o.bucket}` : `--bucket ${o.bucket}`;
  return {
    ...base,
    jobId,
    version,
    statusCommand: `tessera status ${jobId} --cloud ${where} --watch`,
    rejectedStatus: `s3://${o.bucket}/${KEYS.rejectedStatus(manifest.name)}`,
    ...(link ? { neuroglancer: link } : {}),
  };
}

function checkPolicy(manifest: Manifest, o: SubmitOptions, source: string): void {
  try {
    checkCloudPolicy(manifest, { stackBucket: o.bucket, allowedBuckets: o.allowedBuckets }, source);
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    // A local model is the one URL submit can fix by itself.
    const issues = error.issues.map((i) =>
      i.path === 'model.url' && !isS3Url(manifest.model.url)
        ? {
            ...i,
            message: `${i.message}, or pass --model-upload to upload it to s3://${o.bucket}/models/`,
          }
        : i,
    );
    throw new ManifestError(issues, { source, cause: error });
  }
}

/** The planner's volume checks (shape, region, plan limits) against the real input. */
async function checkInput(manifest: Manifest, s3: S3Client, source: string): Promise<void> {
  registerS3(s3);
  const maxChunks = Number(process.env[ENV.maxChunks]);
  try {
    await openJob(manifest, {
      jobId: `${manifest.name}-submit-check`,
      work: new MemoryStore(),
      ...(Number.isInteger(maxChunks) && maxChunks > 0 ? { limits: { maxChunks } } : {}),
    });
  } catch (error) {
    if (error instanceof ManifestError)
      throw new ManifestError(error.issues, { source, cause: error });
    throw error;
  }
}

async function prepareModel(
  raw: { model: Record<string, unknown> },
  baseDir: string,
  bucket: string,
  source: string,
): Promise<{ model: NonNullable<SubmitResult['model']>; bytes: Uint8Array }> {
  const url = raw.model.url as string;
  const file = resolveModelPath(url, baseDir);
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (cause) {
    throw new ManifestError(
      [
        {
          path: 'model.url',
          message: `cannot read ${file} to upload it (${(cause as Error).message})`,
        },
      ],
      { source, cause },
    );
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const declared = raw.model.sha256;
  if (typeof declared === 'string' && declared.toLowerCase() !== sha256)
    throw new ManifestError(
      [
        {
          path: 'model.sha256',
          message: `is ${declared} but ${file} hashes to ${sha256}; fix the hash or the file`,
        },
      ],
      { source },
    );
  const uploaded = `s3://${bucket}/models/${sha256}.onnx`;
  raw.model.url = uploaded;
  raw.model.sha256 = sha256;
  return { model: { url: uploaded, sha256, uploaded: false }, bytes };
}

/** Uploads the model unless its content-addressed key exists; returns whether it uploaded. */
async function uploadModel(
  s3: S3Client,
  bucket: string,
  sha256: string,
  bytes: Uint8Array,
): Promise<boolean> {
  const key = `models/${sha256}.onnx`;
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return false; // the key is the hash: an object there holds these very bytes
  } catch (error) {
    // A HEAD 404 has no body to name its error class; some endpoints give a plain
    // S3ServiceException named NotFound.
    if (!(error instanceof NotFound || (error as { name?: unknown }).name === 'NotFound'))
      throw error;
  }
  await s3.send(
    new PutObjectCommand({
      Bucket: bucket,
      Key: key,
      Body: bytes,
      ContentType: 'application/octet-stream',
    }),
  );
  return true;
}

/** 20260314T091500Z: sortable, and valid in S3 keys and job names. */
function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function describe(r: SubmitResult): string {
  const lines: string[] = [];
  if (r.model)
    lines.push(
      `model      ${r.model.url} (${r.model.uploaded ? 'uploaded' : r.dryRun ? 'would be uploaded if missing' : 'already there'})`,
    );
  if (r.dryRun) {
    lines.push(`valid      would upload s3://${r.bucket}/${r.key} (--dry-run: nothing uploaded)`);
  } else {
    lines.push(
      `submitted  s3://${r.bucket}/${r.key}${r.version ? ` (version ${r.version})` : ''}`,
      `job        ${r.jobId}`,
      `status     ${r.statusCommand}`,
      `if refused ${r.rejectedStatus} says why`,
    );
  }
  if (r.neuroglancer) lines.push(`view       ${r.neuroglancer}`);
  return lines.join('\n');
}
