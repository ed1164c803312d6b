#!/usr/bin/env node
// Entry shim: registers the TypeScript loader, then runs the CLI (no build step needed).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
