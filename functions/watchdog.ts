// Stall watchdog Lambda (EventBridge schedule): counts jobs that make no progress and
// publishes the count as STALL_METRIC, which the "no progress" alarm watches.
import { watchdogStep } from '../adapters/aws/watchdog.ts';
import { observe } from './observe.ts';

export const handler = observe('Watchdog', () => watchdogStep(undefined, { now: new Date() }));
