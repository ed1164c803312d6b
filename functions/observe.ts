// Powertools logging and metrics around every handler: one structured log line per
// invocation (ids and counts, never voxel data or credentials) and an EMF metric per
// step outcome, so CloudWatch alarms and the dashboard see failures per step.

import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import type { Context } from 'aws-lambda';

const logger = new Logger({ serviceName: 'tessera' });
const metrics = new Metrics({ namespace: 'Tessera', serviceName: 'tessera' });

/** Wraps a step: logs `summary(event)` and the outcome, counts successes and failures. */
export function observe<E, R>(
  step: string,
  fn: (event: E) => Promise<R>,
  summary: (event: E) => Record<string, unknown> = () => ({}),
): (event: E, context?: Context) => Promise<R> {
  return async (event, context) => {
    if (context) logger.addContext(context);
    const t0 = Date.now();
    try {
      const result = await fn(event);
      logger.info(`${step} done`, { step, ...summary(event), ms: Date.now() - t0 });
      metrics.addMetric(`${step}Succeeded`, MetricUnit.Count, 1);
      return result;
    } catch (error) {
      logger.error(`${step} failed`, { step, ...summary(event), error: error as Error });
      metrics.addMetric(`${step}Failed`, MetricUnit.Count, 1);
      throw error;
    } finally {
      metrics.publishStoredMetrics();
    }
  };
}
