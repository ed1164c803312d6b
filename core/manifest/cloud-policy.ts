// Which storage a cloud job may touch. Manifests arrive from other teams: every URL must
// be an s3:// URL in a bucket the stack allows (its own bucket, plus buckets the operator
// listed), and the output must not land on the stack's control prefixes.

import { ManifestError, type ManifestIssue } from './errors.ts';
import type { Manifest } from './schema.ts';
import { isS3Url, parseS3Url, s3UrlIsUnder, storageUrlProblem } from './url.ts';

export interface CloudPolicy {
  /** The stack's bucket: manifests/ and jobs/ live here and are never job outputs. */
  stackBucket: string;
  /** Extra buckets manifests may read from and write to. */
  allowedBuckets: readonly string[];
}

const RESERVED_PREFIXES = ['manifests', 'jobs'];

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
  const check = (path: string, url: unknown): void => {
    // A missing, non-string or malformed URL is the schema's to report (and parseS3Url
    // below would throw on it, turning a rejection into a crash).
    if (typeof url !== 'string' || storageUrlProblem(url) !== undefined) return;
    if (!isS3Url(url)) {
      issues.push({
        path,
        message: `must be an s3:// URL in a cloud job (got "${url}"); upload the data to S3`,
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
  const out = m.output?.url;
  if (
    typeof out === 'string' &&
    isS3Url(out) &&
    RESERVED_PREFIXES.some((p) => s3UrlIsUnder(out, policy.stackBucket, p))
  ) {
    issues.push({
      path: 'output.url',
      message: `must not be under ${RESERVED_PREFIXES.map((p) => `${p}/`).join(' or ')} of the stack bucket; choose e.g. s3://${policy.stackBucket}/outputs/${String(m.name ?? 'job')}.zarr`,
    });
  }
  return issues;
}

export function checkCloudPolicy(m: Manifest, policy: CloudPolicy, source?: string): void {
  const issues = cloudPolicyIssues(m, policy);
  if (issues.length > 0) throw new ManifestError(issues, { source });
}
