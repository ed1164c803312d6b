// Default hourly prices for cost estimates (`tessera plan`, `tessera status`): what one
// worker of the stack's job definitions costs, approximately, in us-east-1. Prices
// move (spot prices hourly) and differ by region: every estimate says which price it
// used, and --price-per-hour replaces it.

import type { CloudPrices } from '../core/pipeline/cloud-figures.ts';

export interface WorkerPrice {
  /** USD per worker-hour. */
  perHour: number;
  /** What the price is of, for the printed estimate. */
  basis: string;
}

/**
 * GPU worker: g4dn.xlarge (1 T4, 4 vCPU, 16 GiB; the stack's smallest GPU type), on-demand
 * list price $0.526/h; spot has been around $0.16–0.25/h (check yours:
 * `aws ec2 describe-spot-price-history --instance-types g4dn.xlarge`).
 * CPU worker: the stack's Fargate job (8 vCPU, 32 GiB): on-demand 8 × $0.04048 + 32 ×
 * $0.004445 ≈ $0.466/h; Fargate Spot is about 70% less, ≈ $0.15/h.
 */
export const DEFAULT_PRICES = {
  gpu: {
    onDemand: { perHour: 0.526, basis: 'g4dn.xlarge on-demand, us-east-1 list price' },
    spot: { perHour: 0.21, basis: 'g4dn.xlarge spot, a typical us-east-1 price' },
  },
  cpu: {
    onDemand: { perHour: 0.466, basis: 'Fargate 8 vCPU + 32 GiB on-demand, us-east-1' },
    spot: { perHour: 0.15, basis: 'Fargate Spot 8 vCPU + 32 GiB, about 70% below on-demand' },
  },
} as const;

/** S3 Standard, us-east-1: PUT/COPY/POST/LIST per 1,000 requests; GET per 1,000. */
export const S3_PUT_PER_1000 = 0.005;
export const S3_GET_PER_1000 = 0.0004;

/** When the list prices below (and the S3 request prices above) were read. */
export const CLOUD_PRICES_AS_OF = 'us-east-1 list prices, January 2025';

/**
 * The serverless side of a cloud job, us-east-1 list prices: S3 Standard storage (the
 * first-50-TB tier; beyond 500 TB it is $0.021), DynamoDB on-demand write request units
 * (since the November 2024 cut), Lambda x86 compute and requests, Step Functions
 * standard state transitions.
 */
export const CLOUD_PRICES: CloudPrices = {
  s3PutPer1000: S3_PUT_PER_1000,
  s3GetPer1000: S3_GET_PER_1000,
  s3GbMonth: 0.023,
  dynamoWritePerMillion: 0.625,
  lambdaGbSecond: 0.0000166667,
  lambdaPerMillionRequests: 0.2,
  sfnPer1000Transitions: 0.025,
  asOf: CLOUD_PRICES_AS_OF,
};

/** The price of one worker-hour for `device`, from --price-per-hour when given. */
export function workerPrice(
  device: 'cpu' | 'gpu',
  spot: boolean,
  override: string | boolean | undefined,
): WorkerPrice {
  if (override !== undefined) {
    const v = Number(override);
    if (typeof override !== 'string' || !Number.isFinite(v) || v < 0)
      throw new Error(
        `--price-per-hour must be a non-negative number of dollars, got "${String(override)}"`,
      );
    return { perHour: v, basis: 'given with --price-per-hour' };
  }
  return DEFAULT_PRICES[device][spot ? 'spot' : 'onDemand'];
}
