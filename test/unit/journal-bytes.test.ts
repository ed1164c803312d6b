// The journal's bytes, pinned: a fixed sequence of transitions (every kind the writer
// journals, with fixed clocks) must append exactly the lines the 0.1 writer (commit
// 5ce57b9, before the engine split) appended for it, and compact to exactly its
// compacted journal. A state directory written by either release reads in the other.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { LocalLedger } from '../../core/ledger/index.ts';

const APPENDED = [
  '{"t":"ledger","v":1}',
  '{"t":"out","url":"/o.zarr","j":"j"}',
  '{"t":"job","job":{"jobId":"j","chunkCount":6,"maxAttempts":2,"leaseMs":1000,"createdAt":5,"attributes":{"m":"x"}},"ids":"chunks/189f40034be7a199f1fa9891668ee3ab.ids"}',
  '{"t":"row","j":"j","i":0,"s":"RUNNING","a":1,"k":1,"u":10,"o":"w1","l":1010}',
  '{"t":"row","j":"j","i":0,"s":"RUNNING","a":1,"k":1,"u":20,"o":"w1","l":1020}',
  '{"t":"row","j":"j","i":0,"s":"DONE","a":1,"k":1,"u":1700000000001,"o":"w1"}',
  '{"t":"row","j":"j","i":3,"s":"RUNNING","a":1,"k":1,"u":30,"o":"w1","l":1030}',
  '{"t":"row","j":"j","i":3,"s":"PENDING","a":1,"k":1,"u":1700000000002,"e":"boom"}',
  '{"t":"row","j":"j","i":1,"s":"RUNNING","a":1,"k":1,"u":40,"o":"w2","l":1040}',
  '{"t":"row","j":"j","i":1,"s":"PENDING","a":0,"k":1,"u":1700000000003}',
  '{"t":"row","j":"j","i":1,"s":"RUNNING","a":1,"k":2,"u":50,"o":"w3","l":1050}',
  '{"t":"row","j":"j","i":1,"s":"SKIPPED","a":1,"k":2,"u":1700000000004,"o":"w3"}',
  '{"t":"row","j":"j","i":2,"s":"RUNNING","a":1,"k":1,"u":60,"o":"w4","l":1060}',
  '{"t":"row","j":"j","i":2,"s":"PENDING","a":1,"k":1,"u":70,"e":"owner \\"w4\\" (token 1) was abandoned: its process is gone"}',
  '{"t":"row","j":"j","i":2,"s":"RUNNING","a":2,"k":2,"u":80,"o":"w5","l":1080,"e":"owner \\"w4\\" (token 1) was abandoned: its process is gone"}',
  '{"t":"row","j":"j","i":2,"s":"FAILED","a":2,"k":2,"u":100000,"o":"w5","e":"poison: the workers that claimed this chunk died or hung 2 times (maxAttempts 2, last owner \\"w5\\" whose lease expired at 1080); inspect the chunk\'s input and that worker\'s logs"}',
  '{"t":"row","j":"j","i":0,"s":"PENDING","a":0,"k":1,"u":1700000000005,"e":"re-armed from DONE after 1 attempt(s)"}',
  '{"t":"out","url":"/o.zarr","j":"k"}',
];

const COMPACTED = [
  '{"t":"ledger","v":1}',
  '{"t":"job","job":{"jobId":"j","chunkCount":6,"maxAttempts":2,"leaseMs":1000,"createdAt":5,"attributes":{"m":"x"}},"ids":"chunks/189f40034be7a199f1fa9891668ee3ab.ids"}',
  '{"t":"row","j":"j","i":0,"s":"PENDING","a":0,"k":1,"u":1700000000005,"e":"re-armed from DONE after 1 attempt(s)"}',
  '{"t":"row","j":"j","i":1,"s":"SKIPPED","a":1,"k":2,"u":1700000000004,"o":"w3"}',
  '{"t":"row","j":"j","i":2,"s":"FAILED","a":2,"k":2,"u":100000,"o":"w5","e":"poison: the workers that claimed this chunk died or hung 2 times (maxAttempts 2, last owner \\"w5\\" whose lease expired at 1080); inspect the chunk\'s input and that worker\'s logs"}',
  '{"t":"row","j":"j","i":3,"s":"PENDING","a":1,"k":1,"u":1700000000002,"e":"boom"}',
  '{"t":"out","url":"/o.zarr","j":"k"}',
];

const text = (lines: string[]): string => `${lines.join('\n')}\n`;

describe('the journal as written', () => {
  const dirs: string[] = [];
  afterEach(() => {
    vi.restoreAllMocks();
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('appends and compacts byte for byte what the 0.1 writer did', async () => {
    let t = 1_700_000_000_000;
    vi.spyOn(Date, 'now').mockImplementation(() => ++t);
    const dir = mkdtempSync(join(tmpdir(), 'tessera-bytes-'));
    dirs.push(dir);
    const spec = {
      jobId: 'j',
      chunkCount: 6,
      maxAttempts: 2,
      leaseMs: 1000,
      createdAt: 5,
      attributes: { m: 'x' },
    };
    const chunks = Array.from({ length: 6 }, (_, i) => ({ chunkId: `c${i}`, index: i }));
    const a = await LocalLedger.open(dir);
    await a.claimOutput('/o.zarr', 'j');
    await a.createJob(spec, chunks);
    const c0 = (await a.claim('j', 'w1', { now: 10 }))!;
    await a.heartbeat(c0, { now: 20 });
    await a.complete(c0);
    await a.fail((await a.claim('j', 'w1', { now: 30, startIndex: 3 }))!, 'boom');
    await a.release((await a.claim('j', 'w2', { now: 40 }))!);
    await a.complete((await a.claim('j', 'w3', { now: 50 }))!, { skipped: true });
    await a.claim('j', 'w4', { now: 60 });
    await a.abandonOwners('j', (o) => o === 'w4', { now: 70 });
    await a.claim('j', 'w5', { now: 80 });
    await a.sweep('j', { now: 100_000 });
    await a.rearm('j', { chunkIds: ['c0'] });
    await a.claimOutput('/o.zarr', 'k', { replacing: 'j' });
    await a.close();
    expect(readFileSync(join(dir, 'ledger.jsonl'), 'utf8')).toBe(text(APPENDED));
    expect(readFileSync(join(dir, 'chunks/189f40034be7a199f1fa9891668ee3ab.ids'), 'utf8')).toBe(
      'c0\nc1\nc2\nc3\nc4\nc5\n',
    );

    const b = await LocalLedger.open(dir, { compactMinLines: 1 });
    await b.close();
    expect(readFileSync(join(dir, 'ledger.jsonl'), 'utf8')).toBe(text(COMPACTED));
  });
});
