// Boots the inference thread, which runs TypeScript: registers tsx's CommonJS loader in
// the thread (loader hooks registered on the main thread do not reach worker threads),
// then requires the entry named in workerData. Not tsx's ES-module loader: that one
// starts a hooks thread of its own for this thread, and the model was ready ~0.3 s later.
const { workerData } = require('node:worker_threads');
require('tsx/cjs/api').register();
require(workerData.entry);
