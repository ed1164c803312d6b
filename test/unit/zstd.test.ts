// The copy-free zstd codec must be interchangeable with numcodecs' (what zarrita uses by
// default, and what other Zarr tools write): same frames both ways, and every frame the
// fast path cannot size is still decoded.

import Zstd from 'numcodecs/zstd';
import { describe, expect, it } from 'vitest';
import { FastZstd, frameContentSize, zstdEngines } from '../../core/volume/zstd.ts';

function samples(): [string, Uint8Array][] {
  let s = 12345;
  const noise = new Uint8Array(3 * 2 ** 20 + 17).map(() => {
    s = (s * 1103515245 + 12345) >>> 0;
    return s >>> 24;
  });
  const smooth = new Float32Array(300_000).map((_, i) => Math.sin(i / 40));
  return [
    ['empty', new Uint8Array(0)],
    ['one byte', new Uint8Array([7])],
    ['zeros (4 MiB)', new Uint8Array(4 * 2 ** 20)],
    ['noise (3 MiB)', noise],
    ['smooth float32', new Uint8Array(smooth.buffer)],
    ['a view into a larger buffer', noise.subarray(1001, 1001 + 70_000)],
  ];
}

/** A valid zstd frame that does not state its content size: one raw block. */
function frameWithoutSize(payload: Uint8Array): Uint8Array {
  // Magic; FHD 0: no content size, not single-segment; window descriptor 0x20: 16 KiB.
  const header = [0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x20];
  const blockHeader = (payload.length << 3) | 1; // last block, raw
  const out = new Uint8Array(header.length + 3 + payload.length);
  out.set(header);
  out.set([blockHeader & 0xff, (blockHeader >> 8) & 0xff, (blockHeader >> 16) & 0xff], 6);
  out.set(payload, 9);
  return out;
}

/** Byte equality without vitest's element-by-element diffing of megabyte arrays. */
function same(a: Uint8Array, b: Uint8Array): boolean {
  return (
    Buffer.compare(
      Buffer.from(a.buffer, a.byteOffset, a.length),
      Buffer.from(b.buffer, b.byteOffset, b.length),
    ) === 0
  );
}

// Every engine this machine has (native libzstd where zstd-napi built, WebAssembly always).
describe.each(zstdEngines.map((e) => [e.name, e] as const))('FastZstd (%s)', (_name, engine) => {
  it('writes frames numcodecs reads, and reads frames numcodecs writes, byte for byte', async () => {
    const fast = new FastZstd(3, engine);
    const reference = new Zstd(3);
    for (const [what, data] of samples()) {
      const mine = await fast.encode(data);
      expect(same(await reference.decode(mine), data), what).toBe(true);
      const theirs = await reference.encode(data);
      expect(same(await fast.decode(theirs), data), what).toBe(true);
      expect(frameContentSize(mine), what).toBe(data.length);
      expect(frameContentSize(theirs), what).toBe(data.length);
    }
  });

  it('decodes frames without a stated size, and concatenated frames, through the fallback', async () => {
    const fast = new FastZstd(undefined, engine);
    const payload = new Uint8Array(5000).map((_, i) => i % 251);
    const unsized = frameWithoutSize(payload);
    expect(frameContentSize(unsized)).toBeUndefined();
    expect(await fast.decode(unsized)).toEqual(payload);
    const a = await fast.encode(payload);
    const b = await fast.encode(payload.subarray(0, 100));
    const both = new Uint8Array(a.length + b.length);
    both.set(a);
    both.set(b, a.length);
    const expected = new Uint8Array(5100);
    expected.set(payload);
    expected.set(payload.subarray(0, 100), 5000);
    expect(await fast.decode(both)).toEqual(expected);
  });

  it('rejects bytes that are not zstd, and a truncated frame, instead of returning garbage', async () => {
    const fast = new FastZstd(undefined, engine);
    await expect(fast.decode(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8]))).rejects.toThrow();
    const frame = await fast.encode(new Uint8Array(100_000).map((_, i) => (i * 7) % 256));
    await expect(fast.decode(frame.subarray(0, frame.length - 10))).rejects.toThrow();
  });

  it('decodes small chunks into arrays of their own (zarrita encodes `data.buffer` whole)', async () => {
    const fast = new FastZstd(undefined, engine);
    for (const n of [1, 693, 2772, 4095, 4096, 70_000]) {
      const data = new Uint8Array(n).map((_, i) => (i * 13) % 256);
      const out = await fast.decode(await fast.encode(data));
      expect(same(out, data), `${n} bytes`).toBe(true);
      // Native libzstd hands back Node Buffers: one under 4 KiB is a view of Node's pool.
      expect([out.byteOffset, out.buffer.byteLength], `${n} bytes`).toEqual([0, n]);
    }
  });

  it('clamps levels like numcodecs and refuses a non-integer level', () => {
    expect(new FastZstd(undefined, engine).engineName).toBe(engine.name);
    expect(FastZstd.fromConfig({ level: 0 }).level).toBe(1);
    expect(FastZstd.fromConfig({ level: 99 }).level).toBe(22);
    expect(FastZstd.fromConfig(undefined).level).toBe(1);
    expect(() => new FastZstd(2.5)).toThrow(/integer/);
  });
});

describe('zstd engines', () => {
  it('native and WebAssembly write the same bytes and read each other (when both are built)', async (t) => {
    const native = zstdEngines.find((e) => e.name === 'native');
    const wasm = zstdEngines.find((e) => e.name === 'wasm')!;
    if (!native) {
      t.skip('zstd-napi is not built on this machine (optional dependency); only WebAssembly runs');
      return;
    }
    for (const level of [1, 3]) {
      const a = new FastZstd(level, native);
      const b = new FastZstd(level, wasm);
      for (const [what, data] of samples()) {
        const fromNative = await a.encode(data);
        const fromWasm = await b.encode(data);
        // Identical frames keep a rewritten block byte-identical whichever engine rewrote it.
        expect(same(fromNative, fromWasm), `${what} at level ${level}`).toBe(true);
        expect(same(await b.decode(fromNative), data), what).toBe(true);
        expect(same(await a.decode(fromWasm), data), what).toBe(true);
      }
    }
  });

  it('the default is native where it is built, unless TESSERA_ZSTD says wasm', () => {
    const names = zstdEngines.map((e) => e.name);
    expect(names).toContain('wasm');
    const expected =
      process.env.TESSERA_ZSTD === 'wasm' || !names.includes('native') ? 'wasm' : 'native';
    expect(new FastZstd().engineName).toBe(expected);
  });
});
