// Reading a manifest from disk and deciding where a local run keeps its state.

import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { JournalView } from '../core/ledger/journal-view.ts';
import { jobIdForDocument } from '../core/manifest/identity.ts';
import { type Manifest, parseManifest } from '../core/manifest/index.ts';
import { parseManifestJson } from '../core/manifest/parse.ts';
import { legacyJobIdFor } from '../core/pipeline/index.ts';

export interface LoadedManifest {
  manifest: Manifest;
  path: string;
  baseDir: string;
  /** From the manifest as written (jobIdForDocument); see resolveJobId for older state. */
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
  const raw = parseManifestJson(text, path);
  const manifest = parseManifest(raw, path);
  return {
    manifest,
    path: abs,
    baseDir: dirname(abs),
    jobId: jobIdForDocument(raw, manifest.name),
  };
}

/**
 * The id under which `stateDir` (a `tessera run` state directory, its ledger in
 * `<stateDir>/ledger`) holds this manifest's job. Releases before the id was taken from
 * the manifest as written hashed the parsed manifest (legacyJobIdFor): a state directory
 * they wrote holds the job under that id, and resuming it under the new one would start
 * afresh beside its finished chunks. So: the new id if the ledger has it, else the legacy
 * id if the ledger has that, else (a new job) the new id.
 *
 * Reads the journal without the lock and writes nothing, so it is safe while a run holds
 * the directory; a journal it cannot read throws the ledger's LedgerCorruptError.
 */
export async function resolveJobId(m: LoadedManifest, stateDir: string): Promise<string> {
  // An empty view where no journal is there yet.
  const ids = (await JournalView.read(join(stateDir, 'ledger'))).jobIds();
  if (ids.includes(m.jobId)) return m.jobId;
  const legacy = legacyJobIdFor(m.manifest);
  return ids.includes(legacy) ? legacy : m.jobId;
}

/** Default state directory: `.tessera/<job name>` beside the manifest. */
export function defaultStateDir(m: LoadedManifest): string {
  return join(m.baseDir, '.tessera', m.manifest.name);
}
