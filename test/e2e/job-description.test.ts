// The job described once, end to end: a real local run (worker processes, the real
// model) freezes the job's description in its state directory; the report counts the
// workers that finished chunks; and once the input is rewritten with another shape, the
// same command is refused by name instead of planning the changed input afresh.

import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest } from '../../cli/job-files.ts';
import { runLocal } from '../../cli/local-run.ts';
import { InputChangedError } from '../../core/pipeline/index.ts';
import { LocalStore } from '../../core/store/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';
import { FIXTURE_MODELS, lcgVolume, tempDir, writeJobDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

describe('tessera run and the frozen job description', () => {
  it('freezes the input shape at plan time and refuses, by name, an input changed since', async () => {
    const t = tempDir();
    cleanups.push(t.cleanup);
    const path = await writeJobDir(t.dir, {
      shape: [4, 12, 24],
      manifest: {
        name: 'frozen-job',
        model: {
          url: join(FIXTURE_MODELS, 'realistic.onnx'),
          patchShape: [4, 4, 4],
          outputChannels: 2,
        },
        output: { url: 'output.zarr', dtype: 'float32', blockShape: [4, 4, 4] },
        overlap: [0, 2, 2],
        chunkShape: [4, 6, 10],
        blend: 'bump',
      },
    });
    const loaded = await loadManifest(path);
    const stateDir = join(t.dir, 'state');
    const first = await runLocal(loaded, { stateDir, workers: 2 });
    expect(first.status).toBe('SUCCEEDED');
    const frozen = JSON.parse(
      readFileSync(join(stateDir, 'work', first.jobId, 'job.json'), 'utf8'),
    );
    expect(frozen.input).toMatchObject({ shape: [4, 12, 24], dtype: 'uint8' });
    // Distinct owners that finished chunks: at least one, at most the two forked.
    expect(first.report?.workers).toBeGreaterThanOrEqual(1);
    expect(first.report?.workers).toBeLessThanOrEqual(2);
    expect(Object.keys(first.report?.timings ?? {})).toEqual(
      expect.arrayContaining(['plan', 'work', 'verify', 'blend', 'finalize']),
    );

    rmSync(join(t.dir, 'input.zarr'), { recursive: true, force: true });
    await writeZarrArray(new LocalStore(join(t.dir, 'input.zarr'), { fsync: false }), {
      data: lcgVolume([4, 12, 30], 3),
      shape: [4, 12, 30],
      chunkShape: [7, 9, 11],
    });
    const again = runLocal(loaded, { stateDir, workers: 1 });
    await expect(again).rejects.toBeInstanceOf(InputChangedError);
    await expect(again).rejects.toThrow(
      'input.url input.zarr now has shape [4, 12, 30], the job was planned for [4, 12, 24]',
    );
  });
});
