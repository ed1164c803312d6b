// The journal's two readers, fed the same lines: LocalLedger.open (the writer, which
// replays before it appends) and JournalView.read (`tessera status`, which only reads).
// Whatever one accepts the other accepts with the same state; whatever one calls corrupt
// the other calls corrupt at the same line. Also: a JournalView has no write method.

import { cpSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type ChunkRow,
  type JobSpec,
  LedgerCorruptError,
  LocalLedger,
  OutputClaimedError,
  type StatusCounts,
} from '../../core/ledger/index.ts';
import { JournalView } from '../../core/ledger/journal-view.ts';

const FIXTURE = new URL('../fixtures/ledger-v1/', import.meta.url).pathname;
const JOB = 'fixture-0a1b2c3d';
const IDS = 'chunks/d42cf0bd7c82bb9954be1d4587c347a1.ids';
const OUT = '/data/out.zarr';
const FIXTURE_LINES = readFileSync(join(FIXTURE, 'ledger.jsonl'), 'utf8').split('\n').slice(0, -1);

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A copy of the fixture's state directory with `journal` as its ledger.jsonl. */
function stateDir(journal: string, edit?: (dir: string) => void): string {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-readers-'));
  dirs.push(dir);
  cpSync(FIXTURE, dir, { recursive: true });
  rmSync(join(dir, 'README.md'));
  writeFileSync(join(dir, 'ledger.jsonl'), journal);
  edit?.(dir);
  return dir;
}

const lines = (ls: readonly string[]): string => `${ls.join('\n')}\n`;
const replaced = (n: number, line: string): string =>
  lines(FIXTURE_LINES.map((l, i) => (i === n - 1 ? line : l)));

interface Seen {
  job: JobSpec | undefined;
  counts?: StatusCounts;
  rows?: ChunkRow[];
  outputHolder?: string;
}

type Outcome = { accepted: Seen } | { corrupt: { line: number } } | { other: string };

async function outcome(read: () => Promise<Seen>): Promise<Outcome> {
  try {
    return { accepted: await read() };
  } catch (error) {
    if (error instanceof LedgerCorruptError) return { corrupt: { line: error.line } };
    return { other: error instanceof Error ? `${error.name}: ${error.message}` : String(error) };
  }
}

async function rowsOf(l: { list(j: string): AsyncIterable<ChunkRow> }): Promise<ChunkRow[]> {
  const out: ChunkRow[] = [];
  for await (const r of l.list(JOB)) out.push(r);
  return out;
}

/** What the writer makes of the journal in its own copy of the directory. */
const byWriter = (dir: string): Promise<Outcome> =>
  outcome(async () => {
    const l = await LocalLedger.open(dir, { onWarning: () => undefined });
    try {
      const job = await l.getJob(JOB);
      if (job === undefined) return { job };
      // The port has no read of an output claim: a refused claim names its holder.
      let outputHolder: string | undefined;
      await l.claimOutput(OUT, 'probe-job').catch((error: unknown) => {
        if (!(error instanceof OutputClaimedError)) throw error;
        outputHolder = error.holder;
      });
      return { job, counts: await l.counts(JOB), rows: await rowsOf(l), outputHolder };
    } finally {
      await l.close();
    }
  });

const byReader = (dir: string): Promise<Outcome> =>
  outcome(async () => {
    const v = await JournalView.read(dir);
    const job = await v.getJob(JOB);
    if (job === undefined) return { job };
    return {
      job,
      counts: await v.counts(JOB),
      rows: await rowsOf(v),
      outputHolder: v.outputHolder(OUT),
    };
  });

const FIXTURE_COUNTS = { PENDING: 2, RUNNING: 1, DONE: 1, FAILED: 0, SKIPPED: 1 };

// Each journal, and what both readers must make of it (written out by hand from the
// lines, not from either reader).
type Expected = 'fixture' | 'empty' | { corruptAt: number } | { counts: StatusCounts };

function expectedOutcome(e: Expected): Outcome {
  if (e === 'empty') return { accepted: { job: undefined } };
  if (e !== 'fixture' && 'corruptAt' in e) return { corrupt: { line: e.corruptAt } };
  const counts = e === 'fixture' ? FIXTURE_COUNTS : e.counts;
  return {
    accepted: { job: { jobId: JOB, chunkCount: 5 } as JobSpec, counts, outputHolder: JOB },
  };
}

const CASES: { name: string; journal: string; edit?: (dir: string) => void; expected: Expected }[] =
  [
    { name: 'the v1 fixture as committed', journal: lines(FIXTURE_LINES), expected: 'fixture' },
    {
      name: 'a torn last line (a write in progress)',
      journal: `${lines(FIXTURE_LINES)}{"t":"row","j":"${JOB}","i":3,"s":"RUN`,
      expected: 'fixture',
    },
    {
      name: 'a whole last record without its newline',
      journal: `${lines(FIXTURE_LINES)}{"t":"row","j":"${JOB}","i":3,"s":"DONE","a":1,"k":1,"u":1700000000009,"o":"w3"}`,
      expected: { counts: { ...FIXTURE_COUNTS, PENDING: 1, DONE: 2 } },
    },
    {
      name: 'a record glued behind a torn write (older releases)',
      journal: replaced(5, `{"t":"r${FIXTURE_LINES[4]}`),
      expected: 'fixture',
    },
    {
      name: 'a torn write in the middle with no record behind it',
      journal: replaced(4, `{"t":"row","j":"${JOB}","i":0,"s":"RUNN`),
      expected: { corruptAt: 4 },
    },
    {
      name: 'a row whose owner is not a string',
      journal: replaced(
        11,
        `{"t":"row","j":"${JOB}","i":2,"s":"RUNNING","a":1,"k":1,"u":1700000000005,"o":7,"l":1700000060005}`,
      ),
      expected: { corruptAt: 11 },
    },
    {
      name: 'a row of an unknown status',
      journal: replaced(5, `{"t":"row","j":"${JOB}","i":0,"s":"FINISHED","a":1,"k":1,"u":1}`),
      expected: { corruptAt: 5 },
    },
    {
      name: 'a row before its job line',
      journal: lines([FIXTURE_LINES[0]!, FIXTURE_LINES[3]!, ...FIXTURE_LINES.slice(1)]),
      expected: { corruptAt: 2 },
    },
    {
      name: 'a row past the chunk count',
      journal: lines([
        ...FIXTURE_LINES,
        `{"t":"row","j":"${JOB}","i":5,"s":"PENDING","a":0,"k":0,"u":1}`,
      ]),
      expected: { corruptAt: 12 },
    },
    {
      name: 'a job whose chunk id file is missing',
      journal: lines(FIXTURE_LINES),
      edit: (dir) => unlinkSync(join(dir, IDS)),
      expected: { corruptAt: 2 },
    },
    {
      name: 'a job whose chunk id file is short',
      journal: lines(FIXTURE_LINES),
      edit: (dir) => writeFileSync(join(dir, IDS), '0_0_0\n0_0_1\n0_0_2\n0_0_3\n'),
      expected: { corruptAt: 2 },
    },
    {
      name: 'a header of another version',
      journal: replaced(1, '{"t":"ledger","v":2}'),
      expected: { corruptAt: 1 },
    },
    {
      name: 'a first line glued behind a torn write',
      journal: replaced(1, `{"t":"l${FIXTURE_LINES[0]}`),
      expected: { corruptAt: 1 },
    },
    {
      name: 'an unknown line type',
      journal: lines([...FIXTURE_LINES, '{"t":"note","text":"hello"}']),
      expected: { corruptAt: 12 },
    },
    {
      name: 'an output claim without a url',
      journal: replaced(3, `{"t":"out","url":"","j":"${JOB}"}`),
      expected: { corruptAt: 3 },
    },
    { name: 'an empty journal file', journal: '', expected: 'empty' },
  ];

describe('the writer and the reader read the same journal alike', () => {
  for (const c of CASES) {
    it(c.name, async () => {
      // The writer repairs what it replays (cuts a torn tail, rewrites salvaged lines):
      // each reader gets its own copy, so neither sees the other's repair.
      const reader = await byReader(stateDir(c.journal, c.edit));
      const writer = await byWriter(stateDir(c.journal, c.edit));
      expect(reader).toEqual(writer);
      expect(reader).toMatchObject(expectedOutcome(c.expected));
    });
  }
});

describe('JournalView', () => {
  it('has the reads of the port and no write method at all', async () => {
    const view = await JournalView.read(stateDir(lines(FIXTURE_LINES)));
    expect(view.jobIds()).toEqual([JOB]);
    expect((await view.counts(JOB)).DONE).toBe(1);
    // The type has none (tsc checks these directives: each must be an error)...
    // @ts-expect-error no createJob on a view
    void view.createJob;
    // @ts-expect-error no claim on a view
    void view.claim;
    // @ts-expect-error no complete on a view
    void view.complete;
    // @ts-expect-error no claimOutput on a view
    void view.claimOutput;
    // @ts-expect-error no rearm on a view
    void view.rearm;
    // @ts-expect-error no abandonOwners on a view
    void view.abandonOwners;
    // ...and neither has the object, down its prototype chain.
    const writes = [
      'createJob',
      'claim',
      'heartbeat',
      'complete',
      'release',
      'fail',
      'sweep',
      'claimOutput',
      'rearm',
      'abandonOwners',
    ];
    expect(writes.filter((m) => m in view)).toEqual([]);
  });
});
