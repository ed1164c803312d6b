// Moved: the contracts live below everything that uses them (contracts/cloud.ts).
export * from '../contracts/cloud.ts';
