import { describe, expect, it } from 'vitest';
import {
  batchForMemory,
  engineCacheKey,
  parseGpuQuery,
  parseUtilisation,
  queryGpus,
} from '../../core/model/gpu.ts';

describe('nvidia-smi memory query', () => {
  it('reads total, free (MiB) and a name with commas', () => {
    const gpus = parseGpuQuery('143771, 143100, NVIDIA H200\n81920, 1024, Tesla, odd name\n');
    expect(gpus).toEqual([
      { name: 'NVIDIA H200', totalBytes: 143771 * 1048576, freeBytes: 143100 * 1048576 },
      { name: 'Tesla, odd name', totalBytes: 81920 * 1048576, freeBytes: 1024 * 1048576 },
    ]);
  });
  it('refuses [N/A] instead of reading it as 0', () => {
    expect(() => parseGpuQuery('[N/A], [N/A], NVIDIA A10G')).toThrow(/not "memory.total/);
  });
  it('no nvidia-smi means no GPUs, through the injected runner', () => {
    expect(queryGpus(() => undefined)).toEqual([]);
    const seen: string[][] = [];
    queryGpus((cmd, args) => {
      seen.push([cmd, ...args]);
      return '1000, 500, X';
    });
    expect(seen[0]).toEqual([
      'nvidia-smi',
      '--query-gpu=memory.total,memory.free,name',
      '--format=csv,noheader,nounits',
    ]);
  });
});

describe('batch from memory', () => {
  it('largest power of two under the fraction', () => {
    // 1000 bytes free, half usable = 500; 100 bytes each: 4 fit (8 would be 800).
    expect(batchForMemory(1000, 100)).toBe(4);
    expect(batchForMemory(1000, 100, { fraction: 0.8 })).toBe(8);
    expect(batchForMemory(10, 100)).toBe(1);
    expect(batchForMemory(1e12, 1, { maxBatch: 64 })).toBe(64);
  });
});

describe('engine cache key', () => {
  const base = {
    modelSha256: 'a'.repeat(64),
    patch: [32, 64, 64],
    batch: 4,
    gpuName: 'NVIDIA H200',
  };
  it('differs for patch, batch, GPU and model', () => {
    const k = engineCacheKey(base);
    expect(engineCacheKey({ ...base, patch: [32, 64, 65] })).not.toBe(k);
    expect(engineCacheKey({ ...base, batch: 8 })).not.toBe(k);
    expect(engineCacheKey({ ...base, gpuName: 'NVIDIA A10G' })).not.toBe(k);
    expect(engineCacheKey({ ...base, modelSha256: 'b'.repeat(64) })).not.toBe(k);
    expect(k).toMatch(/^a{12}-p32x64x64-b4-NVIDIA-H200-[0-9a-f]{16}$/);
  });
  it('an unknown GPU is gpu0', () => {
    expect(engineCacheKey({ ...base, gpuName: undefined })).toContain('-gpu0-');
  });
});

describe('utilisation samples', () => {
  it('skips the header and N/A lines', () => {
    const sample = 'utilization.gpu [%]\n0 %\n87 %\n[N/A]\n100 %\n';
    expect(parseUtilisation(sample)).toEqual([0, 87, 100]);
  });
});
