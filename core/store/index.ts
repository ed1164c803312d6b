// Storage: the key → bytes port, and its local, in-memory and prefixed adapters.
export * from './errors.ts';
export { checkKey } from './keys.ts';
export * from './local.ts';
export * from './memory.ts';
export * from './port.ts';
export * from './prefixed.ts';
export * from './resolve.ts';
