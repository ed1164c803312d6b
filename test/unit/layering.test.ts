// The layering rule, read off the source: every relative import of every module is
// resolved and its top-level folder checked against what that folder may import.
//
//   contracts ← core ← adapters ← functions, cli      cdk: contracts, core, adapters
//
// contracts are the names the deployed pieces agree on (object keys, env names, task
// payloads) and import nothing; core is the domain and both drivers' step sequence (no
// AWS SDK, no entry points); adapters know no entry point.

import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(new URL('../..', import.meta.url).pathname);

const MAY_IMPORT: Record<string, readonly string[]> = {
  contracts: ['contracts'],
  core: ['core', 'contracts'],
  adapters: ['adapters', 'contracts', 'core'],
  functions: ['functions', 'adapters', 'contracts', 'core'],
  cli: ['cli', 'adapters', 'contracts', 'core'],
  cdk: ['cdk', 'adapters', 'contracts', 'core'],
};

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sources(p));
    else if (/\.(ts|mts|cts)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Relative module specifiers of static imports, re-exports and dynamic imports. */
function relativeImports(text: string): string[] {
  const specs: string[] = [];
  const re = /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](\.{1,2}\/[^'"]+)['"]/g;
  for (const m of text.matchAll(re)) specs.push(m[1]!);
  return specs;
}

function layerOf(path: string): string {
  return relative(ROOT, path).split(sep)[0]!;
}

function violations(): string[] {
  const found: string[] = [];
  for (const layer of Object.keys(MAY_IMPORT)) {
    let files: string[];
    try {
      files = sources(join(ROOT, layer));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') continue;
      throw e;
    }
    for (const file of files) {
      for (const spec of relativeImports(readFileSync(file, 'utf8'))) {
        const target = layerOf(resolve(dirname(file), spec));
        if (!MAY_IMPORT[layer]!.includes(target))
          found.push(`${relative(ROOT, file)} imports ${spec} (${layer} → ${target})`);
      }
    }
  }
  return found;
}

describe('layering', () => {
  it('the import scanner sees every kind of relative import', () => {
    const text = [
      "import { a } from '../x/a.ts';",
      "import type { B } from '../../y/b.ts';",
      "export { c } from './c.ts';",
      "import './side-effect.ts';",
      "const d = await import('../z/d.ts');",
      "import { e } from 'node:fs';",
    ].join('\n');
    expect(relativeImports(text)).toEqual([
      '../x/a.ts',
      '../../y/b.ts',
      './c.ts',
      './side-effect.ts',
      '../z/d.ts',
    ]);
  });

  it('no module imports from a layer above its own', () => {
    expect(violations()).toEqual([]);
  });

  it('core, both drivers included, imports no AWS SDK, CDK or Lambda package', () => {
    const cloudPackage =
      /(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s+)['"](@aws-sdk\/|@smithy\/|aws-cdk-lib|constructs|@aws-lambda-powertools\/|aws-lambda)/;
    const found = sources(join(ROOT, 'core'))
      .filter((f) => cloudPackage.test(readFileSync(f, 'utf8')))
      .map((f) => relative(ROOT, f));
    expect(found).toEqual([]);
  });

  it('the Lambda handlers stay thin: each is a few lines over one core step', () => {
    const long = sources(join(ROOT, 'functions'))
      .map((f) => ({ f: relative(ROOT, f), lines: readFileSync(f, 'utf8').split('\n').length }))
      .filter((x) => x.lines > 45);
    expect(long).toEqual([]);
  });
});
