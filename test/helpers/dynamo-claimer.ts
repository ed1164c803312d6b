// A worker process for the DynamoDB ledger's multi-process test, forked with tsx's loader:
// it claims chunks of one job through its own DynamoLedger and client (the environment
// points it at the endpoint, as a Batch child's would), "works" a few ms, completes, and
// prints one JSON line per event on stdout. Pipes are synchronous on Linux, so a line
// is out before the next step starts: a parent that SIGKILLs it right after a `claimed`
// line knows which chunk it held.
//
//   argv[2]: JSON ClaimerArgs

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
  stealFrom?: 'random' | 'lowest';
}

export type ClaimerEvent =
  | { t: 'ready'; owner: string }
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

const args = JSON.parse(process.argv[2] ?? 'null') as ClaimerArgs | null;
if (!args) throw new Error('usage: dynamo-claimer.ts <json ClaimerArgs>');
const emit = (e: ClaimerEvent): void => {
  process.stdout.write(`${JSON.stringify(e)}\n`);
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

const client = makeDynamoClient();
const ledger = new DynamoLedger({
  client,
  table: args.table,
  ...(args.stealFrom === undefined ? {} : { stealFrom: args.stealFrom }),
});
const { owner, jobId } = args;
emit({ t: 'ready', owner });

let idlePolls = 0;
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
client.base.destroy();
