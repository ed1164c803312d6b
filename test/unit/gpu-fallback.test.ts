// Real inference, no mocks: the installed onnxruntime-node has no CUDA/TensorRT provider
// libraries (they are downloaded only with ONNXRUNTIME_NODE_INSTALL=cuda12), so asking for
// a GPU here exercises the genuine fallback path.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GpuFallbackError } from '../../core/model/gpu.ts';
import { ModelRunner } from '../../core/model/runner.ts';
import { FIXTURE_MODELS } from '../helpers/job-dir.ts';

const TINY = `${FIXTURE_MODELS}tiny.onnx`;
const ortDir = dirname(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'));
const hasCudaLibs = existsSync(
  join(ortDir, 'bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so'),
);

describe.skipIf(hasCudaLibs)('GPU requested on a CPU-only onnxruntime', () => {
  for (const provider of ['cuda', 'tensorrt'] as const) {
    it(`${provider}: falls back loudly, says so, and computes what the CPU computes`, async () => {
      const logs: string[] = [];
      const gpu = await ModelRunner.open(
        { path: TINY },
        { device: 'gpu', gpu: { provider }, intraOpThreads: 1, log: (m) => logs.push(m) },
      );
      const cpu = await ModelRunner.open({ path: TINY }, { intraOpThreads: 1 });
      try {
        expect(gpu.device).toBe('cpu');
        expect(gpu.providers).toEqual(['cpu']);
        expect(gpu.fallback).toMatch(new RegExp(`^${provider}: `));
        expect(logs.join('\n')).toMatch(/running on CPU/);
        expect(cpu.fallback).toBeUndefined();
        const patch = [4, 8, 8] as const;
        const inC = gpu.inputChannels ?? 1;
        const batch = Float32Array.from({ length: inC * 4 * 8 * 8 }, (_, i) => Math.sin(i));
        const a = await gpu.run(batch, 1, patch);
        const b = await cpu.run(batch, 1, patch);
        expect(a.length).toBeGreaterThan(0);
        expect(Array.from(a)).toEqual(Array.from(b));
      } finally {
        await gpu.close();
        await cpu.close();
      }
    });
  }

  it('without allowCpuFallback it throws GpuFallbackError instead', async () => {
    const err = await ModelRunner.open(
      { path: TINY },
      { device: 'gpu', gpu: { provider: 'cuda', allowCpuFallback: false }, intraOpThreads: 1 },
    ).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(GpuFallbackError);
    expect((err as GpuFallbackError).provider).toBe('cuda');
    expect((err as Error).message).toMatch(/allowCpuFallback/);
  });
});
