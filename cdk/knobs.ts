// The deployment knobs moved to contracts/knobs.ts, so that `tessera plan --cloud` (cli)
// checks a job against the same values the stack deploys; cdk code keeps importing them here.
export * from '../contracts/knobs.ts';
