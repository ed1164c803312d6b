// `next` chaining of local runs: order, relative paths, and that a failed stage starts
// nothing after it (cli/run-chain.ts). Stage runs are stubbed; the manifests are real files.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import type { LocalRunResult } from '../../cli/local-run.ts';
import { ChainError, runChain } from '../../cli/run-chain.ts';
import { tempDir } from '../helpers/job-dir.ts';

const t = tempDir('tessera-chain-');
afterAll(t.cleanup);

function manifest(name: string, input: string, output: string, then?: unknown): string {
  const path = join(t.dir, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      version: 1,
      name,
      input: { url: input },
      output: { url: output, dtype: 'float32' },
      model: { url: 'm.onnx', patchShape: [4, 4, 4], outputChannels: 1 },
      overlap: [0, 0, 0],
      chunkShape: [4, 4, 4],
      ...(then === undefined ? {} : { next: then }),
    }),
  );
  return path;
}

const ok = (jobId: string, status: LocalRunResult['status'] = 'SUCCEEDED'): LocalRunResult => ({
  status,
  jobId,
  output: '',
  chunks: 1,
  seconds: 0,
  inferredThisRun: 1,
  peakWorkerRssBytes: 0,
});

describe('runChain', () => {
  it('runs stage 1, then the stage its relative `next` names', async () => {
    manifest('stage-two', 'one.zarr', 'two.zarr');
    const first = await loadManifest(
      manifest('stage-one', 'raw.zarr', 'one.zarr', 'stage-two.json'),
    );
    const ran: string[] = [];
    const stages = await runChain(first, async (m) => {
      ran.push(m.manifest.name);
      return ok(m.jobId);
    });
    expect(ran).toEqual(['stage-one', 'stage-two']);
    expect(stages.map((s) => s.result.status)).toEqual(['SUCCEEDED', 'SUCCEEDED']);
  });

  it('a failed stage 1 never starts stage 2', async () => {
    manifest('fail-two', 'one.zarr', 'two.zarr');
    const first = await loadManifest(
      manifest('fail-one', 'raw.zarr', 'one.zarr', ['fail-two.json']),
    );
    const ran: string[] = [];
    await runChain(first, async (m) => {
      ran.push(m.manifest.name);
      return ok(m.jobId, 'FAILED');
    });
    expect(ran).toEqual(['fail-one']);
  });

  it('refuses a cycle of `next` manifests', async () => {
    manifest('loop-two', 'one.zarr', 'two.zarr', 'loop-one.json');
    const first = await loadManifest(manifest('loop-one', 'raw.zarr', 'one.zarr', 'loop-two.json'));
    await expect(runChain(first, async (m) => ok(m.jobId))).rejects.toBeInstanceOf(ChainError);
  });
});
