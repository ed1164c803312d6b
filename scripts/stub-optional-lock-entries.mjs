#!/usr/bin/env node
// npm 11's `npm ci` refuses a lock that lacks an entry for any optional dependency that a
// locked package declares (npm/cli#4828, #8320) — and a registry mirror that serves only
// this platform's binaries (biome, rollup for linux) makes `npm install` write exactly such
// a lock. This adds a minimal entry (version, optional, os/cpu from the package name) for
// each missing one; npm then skips them on other platforms as it would have anyway.
//
//   node scripts/stub-optional-lock-entries.mjs   (after `npm install` changes the lock)
import { readFileSync, writeFileSync } from 'node:fs';

const path = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(path, 'utf8'));
const pk = lock.packages;
const OS = /(android|darwin|linux|win32|freebsd|openbsd|netbsd|sunos|aix|openharmony)/;
const CPU = /(arm64|x64|arm|ia32|riscv64|s390x|ppc64|loong64|wasm32|mips64el)/;
let added = 0;
for (const [where, info] of Object.entries({ ...pk })) {
  for (const [name, spec] of Object.entries(info.optionalDependencies ?? {})) {
    const nested = `${where ? `${where}/` : ''}node_modules/${name}`;
    if (pk[`node_modules/${name}`] || pk[nested]) continue;
    const entry = { version: String(spec).replace(/^[\^~=]/, ''), optional: true };
    const base = name.split('/').pop();
    const os = OS.exec(base)?.[1];
    if (os) entry.os = [os];
    const cpu = CPU.exec(base.replace(os ?? '', ''))?.[1];
    if (cpu) entry.cpu = [cpu];
    pk[`node_modules/${name}`] = entry;
    added++;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(pk).sort(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
writeFileSync(path, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`added ${added} optional lock entries`);
