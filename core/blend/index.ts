// Blending: patch weight maps, the partial sums Σw·f of the invariance formula, and Σw
// from geometry.
export * from './accumulator.ts';
export * from './partial-codec.ts';
export * from './weight-sums.ts';
export * from './weights.ts';
