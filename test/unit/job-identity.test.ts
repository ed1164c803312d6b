// Job identity: the id is a hash of the manifest as written (canonicalised), not of the
// parsed manifest with this release's defaults, and a state directory an earlier release
// wrote under the legacy id is still found. Expected ids are computed here, with
// node:crypto, from canonical strings written out by hand.

import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadManifest, resolveJobId } from '../../cli/job-files.ts';
import { LocalLedger } from '../../core/ledger/local.ts';
import { jobIdForDocument } from '../../core/manifest/identity.ts';
import { legacyJobIdFor } from '../../core/pipeline/index.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'tessera-identity-'));
  dirs.push(d);
  return d;
};

// Relies on defaults: no blend, compute, maxAttempts.
const TEXT = `{
  "version": 1,
  "name": "cells",
  "input": { "url": "input.zarr" },
  "output": { "url": "out.zarr", "dtype": "float32" },
  "model": { "url": "m.onnx", "patchShape": [8, 8, 8], "outputChannels": 1 },
  "overlap": [2, 2, 2],
  "chunkShape": [16, 16, 16]
}
`;
const CANONICAL =
  '{"chunkShape":[16,16,16],"input":{"url":"input.zarr"},' +
  '"model":{"outputChannels":1,"patchShape":[8,8,8],"url":"m.onnx"},"name":"cells",' +
  '"output":{"dtype":"float32","url":"out.zarr"},"overlap":[2,2,2],"version":1}';
const idOf = (canonical: string): string =>
  `cells-${createHash('sha256').update(canonical).digest('hex').slice(0, 8)}`;
const EXPECTED = idOf(CANONICAL);

async function load(text: string) {
  const dir = tmp();
  const path = join(dir, 'manifest.json');
  writeFileSync(path, text);
  return loadManifest(path);
}

describe('job id from the manifest as written', () => {
  it('is <name>-<8 hex of sha256 of the canonical document>', async () => {
    expect((await load(TEXT)).jobId).toBe(EXPECTED);
  });

  it('ignores whitespace, key order, number spelling and a byte-order mark', async () => {
    const reordered =
      '\uFEFF{"chunkShape":[16,16,16.0],"overlap":[2,2,2],"model":{"url":"m.onnx",' +
      '"outputChannels":1.0,"patchShape":[8,8,8]},"output":{"dtype":"float32","url":"out.zarr"},' +
      '"input":{"url":"input.zarr"},"name":"cells","version":1}';
    expect((await load(reordered)).jobId).toBe(EXPECTED);
  });

  it('changes with a changed value', async () => {
    const changed = TEXT.replace('"overlap": [2, 2, 2]', '"overlap": [2, 2, 4]');
    expect((await load(changed)).jobId).toBe(idOf(CANONICAL.replace('[2,2,2]', '[2,2,4]')));
    expect((await load(changed)).jobId).not.toBe(EXPECTED);
  });

  it('does not depend on the defaults the parser fills in', async () => {
    const loaded = await load(TEXT);
    // The parsed manifest carries this release's defaults...
    expect(loaded.manifest.maxAttempts).toBe(3);
    expect(loaded.manifest.blend).toBe('bump');
    // ...which the legacy id hashed: a release changing a default changed it.
    const legacy = legacyJobIdFor(loaded.manifest);
    expect(legacy).not.toBe(EXPECTED);
    expect(legacyJobIdFor({ ...loaded.manifest, maxAttempts: 5 })).not.toBe(legacy);
    // The id is the raw document's alone.
    expect(loaded.jobId).toBe(EXPECTED);
    expect(jobIdForDocument(JSON.parse(TEXT), 'cells')).toBe(EXPECTED);
  });

  it('tells a default written out from one left out (a different text)', async () => {
    const explicit = TEXT.replace('"version": 1,', '"version": 1, "maxAttempts": 3,');
    const a = await load(TEXT);
    const b = await load(explicit);
    expect(b.manifest).toEqual(a.manifest);
    const withDefault =
      '{"chunkShape":[16,16,16],"input":{"url":"input.zarr"},"maxAttempts":3,' +
      '"model":{"outputChannels":1,"patchShape":[8,8,8],"url":"m.onnx"},"name":"cells",' +
      '"output":{"dtype":"float32","url":"out.zarr"},"overlap":[2,2,2],"version":1}';
    expect(b.jobId).toBe(idOf(withDefault));
    expect(b.jobId).not.toBe(a.jobId);
  });
});

describe('resolveJobId', () => {
  const spec = (jobId: string) => ({
    jobId,
    chunkCount: 2,
    maxAttempts: 3,
    leaseMs: 60_000,
    createdAt: 0,
  });
  const chunks = [
    { chunkId: 'c0', index: 0 },
    { chunkId: 'c1', index: 1 },
  ];

  async function stateWith(
    jobId: string | undefined,
  ): Promise<{ dir: string; ledger?: LocalLedger }> {
    const dir = tmp();
    if (jobId === undefined) return { dir };
    const ledger = await LocalLedger.open(join(dir, 'ledger'));
    await ledger.createJob(spec(jobId), chunks);
    return { dir, ledger };
  }

  it('finds the job an earlier release wrote under the legacy id, while a run holds the ledger', async () => {
    const m = await load(TEXT);
    const legacy = legacyJobIdFor(m.manifest);
    const { dir, ledger } = await stateWith(legacy);
    try {
      // The ledger is still open (its lock held): the read takes no lock.
      expect(await resolveJobId(m, dir)).toBe(legacy);
    } finally {
      await ledger?.close();
    }
    expect(await resolveJobId(m, dir)).toBe(legacy);
  });

  it('prefers the new id when the ledger holds it', async () => {
    const m = await load(TEXT);
    const { dir, ledger } = await stateWith(EXPECTED);
    await ledger?.createJob(spec(legacyJobIdFor(m.manifest)), chunks);
    await ledger?.close();
    expect(await resolveJobId(m, dir)).toBe(EXPECTED);
  });

  it('gives the new id for a fresh state directory and for one holding other jobs', async () => {
    const m = await load(TEXT);
    expect(await resolveJobId(m, join(tmp(), 'never-created'))).toBe(EXPECTED);
    const { dir, ledger } = await stateWith('cells-00000000');
    await ledger?.close();
    expect(await resolveJobId(m, dir)).toBe(EXPECTED);
  });
});
