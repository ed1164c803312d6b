// Public surface of the manifest module: parse and validate job manifests, their JSON
// Schema, and the storage-URL helpers the AWS side reuses for bucket checks.

export {
  CLOUD_OUTPUT_PREFIX,
  type CloudPolicy,
  checkCloudPolicy,
  cloudPolicyIssues,
  type ManifestUrls,
} from './cloud-policy.ts';
export { InvalidUrlError, ManifestError, type ManifestIssue } from './errors.ts';
export { JOB_ID_SHAPE } from './job-id.ts';
export { type JsonSchema, manifestJsonSchema } from './json-schema.ts';
export {
  MAX_MANIFEST_BYTES,
  type ManifestParseResult,
  manifestTooLargeIssue,
  parseManifest,
  parseManifestText,
  safeParseManifest,
} from './parse.ts';
export { type Manifest, type ManifestInput, manifestSchema } from './schema.ts';
export {
  canonicalStorageUrl,
  isS3Url,
  parseS3Url,
  parseStorageUrl,
  type S3Location,
  type StorageLocation,
  s3BucketProblem,
  s3UrlIsUnder,
  sameStorageLocation,
  storageUrlProblem,
} from './url.ts';
export { checkManifestAgainstVolume } from './volume.ts';
