// The shape of a job id: part of the contracts because object keys (jobs/<jobId>/…) and
// execution names are built from it, and apart from the manifest schema so that code
// which only recognises job ids (object keys, workers) does not load the validator.

/**
 * Job ids are `<name>-<10 hex digits>`; a name of that shape is refused, so a manifest's
 * name (and the status document of a manifest rejected under it) can never be a job id.
 */
export const JOB_ID_SHAPE = /-[0-9a-f]{10}$/;
