// `tessera verify <manifest.json> [--full] [--check-only] [--state DIR] [--json]`

import { describeDamage } from '../core/pipeline/output-check.ts';
import { parse } from './args.ts';
import { loadManifest } from './job-files.ts';
import { verifyLocal } from './local-repair.ts';

const USAGE = `Usage: tessera verify <manifest.json> [--full] [--check-only] [--state DIR] [--json]

Checks that the output of a finished local job holds every object it wrote, each whole:
every zarr.json, every level-0 block of the region, every pyramid block. By default one
listing plus a read of each block's zstd frame structure (no decoding): finds missing,
empty and cut-short blocks. --full decodes every block too.

Damaged objects are repaired unless --check-only: exactly the chunks that own or
contribute to a damaged block run again, its seam blocks are blended again, and a
damaged pyramid is rebuilt from level 0. Exit status: 0 intact (or repaired), 1 damaged
(--check-only) or not repaired, 2 usage.`;

export async function verifyCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    {
      full: { type: 'boolean' },
      'check-only': { type: 'boolean' },
      state: { type: 'string' },
      json: { type: 'boolean' },
    },
    USAGE,
  );
  if (help) return 0;
  const [path] = positionals;
  if (!path || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const log = (line: string): void => {
    process.stderr.write(`${line}\n`);
  };
  const loaded = await loadManifest(path);
  const checkOnly = values['check-only'] === true;
  const result = await verifyLocal(loaded, {
    depth: values.full === true ? 'decode' : 'frames',
    checkOnly,
    ...(typeof values.state === 'string' ? { stateDir: values.state } : {}),
    log,
  });
  const { check, repair } = result;
  const output = loaded.manifest.output.url;
  if (check.damaged.length === 0) {
    log(`${output}: intact (${check.checked} objects checked, ${check.depth})`);
  } else {
    log(`${output}: ${check.damaged.length} of ${check.checked} objects damaged (${check.depth}):`);
    for (const line of describeDamage(check.damaged)) log(line);
  }
  if (repair) {
    log(
      repair.status === 'REPAIRED'
        ? `repaired: ${repair.plan.chunkIds.length} chunk(s) re-run, ${repair.blended} seam block(s) blended${repair.plan.pyramid ? ', pyramid rebuilt' : ''}; the output checks intact now`
        : `not repaired: ${repair.message ?? 'see above'}`,
    );
  } else if (checkOnly && check.damaged.length > 0) {
    log(`run \`tessera verify ${path}\` without --check-only to repair`);
  }
  if (values.json === true)
    process.stdout.write(
      `${JSON.stringify({
        jobId: result.jobId,
        output,
        depth: check.depth,
        checked: check.checked,
        damaged: check.damaged,
        ...(repair
          ? {
              repair: {
                status: repair.status,
                chunkIds: repair.plan.chunkIds,
                seamBlocks: repair.plan.seamBlocks,
                pyramid: repair.plan.pyramid,
                remaining: repair.remaining,
              },
            }
          : {}),
      })}\n`,
    );
  if (check.damaged.length === 0) return 0;
  return repair?.status === 'REPAIRED' ? 0 : 1;
}
