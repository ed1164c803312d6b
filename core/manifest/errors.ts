// Errors of the manifest module. A manifest is written by hand, so every error names the
// field (dotted path with indices, e.g. `model.patchShape[2]`), says what is wrong and,
// where it can, what to write instead.

export interface ManifestIssue {
  /** Dotted path with indices (`model.patchShape[2]`, `input.url`); '' for the whole document. */
  readonly path: string;
  readonly message: string;
}

const REFERENCE_HINT = 'See the manifest reference in README.md.';

const QUOTE_CHARS = 80;

/**
 * `text` as a message quotes it: JSON-quoted, and past 80 characters clipped, with its
 * length: `"aaaa…"… (10000000 characters)`. Every message quoting a value from a manifest
 * goes through here, so a 10 MB field cannot print 10 MB.
 */
export function quoteForMessage(text: string): string {
  if (text.length <= QUOTE_CHARS) return JSON.stringify(text);
  return `${JSON.stringify(text.slice(0, QUOTE_CHARS))}… (${text.length} characters)`;
}

export interface ManifestErrorOptions {
  /** Where the manifest came from (a file name or an S3 key); prefixes every line. */
  readonly source?: string | undefined;
  readonly cause?: unknown;
}

/** The manifest is invalid; `issues` lists every problem found, not just the first. */
export class ManifestError extends Error {
  override readonly name = 'ManifestError';
  readonly issues: readonly ManifestIssue[];
  readonly source: string | undefined;

  constructor(issues: readonly ManifestIssue[], options: ManifestErrorOptions = {}) {
    super(formatMessage(issues, options.source), { cause: options.cause });
    this.issues = issues;
    this.source = options.source;
  }
}

// One line per issue, compiler style (`file: path: message`), so a terminal or CI log
// shows every problem at once and editors can jump to the file.
function formatMessage(issues: readonly ManifestIssue[], source: string | undefined): string {
  const prefix = source === undefined ? '' : `${source}: `;
  const count = issues.length === 1 ? '1 problem' : `${issues.length} problems`;
  const lines = issues.map(
    (issue) => `${prefix}${issue.path === '' ? '' : `${issue.path}: `}${issue.message}`,
  );
  return [`Invalid manifest (${count}):`, ...lines, REFERENCE_HINT].join('\n');
}

/** A storage URL (volume, model) that Tessera cannot address. */
export class InvalidUrlError extends Error {
  override readonly name = 'InvalidUrlError';
  readonly url: string;
  /** What is wrong, without the URL (so it can be embedded in a manifest issue). */
  readonly reason: string;

  constructor(url: string, reason: string, options: { cause?: unknown } = {}) {
    super(`${quoteForMessage(url)}: ${reason}`, { cause: options.cause });
    this.url = url;
    this.reason = reason;
  }
}
