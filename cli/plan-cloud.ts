// `tessera plan <manifest> --cloud`: the figures of the job on the deployed stack, before
// any money is spent (core/pipeline/cloud-figures.ts computes them; this prints them).
// The stack is the default knobs (contracts/knobs.ts) unless --knob name=value says
// otherwise, as `cdk deploy -c tessera:<name>=<value>` would.

import { DYNAMO_LEDGER_WRITES } from '../adapters/aws/dynamo/write-units.ts';
import { DEFAULT_KNOBS, type Knobs, parseKnobs } from '../contracts/knobs.ts';
import { type CloudFigures, cloudFigures, type Limit } from '../core/pipeline/cloud-figures.ts';
import { cloudLayoutFor } from '../core/pipeline/cloud-layout.ts';
import type { JobContext } from '../core/pipeline/index.ts';
import { defaultHeartbeatMs } from '../core/pipeline/lease.ts';
import { formatBytes } from '../core/pipeline/memory-estimate.ts';
import { DEFAULT_LEASE_MS } from '../core/pipeline/plan-job.ts';
import { arrayConstructor } from '../core/volume/dtype.ts';
import type { CostEstimate } from './plan-cost.ts';
import { CLOUD_PRICES } from './prices.ts';

/** The stack's knobs: the defaults with each `name=value` of --knob applied (checked as cdk does). */
export function knobsFrom(pairs: readonly string[]): Knobs {
  const given = new Map<string, string>();
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    const name = at < 0 ? '' : pair.slice(0, at);
    if (
      !Object.hasOwn(DEFAULT_KNOBS, name) &&
      name !== 'alarmEmail' &&
      name !== 'vpcId' &&
      name !== 'jobTimeoutHours'
    )
      throw new Error(
        `--knob ${pair}: expected name=value with a stack knob name (${Object.keys(DEFAULT_KNOBS).join(', ')}, jobTimeoutHours)`,
      );
    given.set(name, pair.slice(at + 1));
  }
  return parseKnobs((name) => given.get(name));
}

/** The cloud figures of an opened job on a stack with `knobs`, with compute from `cost`. */
export function planCloud(ctx: JobContext, knobs: Knobs, cost?: CostEstimate): CloudFigures {
  const m = ctx.manifest;
  return cloudFigures({
    plan: ctx.plan,
    device: m.compute.device,
    maxWorkers: m.compute.maxWorkers,
    pyramid: m.output.pyramid ?? 0,
    inputChunkShape: ctx.input.chunkShape,
    channels: m.model.outputChannels,
    outputBytesPerValue: new (arrayConstructor(m.output.dtype))(0).BYTES_PER_ELEMENT,
    heartbeatMs: defaultHeartbeatMs(DEFAULT_LEASE_MS),
    knobs,
    ledger: DYNAMO_LEDGER_WRITES,
    layout: cloudLayoutFor(m.output, ctx.plan),
    prices: CLOUD_PRICES,
    ...(cost
      ? {
          compute: {
            workerHours: cost.workerHours,
            pricePerHour: cost.pricePerHour,
            priceBasis: cost.priceBasis,
          },
        }
      : {}),
  });
}

const n = (x: number): string =>
  x >= 1e9
    ? x.toExponential(2)
    : x > 0 && x < 10
      ? String(Number(x.toPrecision(2)))
      : x.toLocaleString('en-US', { maximumFractionDigits: 1 });
const usd = (x: number): string =>
  `$${x < 0.01 ? x.toFixed(4) : x < 1 ? x.toFixed(2) : n(Number(x.toFixed(2)))}`;
const seconds = (s: number): string =>
  s < 90
    ? `${s.toFixed(1)} s`
    : s < 5400
      ? `${(s / 60).toFixed(1)} min`
      : `${(s / 3600).toFixed(1)} h`;

export function cloudLines(f: CloudFigures): string[] {
  const l = f.ledger;
  const heartbeats =
    l.heartbeatsPerChunk === undefined
      ? ' (heartbeats not counted: add --throughput)'
      : ` incl. ${l.heartbeatsPerChunk} heartbeats`;
  const lines = [
    `cloud      layout: ${f.layout}; ledger: ${f.ledgerLayout}`,
    `objects    ${n(f.objects.perChunk)} written per chunk (${n(f.puts.perChunk)} PUTs), ${n(f.objects.total)} in all; ` +
      `${n(f.puts.total)} PUTs with the blend's ${n(f.puts.blend)}; ${n(f.gets.blend)} partial GETs` +
      (f.gets.input === undefined ? '' : `, ${n(f.gets.input)} input chunk GETs`),
    `partials   ${n(f.partials.objects)} objects, ${formatBytes(f.partials.bytes)} = ${f.partials.ofOutput.toFixed(2)} of the ${formatBytes(f.outputBytes)} output (uncompressed)`,
    `ledger     ${n(l.writes.perChunk)} writes, ${n(l.writeUnits.perChunk)} WRU per chunk${heartbeats}; ${n(l.writes.total)} writes, ${n(l.writeUnits.total)} WRU in all`,
    `planning   ${n(l.planning.rows)} rows on ${l.planning.partitions} partition(s) at ${n(l.planning.rowsPerSecond)} rows/s: ${seconds(l.planning.seconds)}` +
      (l.planning.ranges > 0
        ? ` in ${n(l.planning.ranges)} PlanRange calls, ${l.planning.rangesAtOnce} at once, ${seconds(l.planning.callSeconds)} each`
        : ' in one planner call') +
      ` (${n(Math.ceil(l.planning.wcuToFitTimeout))} WCU/s would fit its timeout)` +
      (l.workWcu === undefined ? '' : `; work: ${n(Math.ceil(l.workWcu))} WCU/s`),
    `fleet      array of ${n(f.fleet.arraySize)} (${n(f.fleet.requested)} asked for); ${n(f.fleet.running)} at once (${f.fleet.maxVcpus} vCPUs, ${f.fleet.vcpusPerWorker} per worker)`,
    `blend      ${n(f.blend.items)} Map items, ${f.blend.concurrency} at once: ${formatBytes(f.blend.bytesPerItem)} and ${seconds(f.blend.secondsPerItem)} each, ` +
      `${formatBytes(f.blend.memoryBytes)} of memory; ${seconds(f.blend.hours * 3600)} in all; items JSON ${formatBytes(f.blend.itemsJsonBytes)}`,
    `pyramid    ${f.finalize.levels} level(s) in bounded tasks: ${formatBytes(f.finalize.bytes)} read and written in all, the longest task ${seconds(f.finalize.seconds)}`,
    `states     ${n(f.stateMachine.historyEvents)} history events, largest state ${formatBytes(f.stateMachine.largestPayloadBytes)}, ${n(f.stateMachine.transitions)} transitions`,
  ];
  if (f.compute && f.hours)
    lines.push(
      `time       ${n(f.compute.workerHours)} ${f.device.toUpperCase()}-hours on ${n(f.fleet.running)} workers: work ${seconds(f.hours.work * 3600)}, ` +
        `plan ${seconds(f.hours.planning * 3600)}, blend ${seconds(f.hours.blend * 3600)}; ${seconds(f.hours.total * 3600)} in all`,
    );
  const k = f.cost;
  lines.push(
    `dollars    ${k.compute === undefined ? 'compute: add --throughput or --calibrate' : `compute ${usd(k.compute)}`}, ` +
      `Lambda ${usd(k.lambda)}, requests ${usd(k.requests)}, storage ${usd(k.storage)} (output a month, partials until they expire), ` +
      `ledger ${usd(k.ledger)}${k.total === undefined ? '' : `; total ${usd(k.total)}`} (${f.prices.asOf})`,
    'limits',
    ...f.limits.map(limitLine),
  );
  return lines;
}

function limitLine(l: Limit): string {
  const mark = l.ok === undefined ? '  -   ' : l.ok ? '  ok  ' : '  NO  ';
  const q = (x: number): string => (l.unit === 'bytes' ? formatBytes(x) : `${n(x)} ${l.unit}`);
  const value = Number.isNaN(l.value)
    ? `needs --throughput or --calibrate (limit ${q(l.limit)})`
    : `${q(l.value)} ${l.ok === false ? '>' : '≤'} ${q(l.limit)}`;
  return `${mark}${l.id.padEnd(18)}${value}${l.ok === false ? `: ${l.knob} — ${l.fix}` : ''}`;
}

/** The refusal of a plan over a limit: each failed limit with its knob. */
export function refusal(f: CloudFigures): string | undefined {
  const over = f.limits.filter((l) => l.ok === false);
  if (over.length === 0) return undefined;
  return `the job does not fit the stack: ${over.map((l) => `${l.id} (change ${l.knob}: ${l.fix})`).join('; ')}`;
}
