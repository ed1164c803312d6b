// The shape of a job id lives with the contracts (object keys and execution names are
// built from it); the manifest schema refuses names of that shape.
export { JOB_ID_SHAPE } from '../../contracts/job-id.ts';
