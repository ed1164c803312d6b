// Which storage a cloud job may touch. Manifests arrive from other teams: every URL must
// be an s3:// URL in a bucket the stack allows (its own bucket, plus buckets the operator
// listed), and the output must lie under `outputs/` of its bucket — the only prefix the
// workers' IAM grants let them write (cdk/constructs/storage.ts), so a manifest can never
// aim a job at models, inputs, manifests/, jobs/ or another team's raw data.

import { ManifestError, type ManifestIssue, quoteForMessage } from './errors.ts';
import type { Manifest } from './schema.ts';
import { isS3Url, parseS3Url, s3UrlIsUnder, splitFormatPrefix, storageUrlProblem } from './url.ts';

export interface CloudPolicy {
  /** The stack's bucket: manifests/ and jobs/ live here and are never job outputs. */
  stackBucket: string;
  /** Extra buckets manifests may read from and write to. */
  allowedBuckets: readonly string[];
}

/** Cloud outputs go under this key prefix of the stack bucket or an allowed bucket. */
export const CLOUD_OUTPUT_PREFIX = 'outputs/';

/** The URL fields the policy looks at; loose so an otherwise invalid manifest is checked too. */
export interface ManifestUrls {
  name?: unknown;
  input?: { url?: unknown } | undefined;
  output?: { url?: unknown } | undefined;
  model?: { url?: unknown } | undefined;
}

export function cloudPolicyIssues(
  m: Manifest | ManifestUrls,
  policy: CloudPolicy,
): ManifestIssue[] {
  const issues: ManifestIssue[] = [];
  const buckets = [policy.stackBucket, ...policy.allowedBuckets];
  const check = (path: string, spelled: unknown): void => {
    // precomputed://s3://… is checked as the s3:// URL it wraps.
    const url = typeof spelled === 'string' ? splitFormatPrefix(spelled).url : spelled;
    // A missing, non-string or malformed URL is the schema's to report (and parseS3Url
    // below would throw on it, turning a rejection into a crash).
    if (typeof url !== 'string' || storageUrlProblem(url) !== undefined) return;
    if (!isS3Url(url)) {
      issues.push({
        path,
        message: `must be an s3:// URL in a cloud job (got ${quoteForMessage(url)}); upload the data to S3`,
      });
      return;
    }
    if (!buckets.some((b) => s3UrlIsUnder(url, b))) {
      issues.push({
        path,
        message: `bucket "${parseS3Url(url).bucket}" is not allowed; this stack may use: ${buckets.join(', ')} (ask the operator to add it to allowedBuckets)`,
      });
    }
  };
  check('input.url', m.input?.url);
  check('output.url', m.output?.url);
  check('model.url', m.model?.url);
  const out = typeof m.output?.url === 'string' ? splitFormatPrefix(m.output.url).url : undefined;
  if (
    typeof out === 'string' &&
    storageUrlProblem(out) === undefined &&
    isS3Url(out) &&
    buckets.some((b) => s3UrlIsUnder(out, b)) &&
    !isUnderOutputs(out)
  ) {
    const { bucket } = parseS3Url(out);
    issues.push({
      path: 'output.url',
      message: `must be under ${CLOUD_OUTPUT_PREFIX} of its bucket (cloud workers may write nowhere else); choose e.g. s3://${bucket}/${CLOUD_OUTPUT_PREFIX}${jobName(m.name)}.zarr — allowed output prefixes: ${buckets.map((b) => `s3://${b}/${CLOUD_OUTPUT_PREFIX}`).join(', ')}`,
    });
  }
  return issues;
}

/** True when the URL's key lies strictly below `outputs/` (not the prefix itself). */
function isUnderOutputs(url: string): boolean {
  const { key } = parseS3Url(url);
  return key.startsWith(CLOUD_OUTPUT_PREFIX) && key.length > CLOUD_OUTPUT_PREFIX.length;
}

const jobName = (name: unknown): string =>
  typeof name === 'string' && /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) ? name : 'job';

export function checkCloudPolicy(m: Manifest, policy: CloudPolicy, source?: string): void {
  const issues = cloudPolicyIssues(m, policy);
  if (issues.length > 0) throw new ManifestError(issues, { source });
}
