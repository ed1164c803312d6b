// Child process for the ledger tests, forked with `--import tsx`:
//   serve <dir>              serve a LocalLedger in <dir> to the parent over IPC until
//                            the parent disconnects (the IpcLedgerClient contract run)
//   work <dir> <job> <owner> claim and complete chunks of <job> in a LocalLedger of its
//                            own, reporting each completion after complete() returned,
//                            until the parent SIGKILLs it (the crash-durability test)

import { IpcLedgerClient, LocalLedger, serveLedger } from '../../core/ledger/index.ts';

const [mode, dir, jobId, owner] = process.argv.slice(2);
const send = (m: object): void => {
  process.send?.(m);
};

if (!dir || !process.send)
  throw new Error('usage: fork ledger-child.ts serve|work <dir> [job owner]');

if (mode === 'serve') {
  const ledger = await LocalLedger.open(dir);
  const stop = serveLedger(ledger, process);
  process.once('disconnect', () => {
    stop();
    void ledger.close();
  });
  send({ ready: true });
} else if (mode === 'work' && jobId && owner) {
  const ledger = await LocalLedger.open(dir);
  send({ ready: true });
  for (;;) {
    const c = await ledger.claim(jobId, owner);
    if (!c) break;
    await ledger.complete(c);
    send({ done: c.chunkId });
    // Let the IPC channel drain so the parent sees progress while there is work left.
    await new Promise((r) => setImmediate(r));
  }
  send({ finished: true });
} else if (mode === 'client' && jobId) {
  // The pipeline's direction: this child is the client, the parent serves.
  const ledger = new IpcLedgerClient(process);
  const c = await ledger.claim(jobId, owner ?? 'child', { now: 0 });
  send({ claimed: c ?? null });
  ledger.close();
} else {
  throw new Error(`ledger-child: unknown mode ${mode}`);
}
