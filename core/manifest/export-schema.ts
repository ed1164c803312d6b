// Writes schema/manifest.schema.json from the zod schema. Run after changing the
// schema: `node --import tsx core/manifest/export-schema.ts` (a unit test fails while
// the committed file is stale). The JSON goes through Biome's formatter so that a
// regenerated file is byte-identical to a formatted one and `biome check` stays clean.
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { manifestJsonSchema } from './json-schema.ts';

const root = new URL('../../', import.meta.url);
const target = fileURLToPath(new URL('schema/manifest.schema.json', root));
const biome = fileURLToPath(new URL('node_modules/@biomejs/biome/bin/biome', root));

const formatted = execFileSync(
  process.execPath,
  [biome, 'format', '--stdin-file-path=schema/manifest.schema.json'],
  { cwd: fileURLToPath(root), input: JSON.stringify(manifestJsonSchema()), encoding: 'utf8' },
);
writeFileSync(target, formatted);
process.stdout.write(`wrote ${target}\n`);
