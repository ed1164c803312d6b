// Chunk inference: the compute step shared by every worker.
export * from './chunk.ts';
export * from './errors.ts';
export * from './patch-model.ts';
export * from './tta.ts';
