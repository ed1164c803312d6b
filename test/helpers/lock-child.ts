// Child process for the lock tests, started with `node --import tsx`:
//   hold-and-exit <dir> <pidfile>  opens a LocalLedger in <dir>, writes its pid to
//                                  <pidfile>, then exits without closing it (started
//                                  under a parent that never reaps it, it stays a zombie)
//   contend                        forked with IPC: on {dir}, tries to open a LocalLedger
//                                  there and answers {won} or {lost: error name}; a winner
//                                  holds it until {release}

import { writeFileSync } from 'node:fs';
import { LocalLedger } from '../../core/ledger/index.ts';

const [mode, dir, pidFile] = process.argv.slice(2);

if (mode === 'hold-and-exit' && dir && pidFile) {
  await LocalLedger.open(dir);
  writeFileSync(pidFile, String(process.pid));
  process.exit(0);
} else if (mode === 'contend' && process.send) {
  let held: LocalLedger | undefined;
  process.on('message', (m: { dir?: string; release?: boolean }) => {
    void (async () => {
      if (m.release) {
        await held?.close();
        held = undefined;
        process.send?.({ released: true });
      } else if (m.dir) {
        try {
          held = await LocalLedger.open(m.dir);
          process.send?.({ won: true });
        } catch (error) {
          process.send?.({ lost: (error as Error).name });
        }
      }
    })();
  });
  process.once('disconnect', () => process.exit(0));
  process.send({ ready: true });
} else {
  throw new Error('usage: lock-child.ts hold-and-exit <dir> <pidfile> | contend');
}
