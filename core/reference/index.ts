// The reference implementation of the invariance formula (the tests' oracle). It imports
// no code from the pipeline it checks (core/blend, core/geometry's plan, core/infer).
export * from './sliding-window.ts';
