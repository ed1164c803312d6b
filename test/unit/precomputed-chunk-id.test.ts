// Sharded chunk ids: the compressed Morton code (volume.md) worked by hand, and
// MurmurHash3_x86_128 against the vectors tensorstore's murmurhash3_test.cc lists as
// computed with the pymmh3 library (seed 0, the uint64 key little endian).

import { describe, expect, it } from 'vitest';
import {
  compressedMortonCode,
  hashedChunkId,
  murmurLow64,
} from '../../core/volume/precomputed/chunk-id.ts';

describe('compressed Morton code', () => {
  it('interleaves x, y, z from bit 0 and drops an axis once its bits are spent', () => {
    // grid x 4 (2 bits), y 3 (2 bits), z 2 (1 bit): bits x0 y0 z0 x1 y1.
    // cell (3, 2, 1): x0=1 y0=0 z0=1 x1=1 y1=1 → 0b11101
    expect(compressedMortonCode([3, 2, 1], [4, 3, 2])).toBe(0b11101n);
    expect(compressedMortonCode([0, 0, 0], [4, 3, 2])).toBe(0n);
    // A one-cell axis contributes no bit: grid (1, 8, 1), cell y = 5 → 5.
    expect(compressedMortonCode([0, 5, 0], [1, 8, 1])).toBe(5n);
  });
});

describe('MurmurHash3_x86_128, low 64 bits', () => {
  it.each([
    [0n, 0x4772b084e028ae41n],
    [1n, 0xe8bd67d616d4ce9an],
    [42n, 0xc20b94f95119f47an],
  ])('of %s', (key, low64) => {
    expect(murmurLow64(key)).toBe(low64);
  });

  it('hashes the preshifted id; identity passes it through', () => {
    expect(hashedChunkId(84n, 1, 'murmurhash3_x86_128')).toBe(0xc20b94f95119f47an);
    expect(hashedChunkId(0b1011n, 2, 'identity')).toBe(0b10n);
  });
});

describe('MurmurHash3_x86_128 against the fixture writer', () => {
  it('gives the values generate.py computed for its sharded fixture', async () => {
    const { readFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const doc = JSON.parse(
      readFileSync(join(import.meta.dirname, '../fixtures/precomputed/expected.json'), 'utf8'),
    ) as { _murmurhash3_x86_128: { values: Record<string, string> } };
    for (const [key, low64] of Object.entries(doc._murmurhash3_x86_128.values))
      expect(murmurLow64(BigInt(key))).toBe(BigInt(low64));
  });
});
