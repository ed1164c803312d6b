// A worker process for the DynamoDB ledger's multi-process tests, forked with tsx's
// loader. The environment points its client at the endpoint, as a Batch child's would.
// Each `run` message (ClaimerArgs, over IPC) makes it claim chunks of one job through a
// fresh DynamoLedger, "work" a few ms and complete each, printing one JSON line per event
// on stdout, then `finished`; it exits when the parent disconnects. One process serves
// several runs because booting 16 of them (tsx + the SDK) costs seconds of CPU here.
// Pipes are synchronous on Linux, so a line is out before the next step starts.

import { makeDynamoClient } from '../../adapters/aws/dynamo-client.ts';
import { DynamoLedger } from '../../adapters/aws/dynamo-ledger.ts';
import { LeaseLostError } from '../../core/ledger/errors.ts';

export interface ClaimerArgs {
  table: string;
  jobId: string;
  owner: string;
  startIndex: number;
  workMs: number;
  /** How long to wait before asking again while other workers still hold chunks. */
  pollMs: number;
  spread?: 'random' | 'ordered';
  /** Hang right after announcing this many claims: a victim waiting for its SIGKILL. */
  hangAfter?: number;
}

export type ClaimerEvent =
  | { t: 'ready' | 'finished'; owner: string }
  | { t: 'claimed'; owner: string; chunkId: string; index: number; token: number; at: number }
  | {
      t: 'done' | 'lost';
      owner: string;
      chunkId: string;
      index: number;
      token: number;
      start: number;
      end: number;
    }
  | {
      t: 'stats';
      owner: string;
      claims: number;
      conflicts: number;
      pages: number;
      retries: number;
      idlePolls: number;
    };

const emit = (e: ClaimerEvent): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const client = makeDynamoClient();

async function run(args: ClaimerArgs): Promise<void> {
  const { owner, jobId } = args;
  const ledger = new DynamoLedger({
    client,
    table: args.table,
    ...(args.spread === undefined ? {} : { spread: args.spread }),
  });
  let idlePolls = 0;
  let claimed = 0;
  for (;;) {
    const c = await ledger.claim(jobId, owner, { startIndex: args.startIndex });
    if (!c) {
      const n = await ledger.counts(jobId);
      if (n.PENDING === 0 && n.RUNNING === 0) break;
      // Someone holds a chunk; it may die, and its lease then expire.
      idlePolls++;
      await sleep(args.pollMs);
      continue;
    }
    const start = Date.now();
    emit({ t: 'claimed', owner, chunkId: c.chunkId, index: c.index, token: c.token, at: start });
    if (++claimed === args.hangAfter) await new Promise(() => setInterval(() => {}, 60_000));
    await sleep(args.workMs);
    const base = { owner, chunkId: c.chunkId, index: c.index, token: c.token, start };
    try {
      await ledger.complete(c);
      emit({ t: 'done', ...base, end: Date.now() });
    } catch (e) {
      if (!(e instanceof LeaseLostError)) throw e;
      emit({ t: 'lost', ...base, end: Date.now() });
    }
  }
  const { claims, conflicts, pages, retries } = ledger.stats;
  emit({ t: 'stats', owner, claims, conflicts, pages, retries, idlePolls });
  emit({ t: 'finished', owner });
}

if (!process.send) throw new Error('dynamo-claimer.ts must be forked with an IPC channel');
process.on('message', (m) => {
  run(m as ClaimerArgs).catch((e: unknown) => {
    process.stderr.write(
      `claimer failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`,
    );
    process.exit(1);
  });
});
process.once('disconnect', () => {
  client.base.destroy();
  process.exit(0);
});
emit({ t: 'ready', owner: String(process.pid) });
