// Stall watchdog Lambda (EventBridge schedule): counts jobs that make no progress,
// publishes the count as STALL_METRIC (the "no progress" alarm watches it) and marks
// `stalled` in their status.json.
import { watchdogDepsFromEnv, watchdogStep } from '../adapters/aws/watchdog.ts';
import { observe } from './observe.ts';

const deps = watchdogDepsFromEnv();

export const handler = observe('Watchdog', () => watchdogStep(deps, { now: new Date() }));
