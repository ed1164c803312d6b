// A worker's peak memory from the plan, checked against hand-computed figures, the
// budget (--memory, the cgroup limit, the machine), and the refusal's wording.

import { describe, expect, it } from 'vitest';
import { parseManifest } from '../../core/manifest/index.ts';
import { planFor } from '../../core/pipeline/context.ts';
import {
  checkWorkerMemory,
  GC_SLACK_BYTES,
  machineMemory,
  parseMemorySize,
  RUNTIME_BYTES,
  WorkerMemoryError,
  workerMemory,
} from '../../core/pipeline/memory-estimate.ts';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

// One chunk of 224×512×512 uint8 voxels, stored as one storage chunk; patch 32×64×64, no
// overlap, 2 output channels, float32 output, 128³ blocks, batch 4.
const manifest = parseManifest({
  version: 1,
  name: 'two-gigs',
  input: { url: 'in.zarr' },
  output: { url: 'out.zarr', dtype: 'float32', blockShape: [128, 128, 128] },
  model: { url: 'm.onnx', patchShape: [32, 64, 64], outputChannels: 2 },
  overlap: [0, 0, 0],
  chunkShape: [224, 512, 512],
});
const volume = [224, 512, 512] as const;
const input = { channels: 1, dtype: 'uint8' as const, chunkShape: [224, 512, 512] as const };

describe('workerMemory', () => {
  it('adds up the buffers a worker holds, by hand', () => {
    const m = workerMemory(planFor(manifest, volume), manifest, {
      batchSize: 4,
      modelBytes: 1000,
      input,
    });
    const R = 224 * 512 * 512; // read box = footprint = the volume: 56 Mi voxels
    // 2 normalised float32 copies + twice (this read and the last one's, not collected yet)
    // the padded raw box, zarrita's result and the one stored chunk, decoded and compressed.
    expect(m.parts.input).toBe(2 * 4 * R + 2 * (R + R + 2 * R));
    // 2 accumulators × 2 channels × float32, one patch of weights, the per-axis Σw.
    expect(m.parts.accumulation).toBe(2 * 2 * 4 * R + 32 * 64 * 64 * 4 + (224 + 512 + 512) * 8);
    // A 128³ block × 2 channels: float32 buffer + its encoded bytes, and one float32 partial.
    expect(m.parts.output).toBe(3 * 128 ** 3 * 2 * 4);
    // 2 input batches of 4 patches, 3 output-sized tensors of 4 patches × 2 channels.
    expect(m.parts.batch).toBe(2 * 4 * 32 * 64 * 64 * 4 + 3 * 4 * 2 * 32 * 64 * 64 * 4);
    expect(m.parts.model).toBe(2000);
    expect(m.parts.garbage).toBe(GC_SLACK_BYTES);
    expect(m.parts.runtime).toBe(RUNTIME_BYTES);
    // 896 + 896.5 + 48 + 16 + 64 + 192 MiB = 2112.5 MiB ≈ 2.06 GiB (+ the model's 2000 bytes and Σw's 10 KB).
    expect(m.bytes / MiB).toBeCloseTo(2112.5, 1);
  });

  it('counts the stored chunks a read decodes: one huge storage chunk costs its whole size', () => {
    const small = workerMemory(planFor(manifest, volume), manifest, { batchSize: 4, input });
    const huge = workerMemory(planFor(manifest, volume), manifest, {
      batchSize: 4,
      input: { ...input, chunkShape: [1024, 1024, 1024] },
    });
    // The read box is 224×512×512, and so is the stored chunk clipped to the volume: the
    // difference comes only from stored chunks reaching past the read box.
    expect(huge.parts.input).toBe(small.parts.input);
    const offset = workerMemory(planFor(manifest, [512, 512, 512]), manifest, {
      batchSize: 4,
      input: { ...input, chunkShape: [512, 512, 512] },
    });
    // Now the first chunk's read (224 deep) decodes a 512-deep stored chunk: 288 planes more,
    // decoded and compressed, for this read and the last one's.
    expect(offset.parts.input - small.parts.input).toBe(2 * 2 * 288 * 512 * 512);
  });
});

describe('the budget', () => {
  it('parses --memory sizes in powers of 1024', () => {
    expect(parseMemorySize('8G')).toBe(8 * GiB);
    expect(parseMemorySize('512M')).toBe(512 * MiB);
    expect(parseMemorySize('1.5GiB')).toBe(1.5 * GiB);
    expect(parseMemorySize('2000')).toBe(2000);
    for (const bad of ['', 'lots', '-1G', '0', '8X'])
      expect(() => parseMemorySize(bad), bad).toThrow(/--memory must be a memory size/);
  });

  it("takes the container's cgroup limit when it is below the machine's memory", () => {
    const files = (m: Record<string, string>) => (p: string) => m[p];
    const total = 64 * GiB;
    expect(
      machineMemory({
        totalBytes: total,
        read: files({ '/sys/fs/cgroup/memory.max': `${4 * GiB}\n` }),
      }),
    ).toEqual({ bytes: 4 * GiB, source: "this container's memory limit (cgroup)" });
    expect(
      machineMemory({
        totalBytes: total,
        read: files({ '/sys/fs/cgroup/memory/memory.limit_in_bytes': `${2 * GiB}\n` }),
      }).bytes,
    ).toBe(2 * GiB);
    // No limit: v2 "max", v1 a number near 2^63, or no cgroup files at all.
    const none: Record<string, string>[] = [
      { '/sys/fs/cgroup/memory.max': 'max\n' },
      { '/sys/fs/cgroup/memory/memory.limit_in_bytes': '9223372036854771712\n' },
      {},
    ];
    for (const m of none)
      expect(machineMemory({ totalBytes: total, read: files(m) })).toEqual({
        bytes: total,
        source: "this machine's memory",
      });
  });
});

describe('checkWorkerMemory', () => {
  const m = workerMemory(planFor(manifest, volume), manifest, { batchSize: 4, input });

  it('refuses a 2.1 GiB worker on a 1 GiB budget, naming the figure, the budget and the chunk shape to shrink', () => {
    const err = (() => {
      try {
        checkWorkerMemory(m, manifest, { bytes: GiB, source: '--memory 1G' });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(WorkerMemoryError);
    const e = err as WorkerMemoryError;
    expect(e.message).toContain('a worker needs about 2.1 GiB at peak');
    expect(e.message).toContain('over the 1.0 GiB of --memory 1G');
    // (1024 − 48 − 64 − 192 − 16 MiB) / 1792.5 MiB ≈ 0.393 → each axis × 0.732.
    expect(e.message).toMatch(/shrink chunkShape \[224, 512, 512\] to about \[16\d, 37\d, 37\d\]/);
  });

  it('fits 2.1 GiB in 4 GiB for one worker, not for two', () => {
    expect(() => checkWorkerMemory(m, manifest, { bytes: 4 * GiB, source: 'x' })).not.toThrow();
    expect(() => checkWorkerMemory(m, manifest, { bytes: 4 * GiB, source: 'x' }, 2)).toThrow(
      /2 workers need about 2\.1 GiB each at peak, 4\.1 GiB in all.*run fewer workers \(--workers\)/,
    );
  });
});
