// Forking a TypeScript entry point as a child process: the child needs the tsx loader,
// named by absolute URL so it resolves wherever the user's working directory is.

import { type ChildProcess, type ForkOptions, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const TSX_LOADER = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

export function forkTs(entry: URL, args: string[], options: ForkOptions = {}): ChildProcess {
  // TESSERA_CHILD_NODE_OPTIONS adds flags to the children only, e.g. "--cpu-prof" to profile workers.
  const extra = process.env.TESSERA_CHILD_NODE_OPTIONS?.split(' ').filter(Boolean) ?? [];
  return fork(entry.pathname, args, { ...options, execArgv: ['--import', TSX_LOADER, ...extra] });
}
