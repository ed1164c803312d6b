// Pipeline steps shared by the CLI, the Lambdas and the containers:
// plan → work → verify → blend seams → finalize.
export * from './blend-seams.ts';
export * from './context.ts';
export * from './convert.ts';
export * from './driver.ts';
export * from './errors.ts';
export * from './fault.ts';
export * from './finalize.ts';
export * from './job-description.ts';
export * from './lease.ts';
export * from './model-source.ts';
export * from './output-check.ts';
export * from './partial-store.ts';
export * from './plan-job.ts';
export * from './preview-tiles.ts';
export * from './repair.ts';
export * from './report.ts';
export * from './seam-handoff.ts';
export * from './steps.ts';
export * from './verify.ts';
export * from './work-cleanup.ts';
export * from './worker.ts';
