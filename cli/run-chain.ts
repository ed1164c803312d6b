// Two-stage (recursive) pipelines: a manifest's `next` names the manifest(s) to run once
// its job SUCCEEDS. Each stage is an ordinary job (its own content-addressed id and state
// directory), so rerunning the first manifest skips the stages already finished (runLocal
// reports "already succeeded") and resumes the first unfinished one. A stage that does not
// succeed ends the chain: no later stage starts.

import { dirname, isAbsolute, resolve } from 'node:path';
import { type LoadedManifest, loadManifest } from './job-files.ts';
import type { LocalRunResult } from './local-run.ts';

export class ChainError extends Error {
  override readonly name = 'ChainError';
}

export interface ChainStage {
  path: string;
  result: LocalRunResult;
}

/** The `next` entries of a loaded manifest, as absolute paths (relative to its directory). */
export function nextStagePaths(m: LoadedManifest): string[] {
  const then = m.manifest.next;
  const list = then === undefined ? [] : typeof then === 'string' ? [then] : [...then];
  return list.map((p) => {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(p) && !p.startsWith('file://'))
      throw new ChainError(
        `${m.path}: next "${p}" is not a local manifest; a local run chains local files only (use a path relative to this manifest)`,
      );
    const local = p.startsWith('file://') ? new URL(p).pathname : p;
    return isAbsolute(local) ? local : resolve(dirname(m.path), local);
  });
}

/**
 * Runs `first`, then (depth first) every stage its `next` names, each after its parent
 * SUCCEEDED. Returns every stage run, in order; the last one's status is the chain's.
 */
export async function runChain(
  first: LoadedManifest,
  runStage: (m: LoadedManifest) => Promise<LocalRunResult>,
): Promise<ChainStage[]> {
  const stages: ChainStage[] = [];
  const seen = new Set<string>();
  const visit = async (m: LoadedManifest): Promise<boolean> => {
    if (seen.has(m.path))
      throw new ChainError(
        `${m.path}: the chain of "next" manifests comes back to this manifest; remove the cycle`,
      );
    seen.add(m.path);
    const result = await runStage(m);
    stages.push({ path: m.path, result });
    if (result.status !== 'SUCCEEDED') return false;
    for (const next of nextStagePaths(m)) {
      if (!(await visit(await loadManifest(next)))) return false;
    }
    return true;
  };
  await visit(first);
  return stages;
}
