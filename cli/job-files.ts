// Reading a manifest from disk and deciding where a local run keeps its state.

import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { type Manifest, parseManifestText } from '../core/manifest/index.ts';
import { jobIdFor } from '../core/pipeline/index.ts';

export interface LoadedManifest {
  manifest: Manifest;
  path: string;
  baseDir: string;
  jobId: string;
}

export class ManifestFileError extends Error {
  override readonly name = 'ManifestFileError';
}

export async function loadManifest(path: string): Promise<LoadedManifest> {
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, 'utf8');
  } catch (cause) {
    throw new ManifestFileError(
      `cannot read manifest ${path}: ${(cause as Error).message}; check the path`,
      { cause },
    );
  }
  const manifest = parseManifestText(text, path);
  return { manifest, path: abs, baseDir: dirname(abs), jobId: jobIdFor(manifest) };
}

/** Default state directory: `.tessera/<job name>` beside the manifest. */
export function defaultStateDir(m: LoadedManifest): string {
  return join(m.baseDir, '.tessera', m.manifest.name);
}
