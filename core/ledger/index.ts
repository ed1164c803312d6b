// The ledger: port, protocol rules, errors, and the local adapters. The engine they hold
// (engine.ts: transitions; ledger-state.ts: the state) is theirs, not exported here.

export * from './errors.ts';
export { type IpcEndpoint, IpcLedgerClient, serveLedger } from './ipc.ts';
export { LocalLedger, type LocalLedgerOptions } from './local.ts';
export { MemoryLedger } from './memory.ts';
export * from './port.ts';
export {
  holdsLease,
  isClaimable,
  isPoisoned,
  leaseExpired,
  MAX_ERROR_LENGTH,
  type RowState,
} from './protocol.ts';
