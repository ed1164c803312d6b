// Boots a worker thread that runs TypeScript: registers tsx in the thread, then imports
// the entry named in workerData. (Loader hooks registered on the main thread do not
// reach worker threads.)
import { workerData } from 'node:worker_threads';
import { register } from 'tsx/esm/api';

register();
await import(workerData.entry);
