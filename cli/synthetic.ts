// A synthetic EM-like volume with real structure: Voronoi "cells" with bright interiors,
// dark membranes where two cells meet, a few dark "mitochondria" blobs, smooth shading
// and noise. Deterministic for a seed.

import type { Vec3 } from '../core/geometry/index.ts';

export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function syntheticCells(
  shape: Vec3,
  o: { seed?: number; cellSize?: number } = {},
): Uint8Array {
  const [nz, ny, nx] = shape;
  const rand = mulberry32(o.seed ?? 7);
  const cell = o.cellSize ?? 40;
  // Seeds on a jittered grid: each voxel only needs the seeds of nearby grid cells.
  const gz = Math.ceil(nz / cell) + 1;
  const gy = Math.ceil(ny / cell) + 1;
  const gx = Math.ceil(nx / cell) + 1;
  const seeds = new Float64Array(gz * gy * gx * 3);
  for (let i = 0; i < gz * gy * gx; i++) {
    const z = Math.floor(i / (gy * gx));
    const y = Math.floor(i / gx) % gy;
    const x = i % gx;
    seeds[3 * i] = (z + rand()) * cell - cell / 2;
    seeds[3 * i + 1] = (y + rand()) * cell - cell / 2;
    seeds[3 * i + 2] = (x + rand()) * cell - cell / 2;
  }
  const blobs = Array.from({ length: Math.max(3, Math.round((nz * ny * nx) / 300_000)) }, () => ({
    c: [rand() * nz, rand() * ny, rand() * nx],
    r: 3 + rand() * 5,
  }));
  const out = new Uint8Array(nz * ny * nx);
  let i = 0;
  for (let z = 0; z < nz; z++) {
    const cz = Math.floor((z + cell / 2) / cell);
    for (let y = 0; y < ny; y++) {
      const cy = Math.floor((y + cell / 2) / cell);
      for (let x = 0; x < nx; x++, i++) {
        const cx = Math.floor((x + cell / 2) / cell);
        let d1 = Number.POSITIVE_INFINITY;
        let d2 = Number.POSITIVE_INFINITY;
        for (let dz = -1; dz <= 1; dz++)
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              const sz = cz + dz;
              const sy = cy + dy;
              const sx = cx + dx;
              if (sz < 0 || sy < 0 || sx < 0 || sz >= gz || sy >= gy || sx >= gx) continue;
              const s = 3 * ((sz * gy + sy) * gx + sx);
              const d = (z - seeds[s]!) ** 2 + (y - seeds[s + 1]!) ** 2 + (x - seeds[s + 2]!) ** 2;
              if (d < d1) {
                d2 = d1;
                d1 = d;
              } else if (d < d2) d2 = d;
            }
        // Distance to the bisecting plane between the two nearest seeds ~ (d2 - d1) / (2·spacing).
        const gap = (Math.sqrt(d2) - Math.sqrt(d1)) / 2;
        let v = 170 + 40 * Math.sin(z / 23 + y / 31) * Math.cos(x / 29);
        v -= 120 * Math.exp(-(gap * gap) / 2.5);
        for (const b of blobs) {
          const r2 = (z - b.c[0]!) ** 2 + (y - b.c[1]!) ** 2 + (x - b.c[2]!) ** 2;
          if (r2 < b.r * b.r) v -= 70;
        }
        v += (rand() - 0.5) * 30;
        out[i] = Math.max(0, Math.min(255, Math.round(v)));
      }
    }
  }
  return out;
}
