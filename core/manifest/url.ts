// Storage URLs Tessera can address: a plain local path, `file://`, or `s3://bucket/key`.
// Parsing is strict because the AWS side reuses it to decide whether a manifest may
// touch a bucket: the bucket is compared whole (never as a string prefix, so
// `s3://allowed-bucket-evil/` is not in `allowed-bucket`) and keys with `.`/`..`
// segments are refused (stores that map keys onto a filesystem would resolve them).
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InvalidUrlError, quoteForMessage } from './errors.ts';

export interface S3Location {
  readonly bucket: string;
  /** Object key or key prefix, without the leading slash; '' for the bucket root. */
  readonly key: string;
}

export type StorageLocation =
  | ({ readonly kind: 's3' } & S3Location)
  | { readonly kind: 'local'; readonly path: string };

type Checked<T> =
  | { readonly ok: true; readonly value: T }
  | { readonly ok: false; readonly reason: string };

const SCHEME = /^([a-z][a-z0-9+.-]*):\/\//i;
// Neuroglancer's data-source prefix: `precomputed://<storage URL>` names the storage URL
// and says it holds a precomputed volume. Stripped before any store is opened.
const FORMAT_PREFIX = /^precomputed:\/\//i;

/** `precomputed://<url>` → { format: 'precomputed', url }; any other URL as it is. */
export function splitFormatPrefix(url: string): { format?: 'precomputed'; url: string } {
  return FORMAT_PREFIX.test(url)
    ? { format: 'precomputed', url: url.replace(FORMAT_PREFIX, '') }
    : { url };
}
// `s3:bucket/key` and `file:/x` are almost always a missing slash, not a relative path.
const SCHEME_MISSING_SLASHES = /^(s3|file):(?!\/\/)/i;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds.
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;
const MAX_S3_KEY_BYTES = 1024;
// Linux's PATH_MAX and NAME_MAX (macOS: 1024 and 255). A longer URL is data pasted into
// the wrong field, or an attack; no store could open it.
const MAX_URL_BYTES = 4096;
const MAX_NAME_BYTES = 255;

/** True when `url` uses the s3:// scheme; it may still be malformed (see `parseS3Url`). */
export function isS3Url(url: string): boolean {
  return /^s3:\/\//i.test(url);
}

/** Splits `s3://bucket/key` after validating the bucket name and key; throws InvalidUrlError. */
export function parseS3Url(url: string): S3Location {
  return unwrap(url, checkS3Url(url));
}

/** Parses any accepted storage URL; throws InvalidUrlError naming what is wrong. */
export function parseStorageUrl(url: string): StorageLocation {
  return unwrap(url, checkStorageUrl(url));
}

/** The reason `url` is not an accepted storage URL, or undefined when it is. */
export function storageUrlProblem(url: string): string | undefined {
  const checked = checkStorageUrl(url);
  return checked.ok ? undefined : checked.reason;
}

/**
 * True when `url` is a valid S3 URL inside `bucket` and, when given, under `prefix`.
 * The prefix is matched by whole key segments (`data` covers `data/x`, not `database/x`).
 */
export function s3UrlIsUnder(url: string, bucket: string, prefix = ''): boolean {
  const checked = checkS3Url(url);
  if (!checked.ok || checked.value.bucket !== bucket) return false;
  const wanted = prefix.replace(/^\/+|\/+$/g, '');
  const key = checked.value.key;
  return wanted === '' || key === wanted || key.startsWith(`${wanted}/`);
}

/** True when two URLs name the same place (trailing slashes, file:// vs path, `./` ignored). */
export function sameStorageLocation(a: string, b: string): boolean {
  const left = checkStorageUrl(a);
  const right = checkStorageUrl(b);
  if (!left.ok || !right.ok) return a === b;
  return canonical(left.value) === canonical(right.value);
}

/**
 * One spelling per place, for keys that must not tell two spellings apart (the ledger's
 * output claims): `s3://bucket/key` without trailing slashes, or an absolute local path
 * (file:// URLs and relative paths, the latter resolved against `baseDir`). A URL of a
 * scheme Tessera does not parse (a test's fake) is kept as written, less trailing slashes.
 */
export function canonicalStorageUrl(url: string, baseDir = process.cwd()): string {
  const checked = checkStorageUrl(url);
  if (!checked.ok) return url.replace(/\/+$/, '');
  const location = checked.value;
  return location.kind === 'local' ? resolve(baseDir, location.path) : canonical(location);
}

/**
 * The absolute local path a storage URL names, or undefined for a remote one (s3://, any
 * other scheme): a plain path (a relative one resolved against `baseDir`, the manifest's
 * directory) or a file:// URL, percent-decoded (`file:///data/my%20model.onnx` is the file
 * `/data/my model.onnx`). The model's size check, its read and its open (resolveModelPath)
 * and the output-location check all go through it, so what is checked is what is opened.
 * A malformed file:// URL (a host, an encoded '/') throws InvalidUrlError.
 */
export function localPathOf(spelled: string, baseDir = process.cwd()): string | undefined {
  const url = splitFormatPrefix(spelled).url;
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return resolve(baseDir, url);
  if (scheme !== 'file') return undefined;
  return unwrap(url, decodeFileUrl(url));
}

function canonical(location: StorageLocation): string {
  return location.kind === 's3'
    ? `s3://${location.bucket}/${location.key.replace(/\/+$/, '')}`
    : resolve(location.path);
}

function unwrap<T>(url: string, checked: Checked<T>): T {
  if (!checked.ok) throw new InvalidUrlError(url, checked.reason);
  return checked.value;
}

function checkStorageUrl(url: string): Checked<StorageLocation> {
  const bytes = Buffer.byteLength(url, 'utf8');
  if (bytes > MAX_URL_BYTES) {
    return fail(
      `is ${bytes} bytes long, over the ${MAX_URL_BYTES} bytes a path or URL may have; ` +
        'write the path or URL of the data here, not the data',
    );
  }
  if (url.trim() === '') return fail('must not be empty');
  if (url.trim() !== url) return fail('has leading or trailing whitespace');
  if (CONTROL_CHARACTER.test(url)) return fail('contains a control character');
  const inner = splitFormatPrefix(url);
  if (inner.format !== undefined) {
    if (splitFormatPrefix(inner.url).format !== undefined)
      return fail('names precomputed:// twice; write it once');
    return inner.url === ''
      ? fail('has nothing after precomputed://; write precomputed://<path or s3://bucket/key>')
      : checkStorageUrl(inner.url);
  }
  const missing = SCHEME_MISSING_SLASHES.exec(url);
  if (missing) return fail(`write "${missing[1]}://" with two slashes`);
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  if (scheme === undefined) return checkLocalPath(url);
  if (scheme === 's3') {
    const s3 = checkS3Url(url);
    return s3.ok ? { ok: true, value: { kind: 's3', ...s3.value } } : s3;
  }
  if (scheme === 'file') return checkFileUrl(url);
  return fail(
    `unsupported scheme ${quoteForMessage(`${scheme}://`)}; use a local path, file:///absolute/path or s3://bucket/key`,
  );
}

function checkLocalPath(path: string): Checked<StorageLocation> {
  for (const name of path.split(/[\\/]/)) {
    const bytes = Buffer.byteLength(name, 'utf8');
    if (bytes > MAX_NAME_BYTES) {
      return fail(
        `has a file name of ${bytes} bytes (${quoteForMessage(name)}), over the ` +
          `${MAX_NAME_BYTES}-byte limit of filesystems; shorten it`,
      );
    }
  }
  return { ok: true, value: { kind: 'local', path } };
}

function checkFileUrl(url: string): Checked<StorageLocation> {
  const path = decodeFileUrl(url);
  return path.ok ? checkLocalPath(path.value) : path;
}

function decodeFileUrl(url: string): Checked<string> {
  try {
    return { ok: true, value: fileURLToPath(new URL(url)) };
  } catch (error) {
    // URL and fileURLToPath report malformed input (a host, an encoded '/') as TypeError.
    if (!(error instanceof TypeError)) throw error;
    return fail(`is not a usable file URL (${error.message}); write file:///absolute/path`);
  }
}

function checkS3Url(url: string): Checked<S3Location> {
  if (!isS3Url(url)) return fail('is not an s3:// URL');
  if (CONTROL_CHARACTER.test(url)) return fail('contains a control character');
  const rest = url.slice('s3://'.length);
  const slash = rest.indexOf('/');
  const bucket = slash < 0 ? rest : rest.slice(0, slash);
  const key = slash < 0 ? '' : rest.slice(slash + 1);
  const bucketProblem = s3BucketProblem(bucket);
  if (bucketProblem !== undefined) return fail(bucketProblem);
  const keyProblem = s3KeyProblem(key);
  if (keyProblem !== undefined) return fail(keyProblem);
  return { ok: true, value: { bucket, key } };
}

/** Why `bucket` is not a valid S3 bucket name (AWS naming rules), or undefined. */
export function s3BucketProblem(bucket: string): string | undefined {
  const quoted = quoteForMessage(bucket);
  if (bucket === '') return 'has no bucket name; write s3://bucket/key';
  if (bucket.length < 3 || bucket.length > 63) {
    return `bucket name ${quoted} must be 3 to 63 characters long`;
  }
  if (/[A-Z]/.test(bucket)) return `bucket name ${quoted} must be lower case`;
  if (/[^a-z0-9.-]/.test(bucket)) {
    return `bucket name ${quoted} may contain only lower-case letters, digits, '.' and '-'`;
  }
  if (!/^[a-z0-9].*[a-z0-9]$/.test(bucket)) {
    return `bucket name ${quoted} must begin and end with a letter or digit`;
  }
  if (bucket.includes('..')) return `bucket name ${quoted} must not contain two adjacent dots`;
  if (/^\d+\.\d+\.\d+\.\d+$/.test(bucket)) {
    return `bucket name ${quoted} must not be formatted as an IP address`;
  }
  return undefined;
}

function s3KeyProblem(key: string): string | undefined {
  if (Buffer.byteLength(key, 'utf8') > MAX_S3_KEY_BYTES) {
    return `key is longer than S3's ${MAX_S3_KEY_BYTES}-byte limit`;
  }
  if (key === '') return undefined;
  const segments = key.split('/');
  for (const [index, segment] of segments.entries()) {
    if (segment === '.' || segment === '..') {
      return `key must not contain "${segment}" path segments`;
    }
    // A single trailing slash marks a prefix; any other empty segment is a typo ('//').
    if (segment === '' && index !== segments.length - 1) {
      return 'key must not contain empty path segments ("//" or a leading "/")';
    }
  }
  return undefined;
}

function fail(reason: string): { readonly ok: false; readonly reason: string } {
  return { ok: false, reason };
}
