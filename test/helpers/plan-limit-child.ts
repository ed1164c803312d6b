// Opens a job whose input zarr.json claims `argv[2]` (JSON [z, y, x]) voxels, in a process
// of its own so a plan that allocates per claimed voxel row runs out of a small heap
// instead of taking the test runner down. Prints the error's name, or "planned".

import { parseManifest } from '../../core/manifest/index.ts';
import { openJob } from '../../core/pipeline/index.ts';
import { MemoryStore, registerStoreScheme } from '../../core/store/index.ts';
import { writeZarrArray } from '../../core/volume/write-array.ts';

const shape = JSON.parse(process.argv[2] ?? '[1,1,1]') as number[];
const store = new MemoryStore();
await writeZarrArray(store, { data: new Uint8Array(64), shape: [4, 4, 4], chunkShape: [4, 4, 4] });
const meta = JSON.parse(new TextDecoder().decode(await store.get('/zarr.json'))) as {
  shape: number[];
};
meta.shape = shape;
await store.set('/zarr.json', new TextEncoder().encode(JSON.stringify(meta)));
registerStoreScheme('lie', () => store);
const manifest = parseManifest({
  version: 1,
  name: 'liar',
  input: { url: 's3://lab-raw-data/in.zarr' },
  output: { url: 's3://lab-raw-data/out.zarr', dtype: 'float32' },
  model: { url: 's3://lab-raw-data/m.onnx', patchShape: [8, 12, 12], outputChannels: 2 },
  overlap: [2, 4, 4],
  blend: 'bump',
  chunkShape: [16, 24, 24],
});
try {
  await openJob(
    { ...manifest, input: { ...manifest.input, url: 'lie://in.zarr' } },
    {
      jobId: 'liar',
      work: new MemoryStore(),
    },
  );
  process.stdout.write('planned\n');
} catch (e) {
  process.stdout.write(`${(e as Error).name}\n`);
}
