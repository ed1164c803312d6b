// Immutable 3-vectors in (z, y, x) order. Plain readonly tuples so they serialise as JSON
// arrays and never alias: every operation returns a new value.

export type Vec3 = readonly [number, number, number];

export const vec3 = (z: number, y: number, x: number): Vec3 => [z, y, x];

const map2 = (a: Vec3, b: Vec3, f: (p: number, q: number) => number): Vec3 => [
  f(a[0], b[0]),
  f(a[1], b[1]),
  f(a[2], b[2]),
];

export const add = (a: Vec3, b: Vec3): Vec3 => map2(a, b, (p, q) => p + q);
export const sub = (a: Vec3, b: Vec3): Vec3 => map2(a, b, (p, q) => p - q);
export const mul = (a: Vec3, b: Vec3): Vec3 => map2(a, b, (p, q) => p * q);
export const min3 = (a: Vec3, b: Vec3): Vec3 => map2(a, b, Math.min);
export const max3 = (a: Vec3, b: Vec3): Vec3 => map2(a, b, Math.max);
export const scale = (a: Vec3, k: number): Vec3 => [a[0] * k, a[1] * k, a[2] * k];
export const product = (a: Vec3): number => a[0] * a[1] * a[2];
export const equals = (a: Vec3, b: Vec3): boolean =>
  a[0] === b[0] && a[1] === b[1] && a[2] === b[2];
export const all = (a: Vec3, pred: (v: number, axis: number) => boolean): boolean =>
  pred(a[0], 0) && pred(a[1], 1) && pred(a[2], 2);
export const fromFn = (f: (axis: 0 | 1 | 2) => number): Vec3 => [f(0), f(1), f(2)];

/** Row-major (x fastest) linear index of `p` inside a grid of `shape`. */
export const linearIndex = (p: Vec3, shape: Vec3): number =>
  (p[0] * shape[1] + p[1]) * shape[2] + p[2];

/** Inverse of `linearIndex`. */
export const fromLinearIndex = (i: number, shape: Vec3): Vec3 => {
  const x = i % shape[2];
  const yz = (i - x) / shape[2];
  const y = yz % shape[1];
  return [(yz - y) / shape[1], y, x];
};

export const format = (a: Vec3): string => `[${a[0]}, ${a[1]}, ${a[2]}]`;
