// The RangePlanner contract on the engine-backed ledgers (memory, local journal); the
// DynamoDB one runs it in test/integration/dynamo-plan-scale.test.ts.

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { LocalLedger, MemoryLedger } from '../../core/ledger/index.ts';
import { rangePlanContract } from '../contract/range-plan-contract.ts';

rangePlanContract('MemoryLedger', async () => ({ ledger: new MemoryLedger() }));

rangePlanContract('LocalLedger', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-range-plan-'));
  const ledger = await LocalLedger.open(dir, { onWarning: (m) => expect.fail(m) });
  return { ledger, close: () => ledger.close() };
});
