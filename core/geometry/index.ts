// Geometry: immutable vectors and boxes, the patch grid, the chunk plan and its blocks.
export * from './axis.ts';
export * from './box.ts';
export * from './errors.ts';
export * from './ids.ts';
export * from './plan.ts';
export * from './vec3.ts';
