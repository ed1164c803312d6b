// Blending: patch weight maps and the partial sums (Σw·f, Σw) of the invariance formula.
export * from './accumulator.ts';
export * from './partial-codec.ts';
export * from './weights.ts';
