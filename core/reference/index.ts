// The reference implementation of the invariance formula (the tests' oracle).
export * from './sliding-window.ts';
