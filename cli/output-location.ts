// Where a local run may write its output. Checked before anything is written anywhere,
// because a wrong output.url destroys data no rerun can bring back:
//
//   - after symlinks and `..` are resolved, the output is not `/`, nor the manifest's
//     own directory, nor inside or around (ancestor of) the input, the model, the
//     manifest or the state directory;
//   - it is an empty directory, or a directory this job wrote before (its zarr.json
//     records the job as `"tessera": {"job": …}`, see output-owner.ts), or absent;
//   - it can be written (a read-only filesystem or missing permission is said as such,
//     not as the ENOENT or ENOTDIR that mkdir reports).
//
// Only local outputs are checked here: an s3:// output has no filesystem to collide with.

import {
  accessSync,
  constants,
  type Dirent,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fsFaultAdvice } from '../core/ledger/errors.ts';
import { localPathOf } from '../core/manifest/url.ts';
import { OutputOwnedError } from '../core/volume/errors.ts';
import { isObject, type JsonObject } from '../core/volume/json.ts';
import { ownerOf } from '../core/volume/output-owner.ts';
import { ownerDocOfInfo } from '../core/volume/precomputed/output.ts';

/** output.url cannot be used; nothing was written. */
export class OutputLocationError extends Error {
  override readonly name = 'OutputLocationError';
  constructor(
    readonly url: string,
    /** The output as resolved (symlinks and `..` followed). */
    readonly path: string,
    /** What it collides with, e.g. "the input (input.url)"; undefined for other causes. */
    readonly collidesWith: string | undefined,
    detail: string,
    options?: { cause?: unknown },
  ) {
    const where = path === url ? url : `${url} (${path})`;
    super(`output.url ${where} ${detail}; nothing was written`, options);
  }
}

export interface OutputLocationInput {
  jobId: string;
  outputUrl: string;
  inputUrl: string;
  modelUrl: string;
  /** The manifest file, absolute. */
  manifestPath: string;
  /** Directory relative URLs are resolved against (the manifest's). */
  baseDir: string;
  stateDir: string;
}

// Temporary files of LocalStore.set; a crash can leave them in an otherwise empty output.
const TEMP_MARKER = '.tessera-tmp-';

/**
 * Throws OutputLocationError when the run must not write to output.url; otherwise
 * returns with the output directory existing and writable. The only thing it writes is
 * that directory (and a probe file in it, removed at once), after every check passed.
 */
export function checkOutputLocation(o: OutputLocationInput): void {
  const outputPath = localPathOf(o.outputUrl, o.baseDir);
  if (outputPath === undefined) return;
  const output = realPathOf(outputPath);
  const refuse = (collidesWith: string | undefined, detail: string, cause?: unknown): never => {
    throw new OutputLocationError(
      o.outputUrl,
      output,
      collidesWith,
      detail,
      cause === undefined ? undefined : { cause },
    );
  };
  if (output === sep || output === dirname(output))
    refuse(
      '/',
      'is the filesystem root: the run would write zarr.json, 0/ and report.* there; name a directory of its own, e.g. out.zarr',
    );
  const manifestDir = realPathOf(dirname(o.manifestPath));
  if (output === manifestDir)
    refuse(
      "the manifest's directory",
      "is the manifest's own directory, which holds the manifest, its state directory and usually the input; name a directory of its own, e.g. out.zarr",
    );
  const others: { what: string; path: string | undefined }[] = [
    { what: 'the input (input.url)', path: localPathOf(o.inputUrl, o.baseDir) },
    { what: 'the model (model.url)', path: localPathOf(o.modelUrl, o.baseDir) },
    { what: 'the manifest', path: o.manifestPath },
    { what: 'the state directory', path: resolve(o.stateDir) },
  ];
  for (const other of others) {
    if (other.path === undefined) continue;
    const path = realPathOf(other.path);
    if (path === output)
      refuse(other.what, `is ${other.what} ${path}; writing there would overwrite it`);
    if (isInside(output, path))
      refuse(other.what, `is inside ${other.what} ${path}; writing there would damage it`);
    if (isInside(path, output))
      refuse(
        other.what,
        `contains ${other.what} ${path}; an output is written over whole, so it must not hold anything else`,
      );
  }
  checkContents(o, output, refuse);
  ensureWritable(output, refuse);
}

type Refuse = (collidesWith: string | undefined, detail: string, cause?: unknown) => never;

function checkContents(o: OutputLocationInput, output: string, refuse: Refuse): void {
  let entries: Dirent[];
  try {
    entries = readdirSync(output, { withFileTypes: true });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return;
    if (code === 'ENOTDIR') {
      const file = nearestExisting(output);
      refuse(
        'a file',
        file === output
          ? 'is a file, not a directory: the output is a Zarr directory; choose another path or move that file away'
          : `cannot be created: ${file} is a file, not a directory; choose another path`,
      );
    }
    refuse(undefined, `cannot be read (${code}): ${fsFaultAdvice(code, output)}`, error);
    return;
  }
  const named = entries.filter((e) => !e.name.startsWith(TEMP_MARKER));
  if (named.length === 0) return;
  // The array's own zarr.json is written first (output.ts), so a run stopped before the
  // group's is still recognised.
  const owners = [join(output, 'zarr.json'), join(output, '0', 'zarr.json')].map((p) => ownerIn(p));
  // A precomputed output records its job in its info file (core/volume/precomputed/output.ts).
  owners.push(ownerIn(join(output, 'info'), ownerDocOfInfo));
  if (owners.includes(o.jobId)) return;
  const other = owners.find((x) => x !== undefined);
  // The same refusal the output's writers make (output-owner.ts), made before any write.
  if (other !== undefined) throw new OutputOwnedError(output, other, o.jobId);
  const shown = named
    .slice(0, 3)
    .map((e) => e.name)
    .join(', ');
  refuse(
    'existing files',
    `is not empty (${shown}${named.length > 3 ? ', …' : ''}) and is not an earlier output of this job; ` +
      'choose an empty or new directory',
  );
}

function ownerIn(path: string, asDoc: (doc: JsonObject) => unknown = (d) => d): string | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
    throw error;
  }
  try {
    const doc: unknown = JSON.parse(text);
    return isObject(doc) ? ownerOf(asDoc(doc)) : undefined;
  } catch (error) {
    if (error instanceof SyntaxError) return undefined;
    throw error;
  }
}

function ensureWritable(output: string, refuse: Refuse): void {
  const fail = (error: unknown): never => {
    // mkdir on a read-only or forbidden parent reports what it could not find or make
    // (ENOENT, ENOTDIR); the nearest existing ancestor tells the real cause.
    const ancestor = nearestExisting(output);
    let code = (error as NodeJS.ErrnoException).code;
    try {
      if (!statSync(ancestor).isDirectory())
        return refuse(
          'a file',
          `cannot be created: ${ancestor} is a file, not a directory; choose another path`,
          error,
        );
      accessSync(ancestor, constants.W_OK);
    } catch (access) {
      if ((access as Error).name === 'OutputLocationError') throw access;
      code = (access as NodeJS.ErrnoException).code ?? code;
    }
    return refuse(
      undefined,
      `cannot be written (${code}): ${fsFaultAdvice(code, ancestor)}`,
      error,
    );
  };
  try {
    mkdirSync(output, { recursive: true });
    const probe = join(output, `${TEMP_MARKER}probe-${process.pid}`);
    writeFileSync(probe, '');
    rmSync(probe, { force: true });
  } catch (error) {
    fail(error);
  }
}

/** `path` with symlinks and `..` resolved, as far as it exists; the rest appended. */
function realPathOf(path: string): string {
  const abs = resolve(path);
  const tail: string[] = [];
  for (let p = abs; ; p = dirname(p)) {
    try {
      return join(realpathSync(p), ...tail.reverse());
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ENOTDIR') || p === dirname(p)) throw error;
      tail.push(basename(p));
    }
  }
}

function nearestExisting(path: string): string {
  for (let p = path; ; p = dirname(p)) {
    try {
      statSync(p);
      return p;
    } catch (error) {
      if (p === dirname(p)) throw error;
    }
  }
}

/** True when `inner` is `outer` or below it. */
function isInside(inner: string, outer: string): boolean {
  const rel = relative(outer, inner);
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${sep}`) && !isAbsolute(rel));
}
