// The ledger in memory: the reference adapter for the contract tests, and the ledger of
// tests and single-process runs: the engine (engine.ts) with nothing persisted, behind
// the port's promises (engine-ledger.ts).

import { LedgerEngine } from './engine.ts';
import { EngineLedger } from './engine-ledger.ts';

export type { OutputClaimChange, RowChange } from './ledger-state.ts';
// Where the DynamoDB adapter imported these from; they are protocol rules (protocol.ts).
export { collectChunkIds, rearmedMessage, rearmedRow } from './protocol.ts';

export class MemoryLedger extends EngineLedger {
  constructor() {
    super(new LedgerEngine());
  }
}
