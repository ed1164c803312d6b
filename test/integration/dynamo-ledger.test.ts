// The DynamoDB ledger against DynamoDB Local (or the endpoint in AWS_ENDPOINT_URL): the
// shared Ledger contract, then what only this adapter has: bulk and resumable createJob,
// the sparse "open" index, exact counters under concurrency, error paths the emulator
// cannot produce (mocked), and 16 worker processes racing over one table, some of them
// SIGKILLed mid-chunk. One emulator per file; a fresh table per test.

import { type ChildProcess, fork } from 'node:child_process';
import { createRequire } from 'node:module';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import {
  type DynamoDBClient,
  InternalServerError,
  TransactionCanceledException,
} from '@aws-sdk/client-dynamodb';
import {
  BatchWriteCommand,
  DynamoDBDocumentClient,
  GetCommand,
  PutCommand,
  QueryCommand,
  TransactWriteCommand,
  UpdateCommand,
} from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  BatchWriteIncompleteError,
  LedgerContentionError,
  LedgerThrottledError,
} from '../../adapters/aws/dynamo-errors.ts';
import {
  chunkSk,
  DynamoLedger,
  JOB_SK,
  jobPk,
  OPEN_INDEX,
  OPEN_PK,
  OPEN_SK,
  openPk,
  PK,
  SK,
} from '../../adapters/aws/dynamo-ledger.ts';
import {
  type ChunkRow,
  type ChunkStatus,
  type Claim,
  InvalidJobError,
  JobNotFoundError,
  type JobSpec,
  LeaseLostError,
  type StatusCounts,
} from '../../core/ledger/index.ts';
import { ledgerContract } from '../contract/ledger-contract.ts';
import type { ClaimerArgs, ClaimerEvent } from '../helpers/dynamo-claimer.ts';
import { type DynamoUnderTest, startDynamo } from '../helpers/dynamo-emulator.ts';

const T0 = 1_700_000_000_000;
const CLAIMER = fileURLToPath(new URL('../helpers/dynamo-claimer.ts', import.meta.url));
const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;

let ddb: DynamoUnderTest;
beforeAll(async () => {
  ddb = await startDynamo();
});
afterAll(async () => {
  await ddb?.stop();
});

const spec = (jobId: string, chunkCount: number, over: Partial<JobSpec> = {}): JobSpec => ({
  jobId,
  chunkCount,
  maxAttempts: 3,
  leaseMs: 10_000,
  createdAt: T0,
  ...over,
});

function* chunksOf(n: number, prefix = 'c'): Generator<{ chunkId: string; index: number }> {
  for (let i = 0; i < n; i++) yield { chunkId: `${prefix}${i}`, index: i };
}

async function rows(
  ledger: DynamoLedger,
  jobId: string,
  status?: ChunkStatus,
): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const r of ledger.list(jobId, status)) out.push(r);
  return out;
}

const tally = (rs: ChunkRow[]): StatusCounts => {
  const c: StatusCounts = { PENDING: 0, RUNNING: 0, DONE: 0, FAILED: 0, SKIPPED: 0 };
  for (const r of rs) c[r.status]++;
  return c;
};

/** A client for this test alone, whose every command passes through `hook` first. */
function instrumented(
  hook: (command: string, input: Record<string, unknown>) => void,
): DynamoDBClient {
  const client = ddb.newClient();
  client.middlewareStack.add(
    (next, context) => async (args) => {
      hook(context.commandName ?? '?', args.input as Record<string, unknown>);
      return next(args);
    },
    { step: 'initialize', name: 'tesseraTestHook' },
  );
  return client;
}

const batchSize = (input: Record<string, unknown>): number =>
  Object.values((input.RequestItems ?? {}) as Record<string, unknown[]>).reduce(
    (n, reqs) => n + reqs.length,
    0,
  );

ledgerContract('DynamoLedger', async () => {
  const table = await ddb.createTable();
  return { ledger: new DynamoLedger({ client: ddb.client, table }) };
});

describe('DynamoLedger on DynamoDB', () => {
  it('createJob writes 10^4 chunk rows in batches; a second createJob only reads the job row', async () => {
    const table = await ddb.createTable();
    const sent = new Map<string, number>();
    const client = instrumented((cmd) => sent.set(cmd, (sent.get(cmd) ?? 0) + 1));
    const ledger = new DynamoLedger({ client, table });
    const n = 10_000;
    const t = performance.now();
    expect((await ledger.createJob(spec('big', n), chunksOf(n))).created).toBe(true);
    const ms = performance.now() - t;
    expect(sent.get('BatchWriteItemCommand')).toBe(n / 25);
    expect(await ledger.counts('big')).toEqual({
      PENDING: n,
      RUNNING: 0,
      DONE: 0,
      FAILED: 0,
      SKIPPED: 0,
    });
    const all = await rows(ledger, 'big');
    expect(all).toHaveLength(n);
    expect(
      all.every((r, i) => r.index === i && r.chunkId === `c${i}` && r.status === 'PENDING'),
    ).toBe(true);

    sent.clear();
    const again = await new DynamoLedger({ client, table }).createJob(
      spec('big', n, { maxAttempts: 9 }),
      chunksOf(n),
    );
    expect(again).toEqual({ created: false, job: spec('big', n) });
    expect(Object.fromEntries(sent)).toEqual({ GetItemCommand: 1 });
    console.log(`createJob of ${n} chunks: ${Math.round(ms)} ms`);
    client.destroy();
  });

  it('createJob resumes a creation that crashed half-way, writing only the missing rows', async () => {
    const table = await ddb.createTable();
    const n = 300;
    let batches = 0;
    const crashing = instrumented((cmd) => {
      if (cmd === 'BatchWriteItemCommand' && ++batches > 4) throw new Error('planner crashed');
    });
    await expect(
      new DynamoLedger({ client: crashing, table }).createJob(spec('j', n), chunksOf(n)),
    ).rejects.toThrow('planner crashed');
    crashing.destroy();

    // Half a job is no job: readers do not see it, workers cannot claim from it.
    const ledger = new DynamoLedger({ client: ddb.client, table });
    expect(await ledger.getJob('j')).toBeUndefined();
    await expect(ledger.claim('j', 'w')).rejects.toBeInstanceOf(JobNotFoundError);
    const doc = DynamoDBDocumentClient.from(ddb.client);
    const before = await doc.send(
      new QueryCommand({
        TableName: table,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :c)',
        ExpressionAttributeNames: { '#pk': PK, '#sk': SK },
        ExpressionAttributeValues: { ':pk': jobPk('j'), ':c': 'C#' },
        Select: 'COUNT',
        ConsistentRead: true,
      }),
    );
    expect(before.Count).toBe(100);

    // Another plan cannot finish this job.
    await expect(ledger.createJob(spec('j', n), chunksOf(n, 'other'))).rejects.toBeInstanceOf(
      InvalidJobError,
    );

    let written = 0;
    const counting = instrumented((cmd, input) => {
      if (cmd === 'BatchWriteItemCommand') written += batchSize(input);
    });
    const resumed = await new DynamoLedger({ client: counting, table }).createJob(
      spec('j', n),
      chunksOf(n),
    );
    expect(resumed).toEqual({ created: true, job: spec('j', n) });
    expect(written).toBe(n - 100);
    counting.destroy();
    const all = await rows(ledger, 'j');
    expect(all.map((r) => r.chunkId)).toEqual([...chunksOf(n)].map((c) => c.chunkId));
    expect(await ledger.counts('j')).toMatchObject({ PENDING: n });
    expect(await ledger.createJob(spec('j', n), chunksOf(n))).toEqual({
      created: false,
      job: spec('j', n),
    });
    expect((await ledger.claim('j', 'w', { startIndex: 7 }))?.index).toBe(7);
  });

  it('the open index holds only unfinished rows: finishing a row removes it', async () => {
    const table = await ddb.createTable();
    const ledger = new DynamoLedger({ client: ddb.client, table });
    await ledger.createJob(spec('j', 6, { maxAttempts: 1 }), chunksOf(6));
    const claims: Claim[] = [];
    for (let i = 0; i < 4; i++)
      claims.push((await ledger.claim('j', 'w', { startIndex: i, now: T0 }))!);
    const [c0, c1, c2, c3] = claims;
    await ledger.complete(c0!);
    await ledger.complete(c1!, { skipped: true });
    await ledger.fail(c2!, 'bad input'); // maxAttempts 1: FAILED
    void c3; // stays RUNNING

    const doc = DynamoDBDocumentClient.from(ddb.client);
    const inIndex: string[] = [];
    for (let shard = 0; shard < 6; shard++) {
      const out = await doc.send(
        new QueryCommand({
          TableName: table,
          IndexName: OPEN_INDEX,
          KeyConditionExpression: '#g = :g',
          ExpressionAttributeNames: { '#g': OPEN_PK },
          ExpressionAttributeValues: { ':g': openPk('j', shard) },
        }),
      );
      for (const item of out.Items ?? [])
        inIndex.push(`${item[SK]} ${String(item[OPEN_SK]).slice(0, 2)}`);
    }
    // The RUNNING row sits in the lease stretch, the PENDING ones in the index stretch.
    expect(inIndex.sort()).toEqual([`${chunkSk(3)} R#`, `${chunkSk(4)} P#`, `${chunkSk(5)} P#`]);
    expect((await rows(ledger, 'j')).map((r) => r.status)).toEqual([
      'DONE',
      'SKIPPED',
      'FAILED',
      'RUNNING',
      'PENDING',
      'PENDING',
    ]);
  });

  it('counts stay exact while 8 claimers race over 200 chunks completing, failing and releasing', async () => {
    const table = await ddb.createTable();
    const n = 200;
    await new DynamoLedger({ client: ddb.client, table }).createJob(
      spec('race', n, { maxAttempts: 3 }),
      chunksOf(n),
    );
    const outcomes = { done: 0, failed: 0, released: 0, poisoned: 0 };
    const ledgers = Array.from(
      { length: 8 },
      () => new DynamoLedger({ client: ddb.client, table }),
    );
    const claimer = async (l: DynamoLedger, k: number): Promise<void> => {
      for (let rounds = 0; rounds < 2000; rounds++) {
        const c = await l.claim('race', `w${k}`, { startIndex: k * 25 });
        if (!c) return;
        const roll = Math.random();
        if (roll < 0.6) {
          await l.complete(c);
          outcomes.done++;
        } else if (roll < 0.8) {
          const r = await l.fail(c, `boom ${k}`);
          if (r.status === 'FAILED') outcomes.poisoned++;
          else outcomes.failed++;
        } else {
          await l.release(c);
          outcomes.released++;
        }
      }
      throw new Error('claimer did not run out of work');
    };
    await Promise.all(ledgers.map(claimer));
    const all = await rows(ledgers[0]!, 'race');
    const counts = await ledgers[0]!.counts('race');
    expect(counts).toEqual(tally(all));
    expect(counts).toEqual({
      PENDING: 0,
      RUNNING: 0,
      DONE: outcomes.done,
      FAILED: outcomes.poisoned,
      SKIPPED: 0,
    });
    expect(outcomes.done + outcomes.poisoned).toBe(n);
    const retries = ledgers.reduce((s, l) => s + l.stats.retries, 0);
    const conflicts = ledgers.reduce((s, l) => s + l.stats.conflicts, 0);
    console.log(
      `8 in-process claimers: ${JSON.stringify(outcomes)}, claim conflicts ${conflicts}, transaction retries ${retries}`,
    );
  });
});

// ---- error paths DynamoDB Local cannot produce (mocked) -----------------------------------

describe('DynamoLedger error paths (aws-sdk-client-mock)', () => {
  const jobItem = (jobId: string, chunkCount: number) => ({
    [PK]: jobPk(jobId),
    [SK]: JOB_SK,
    ...spec(jobId, chunkCount),
    shards: 4,
    planComplete: true,
  });
  const claim: Claim = {
    jobId: 'j',
    chunkId: 'c1',
    index: 1,
    owner: 'w',
    token: 1,
    attempt: 1,
    leaseExpiresAt: T0,
  };
  const mocked = () => {
    const doc = DynamoDBDocumentClient.from(ddb.newClient());
    const mock = mockClient(doc);
    const ledger = new DynamoLedger({
      client: doc,
      table: 't',
      retry: { attempts: 4, baseMs: 1, capMs: 4 },
    });
    return { mock, ledger };
  };

  it('retries BatchWriteItem UnprocessedItems (throttled writes) until every row is in', async () => {
    const { mock, ledger } = mocked();
    const written = new Set<string>();
    let call = 0;
    mock.on(GetCommand).resolves({});
    mock.on(PutCommand).resolves({});
    mock.on(UpdateCommand).resolves({});
    mock
      .on(BatchWriteCommand)
      .callsFake(
        (input: {
          RequestItems: Record<string, { PutRequest: { Item: Record<string, string> } }[]>;
        }) => {
          const reqs = input.RequestItems.t ?? [];
          // The first two calls are throttled for every other item, as DynamoDB does under load.
          const throttled = call++ < 2 ? reqs.filter((_, i) => i % 2 === 1) : [];
          for (const r of reqs) if (!throttled.includes(r)) written.add(r.PutRequest.Item[SK]!);
          return throttled.length > 0 ? { UnprocessedItems: { t: throttled } } : {};
        },
      );
    expect((await ledger.createJob(spec('j', 30), chunksOf(30))).created).toBe(true);
    expect(written.size).toBe(30);
    expect(ledger.stats.batchRetries).toBeGreaterThan(0);
  });

  it('gives up with BatchWriteIncompleteError when items stay unprocessed', async () => {
    const { mock, ledger } = mocked();
    mock.on(GetCommand).resolves({});
    mock.on(PutCommand).resolves({});
    mock.on(BatchWriteCommand).callsFake((input: { RequestItems: Record<string, unknown[]> }) => ({
      UnprocessedItems: { t: input.RequestItems.t },
    }));
    const err = await ledger.createJob(spec('j', 10), chunksOf(10)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(BatchWriteIncompleteError);
    expect(err).toMatchObject({
      name: 'BatchWriteIncompleteError',
      jobId: 'j',
      unprocessed: 10,
      attempts: 4,
    });
    expect((err as Error).message).toMatch(/call createJob again/);
    expect(mock.commandCalls(UpdateCommand)).toHaveLength(0); // planComplete never set
  });

  it('retries a transaction cancelled by TransactionConflict, then throttling becomes LedgerThrottledError', async () => {
    const { mock, ledger } = mocked();
    mock.on(GetCommand).resolves({ Item: jobItem('j', 4) });
    const cancelled = (Code: string) =>
      new TransactionCanceledException({
        message: 'Transaction cancelled',
        $metadata: {},
        CancellationReasons: [{ Code: 'None' }, { Code }],
      });
    mock
      .on(TransactWriteCommand)
      .rejectsOnce(cancelled('TransactionConflict'))
      .rejectsOnce(cancelled('TransactionConflict'))
      .resolvesOnce({})
      .rejects(cancelled('ThrottlingError'));
    await ledger.complete(claim);
    expect(mock.commandCalls(TransactWriteCommand)).toHaveLength(3);
    expect(ledger.stats.retries).toBe(2);
    const err = await ledger.complete(claim).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(LedgerThrottledError);
    expect((err as Error).cause).toBeInstanceOf(TransactionCanceledException);

    mock.on(TransactWriteCommand).rejects(cancelled('TransactionConflict'));
    await expect(ledger.release(claim)).rejects.toBeInstanceOf(LedgerContentionError);
  });

  it('rethrows an unexpected error (InternalServerError) as is, never as a lease loss', async () => {
    const { mock, ledger } = mocked();
    mock.on(GetCommand).resolves({ Item: jobItem('j', 4) });
    const boom = new InternalServerError({ message: 'internal', $metadata: {} });
    mock.on(TransactWriteCommand).rejects(boom);
    mock.on(UpdateCommand).rejects(boom);
    for (const call of [
      () => ledger.complete(claim),
      () => ledger.fail(claim, 'x'),
      () => ledger.release(claim),
      () => ledger.heartbeat(claim),
    ]) {
      const err = await call().catch((e: unknown) => e);
      expect(err).toBe(boom);
      expect(err).not.toBeInstanceOf(LeaseLostError);
    }
  });
});

// ---- many worker processes ----------------------------------------------------------------

interface FleetRun {
  events: ClaimerEvent[];
  killedAt: Map<string, number>;
  ms: number;
}

interface Kid {
  owner: string;
  child: ChildProcess;
  onEvent?: (e: ClaimerEvent) => void;
  onExit?: (code: number | null, signal: NodeJS.Signals | null) => void;
}

/**
 * Claimer processes, forked once and reused by every run (booting one costs ~0.7 s of
 * CPU); a run re-forks those a previous run killed.
 */
class Fleet {
  private readonly kids = new Map<number, Kid>();

  private async ensure(workers: number): Promise<void> {
    const starting: Promise<void>[] = [];
    for (let k = 0; k < workers; k++) {
      if (this.kids.has(k)) continue;
      const child = fork(CLAIMER, [], {
        execArgv: ['--import', TSX, '--no-warnings'],
        env: { ...process.env, ...ddb.childEnv },
        stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
      });
      const kid: Kid = { owner: `p${k}`, child };
      this.kids.set(k, kid);
      createInterface({ input: child.stdout! }).on('line', (line) => {
        kid.onEvent?.(JSON.parse(line) as ClaimerEvent);
      });
      child.once('exit', (code, signal) => {
        this.kids.delete(k);
        kid.onExit?.(code, signal);
      });
      starting.push(
        new Promise((resolve, reject) => {
          kid.onEvent = (e) => e.t === 'ready' && resolve();
          kid.onExit = (code, signal) =>
            reject(new Error(`claimer ${kid.owner} exited during startup (${signal ?? code})`));
        }),
      );
    }
    await Promise.all(starting);
  }

  /**
   * Every claimer works the job until it runs out; `victims` hang after their
   * `killAfter`-th claim and are SIGKILLed there: mid-chunk, lease held.
   */
  async run(
    table: string,
    jobId: string,
    o: { workers: number; workMs: number; victims?: Set<string>; killAfter?: number },
  ): Promise<FleetRun> {
    await this.ensure(o.workers);
    const events: ClaimerEvent[] = [];
    const killedAt = new Map<string, number>();
    const killAfter = o.killAfter ?? 1;
    const t = performance.now();
    const runs = Array.from({ length: o.workers }, (_, k) => {
      const kid = this.kids.get(k)!;
      const victim = o.victims?.has(kid.owner) === true;
      const args: ClaimerArgs = {
        table,
        jobId,
        owner: kid.owner,
        startIndex: k,
        workMs: o.workMs,
        pollMs: 500,
        ...(victim ? { hangAfter: killAfter } : {}),
      };
      return new Promise<void>((resolve, reject) => {
        let claimed = 0;
        kid.onEvent = (e) => {
          events.push(e);
          if (e.t === 'claimed' && victim && ++claimed === killAfter) {
            killedAt.set(kid.owner, Date.now());
            kid.child.kill('SIGKILL');
          }
          if (e.t === 'finished') resolve();
        };
        kid.onExit = (code, signal) => {
          if (signal === 'SIGKILL' && killedAt.has(kid.owner)) resolve();
          else reject(new Error(`claimer ${kid.owner} exited with ${signal ?? code}`));
        };
        kid.child.send(args);
      });
    });
    await Promise.all(runs);
    return { events, killedAt, ms: performance.now() - t };
  }

  async stop(): Promise<void> {
    const exits = [...this.kids.values()].map(
      (kid) =>
        new Promise<void>((resolve) => {
          kid.onExit = () => resolve();
          kid.child.disconnect();
        }),
    );
    await Promise.all(exits);
  }
}

/**
 * Each chunk DONE once, by the tenure the row names; no two tenures of one chunk overlap
 * in time (a killed worker's tenure ends when it was killed).
 */
function checkExactlyOnce(fleet: FleetRun, final: ChunkRow[]): void {
  const done = fleet.events.filter(
    (e): e is Extract<ClaimerEvent, { t: 'done' | 'lost' }> => e.t === 'done',
  );
  const byChunk = new Map(final.map((r) => [r.chunkId, r]));
  expect(new Set(done.map((e) => e.chunkId)).size).toBe(done.length);
  expect(done).toHaveLength(final.length);
  for (const e of done) {
    const r = byChunk.get(e.chunkId)!;
    expect(r.status).toBe('DONE');
    expect([e.owner, e.token]).toEqual([r.owner, r.token]);
  }
  const ends = new Map<string, number>();
  for (const e of fleet.events) {
    if (e.t === 'done' || e.t === 'lost') ends.set(`${e.chunkId}/${e.token}`, e.end);
  }
  const tenures = new Map<string, { start: number; end: number }[]>();
  for (const e of fleet.events) {
    if (e.t !== 'claimed') continue;
    const end = ends.get(`${e.chunkId}/${e.token}`) ?? fleet.killedAt.get(e.owner);
    expect(end, `tenure ${e.chunkId}/${e.token} of ${e.owner} never ended`).toBeDefined();
    const list = tenures.get(e.chunkId) ?? [];
    list.push({ start: e.at, end: end! });
    tenures.set(e.chunkId, list);
  }
  for (const [chunkId, list] of tenures) {
    list.sort((a, b) => a.start - b.start);
    for (let i = 1; i < list.length; i++) {
      expect(list[i]!.start, `${chunkId}: tenures overlap`).toBeGreaterThanOrEqual(
        list[i - 1]!.end,
      );
    }
  }
  expect(fleet.events.filter((e) => e.t === 'lost')).toEqual([]);
}

const fleetStats = (fleet: FleetRun) => {
  const s = { claims: 0, conflicts: 0, pages: 0, retries: 0, idlePolls: 0 };
  for (const e of fleet.events) {
    if (e.t !== 'stats') continue;
    s.claims += e.claims;
    s.conflicts += e.conflicts;
    s.pages += e.pages;
    s.retries += e.retries;
    s.idlePolls += e.idlePolls;
  }
  return s;
};

// Booting 16 processes is CPU-bound: on a loaded 2-core machine it alone can take 20 s.
describe('16 worker processes on one table', { timeout: 120_000 }, () => {
  const claimers = new Fleet();
  afterAll(() => claimers.stop());

  it('claim and complete 500 chunks, each exactly once', async () => {
    const table = await ddb.createTable();
    const ledger = new DynamoLedger({ client: ddb.client, table });
    await ledger.createJob(spec('fleet', 500, { leaseMs: 30_000 }), chunksOf(500));
    const fleet = await claimers.run(table, 'fleet', { workers: 16, workMs: 3 });
    const final = await rows(ledger, 'fleet');
    checkExactlyOnce(fleet, final);
    expect(final.every((r) => r.token === 1)).toBe(true);
    expect(await ledger.counts('fleet')).toEqual({
      PENDING: 0,
      RUNNING: 0,
      DONE: 500,
      FAILED: 0,
      SKIPPED: 0,
    });
    console.log(
      `16 processes × 500 chunks: ${Math.round(fleet.ms)} ms, ${JSON.stringify(fleetStats(fleet))}`,
    );
  });

  it('re-claims the chunks of SIGKILLed workers after their leases expire, and completes', async () => {
    const table = await ddb.createTable();
    const ledger = new DynamoLedger({ client: ddb.client, table });
    const n = 200;
    await ledger.createJob(spec('crash', n, { leaseMs: 1500 }), chunksOf(n));
    const victims = new Set(['p1', 'p6', 'p11', 'p12']);
    const fleet = await claimers.run(table, 'crash', {
      workers: 16,
      workMs: 5,
      victims,
      killAfter: 3,
    });
    expect([...fleet.killedAt.keys()].sort()).toEqual([...victims].sort());
    const final = await rows(ledger, 'crash');
    checkExactlyOnce(fleet, final);
    // What the victims held when they died went to someone else, on a second attempt.
    const held = fleet.events.filter(
      (e): e is Extract<ClaimerEvent, { t: 'claimed' }> =>
        e.t === 'claimed' &&
        victims.has(e.owner) &&
        !fleet.events.some((d) => d.t === 'done' && d.chunkId === e.chunkId && d.owner === e.owner),
    );
    expect(held).toHaveLength(victims.size);
    for (const e of held) {
      const r = final.find((x) => x.chunkId === e.chunkId)!;
      expect(r).toMatchObject({ status: 'DONE', token: e.token + 1, attempts: 2 });
      expect(victims.has(r.owner!)).toBe(false);
    }
    expect(await ledger.counts('crash')).toEqual({
      PENDING: 0,
      RUNNING: 0,
      DONE: n,
      FAILED: 0,
      SKIPPED: 0,
    });
    console.log(
      `16 processes, 4 killed, ${n} chunks: ${Math.round(fleet.ms)} ms, ${JSON.stringify(fleetStats(fleet))}`,
    );
  });
});
