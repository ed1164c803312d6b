// Where the repository lies, for assets (Lambda entries, Dockerfiles) resolved at synth.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
