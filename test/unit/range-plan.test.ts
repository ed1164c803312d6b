// The RangePlanner contract on the engine-backed ledgers (memory, local journal); the
// DynamoDB one runs it in test/integration/dynamo-plan-scale.test.ts.

import { afterAll, expect } from 'vitest';
import { LocalLedger, MemoryLedger } from '../../core/ledger/index.ts';
import { rangePlanContract } from '../contract/range-plan-contract.ts';
import { tempDir } from '../helpers/job-dir.ts';

const cleanups: (() => void)[] = [];
afterAll(() => {
  for (const c of cleanups) c();
});

rangePlanContract('MemoryLedger', async () => ({ ledger: new MemoryLedger() }));

rangePlanContract('LocalLedger', async () => {
  const t = tempDir('tessera-range-plan-');
  cleanups.push(t.cleanup);
  const ledger = await LocalLedger.open(t.dir, { onWarning: (m) => expect.fail(m) });
  return { ledger, close: () => ledger.close() };
});
