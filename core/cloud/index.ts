// The cloud driver: the state machine's tasks over ports (core/cloud/deps.ts). Each Lambda
// handler in functions/ is one call into this module with deps from adapters/aws/deps.ts.

export * from './deps.ts';
export * from './errors.ts';
export * from './manifest-intake.ts';
export * from './mark-failed.ts';
export * from './plan-ranges.ts';
export * from './plan-step.ts';
export * from './pyramid-step.ts';
export * from './status.ts';
export * from './steps.ts';
export * from './work-failures.ts';
