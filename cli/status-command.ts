// `tessera status`: where a job stands, from its ledger — a local state directory or
// the stack's DynamoDB table.
//
// A local state directory is read through JournalView, never LocalLedger.open: open
// takes the run's lock (a `tessera run` starting meanwhile would be refused) and may
// compact or repair the journal, and a status query must change nothing.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeS3Client, registerS3 } from '../adapters/aws/clients.ts';
import { makeDynamoClient } from '../adapters/aws/dynamo-client.ts';
import { DynamoLedger } from '../adapters/aws/dynamo-ledger.ts';
import { S3Store } from '../adapters/aws/s3-store.ts';
import type { JobStatusDocument } from '../contracts/cloud.ts';
import { ENV, KEYS } from '../contracts/cloud.ts';
import type { Plan } from '../core/geometry/index.ts';
import type { LedgerReader, StatusCounts } from '../core/ledger/index.ts';
import { JournalView, lockHolder } from '../core/ledger/journal-view.ts';
import { type Manifest, ManifestError, parseManifest } from '../core/manifest/index.ts';
import { localPathOf } from '../core/manifest/url.ts';
import {
  checkPlanAgainst,
  describeJob,
  legacyJobIdFor,
  openJob,
  planFor,
  readJobDescription,
} from '../core/pipeline/index.ts';
import { neuroglancerLink } from '../core/pipeline/viewer.ts';
import { LocalStore, PrefixedStore, type Store } from '../core/store/index.ts';
import { parse } from './args.ts';
import {
  defaultStateDir,
  type LoadedManifest,
  loadManifest,
  ManifestFileError,
  resolveJobId,
} from './job-files.ts';
import { type JobStatus, jobStatus } from './job-status.ts';
import { workerPrice } from './prices.ts';
import { formatRate, formatSeconds, Progress } from './progress.ts';
import { readStackOutputs } from './stack-outputs.ts';

const USAGE = `Usage: tessera status <manifest.json|jobId> [--state DIR] [--watch] [--interval S] [--json]
       tessera status <jobId> --cloud [--table T] [--bucket B] [--stack-outputs FILE] [--watch] [--json]

Chunks pending/running/done/skipped/failed, throughput and ETA (from chunk completion
times), attempts, poison chunks with their last errors, and an estimate of the money
spent so far (worker-hours × --price-per-hour; default the on-demand price of the
manifest's device, an upper bound for spot fleets).

Local runs: give the manifest (its state directory is found as \`tessera run\` finds it)
or the job id with --state DIR (default: any .tessera/* under the current directory).
Reading never locks: it works while the run is going.
Cloud jobs (--cloud, or TESSERA_TABLE set): the table and bucket come from --table/--bucket,
--stack-outputs cdk-outputs.json, or TESSERA_TABLE/TESSERA_BUCKET.

--watch redraws a progress bar until the job finishes (exit 0) or fails (exit 1).`;

interface Source {
  kind: 'local' | 'dynamodb';
  jobId: string;
  where: string;
  /** A fresh view of the ledger (local: a new replay of the journal). */
  ledger(): Promise<LedgerReader>;
  /** Whether a worker can be alive (local: a run holds the directory). */
  workersAlive(): boolean | undefined;
  plan?: Plan;
  manifest?: Manifest;
  /** The job's output: a local path (resolved against the manifest's directory) or URL. */
  output?: string;
  note?: string;
  /** Cloud: the job's status.json now (Verify's worker failures, the watchdog's stall flag). */
  statusDocument?(): Promise<JobStatusDocument | undefined>;
  close(): void;
}

export async function statusCommand(args: string[]): Promise<number> {
  const { values, positionals, help } = parse(
    args,
    {
      state: { type: 'string' },
      cloud: { type: 'boolean' },
      table: { type: 'string' },
      bucket: { type: 'string' },
      'stack-outputs': { type: 'string' },
      watch: { type: 'boolean' },
      interval: { type: 'string' },
      json: { type: 'boolean' },
      'price-per-hour': { type: 'string' },
    },
    USAGE,
  );
  if (help) return 0;
  const [target] = positionals;
  if (!target || positionals.length > 1) {
    process.stderr.write(`${USAGE}\n`);
    return 2;
  }
  const interval = Number(values.interval ?? 5);
  if (!Number.isFinite(interval) || interval <= 0)
    throw new Error(`--interval must be a positive number of seconds, got "${values.interval}"`);
  const cloud =
    values.cloud === true ||
    values.table !== undefined ||
    (process.env[ENV.table] !== undefined && !isManifestPath(target));
  const source = cloud ? await cloudSource(target, values) : await localSource(target, values);
  try {
    const device = source.manifest?.compute.device ?? 'gpu';
    // Cloud: a spot fleet falls back to on-demand, so the on-demand price bounds spend
    // from above. Local: your own machine, priced only when you give a price.
    const price =
      source.kind === 'dynamodb' || values['price-per-hour'] !== undefined
        ? workerPrice(device, false, values['price-per-hour'])
        : undefined;
    const snapshot = async (): Promise<JobStatus | undefined> => {
      const ledger = await source.ledger();
      const job = await ledger.getJob(source.jobId);
      if (!job) return undefined;
      const plan = source.plan;
      const region = plan?.counts.regionVoxels;
      const perPatch = plan ? plan.counts.regionVoxels / plan.counts.patches : 0;
      const doc = await source.statusDocument?.();
      const status = await jobStatus({
        job,
        ledger: source.kind,
        counts: await ledger.counts(source.jobId),
        rows: ledger.list(source.jobId),
        now: Date.now(),
        ...(plan
          ? {
              // Region voxels apportioned by patches: chunks' footprints overlap at seams.
              voxelsOf: (id: string) => plan.describeChunk(id).patchCount * perPatch,
              totalVoxels: region,
            }
          : {}),
        ...(price ? { price } : {}),
        ...(source.workersAlive() === undefined ? {} : { workersAlive: source.workersAlive() }),
      });
      return {
        ...status,
        ...(doc?.workerFailures?.length ? { workerFailures: doc.workerFailures } : {}),
        ...(doc?.stalled ? { stalled: doc.stalled } : {}),
      };
    };
    let first = await snapshot();
    const planning = first ? undefined : (await source.statusDocument?.())?.plannedInRanges;
    if (!first && planning) {
      // Planned in ranges: the ledger shows no job until CompletePlan, yet the job exists.
      process.stdout.write(
        `${values.json ? JSON.stringify({ jobId: source.jobId, state: 'PLANNING', plannedInRanges: planning }) : planningLine(source.jobId, planning)}\n`,
      );
      if (!values.watch) return 0;
      while (!first) {
        await sleep(interval * 1000);
        first = await snapshot();
        const doc = first ? undefined : await source.statusDocument?.();
        if (doc?.status === 'FAILED') {
          process.stderr.write(`${describeStatus('status.json', doc)}\n`);
          return 1;
        }
      }
    }
    if (!first) {
      process.stderr.write(
        `job ${source.jobId} is not in ${source.where}${source.note ? `\n${source.note}` : ''}\n`,
      );
      return 1;
    }
    const link = source.manifest ? viewerLink(source.manifest) : undefined;
    const { output } = source;
    const asJson = (s: JobStatus): string =>
      JSON.stringify({
        ...s,
        ...(output !== undefined ? { output } : {}),
        ...(link ? { neuroglancer: link } : {}),
      });
    const asText = (s: JobStatus): string =>
      `${render(s, source)}${output !== undefined ? `\noutput     ${output}${outputNote(s, source)}` : ''}${link ? `\nview       ${link}` : ''}`;
    const settled = first.state === 'SUCCEEDED' || first.state === 'FAILED';
    if (!values.watch || settled) {
      process.stdout.write(`${values.json ? asJson(first) : asText(first)}\n`);
      return values.watch && first.state === 'FAILED' ? 1 : 0;
    }
    if (!values.json) process.stdout.write(`${asText(first)}\n`);
    const last = await watch(source, first, interval * 1000);
    const final = (await snapshot()) ?? first;
    process.stdout.write(`${values.json ? asJson(final) : asText(final)}\n`);
    return last === 'FAILED' || final.state === 'FAILED' ? 1 : last === 'SUCCEEDED' ? 0 : 3;
  } finally {
    source.close();
  }
}

/** Polls counts (cheap: no row listing) until the job finishes, fails or stops. */
async function watch(source: Source, first: JobStatus, everyMs: number): Promise<string> {
  const progress = new Progress(process.stderr, first.name ?? first.jobId);
  const perChunk = first.voxels ? first.voxels.total / first.chunks.total : 0;
  let stop = false;
  const onSignal = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSignal);
  try {
    for (;;) {
      const ledger = await source.ledger();
      const c: StatusCounts = await ledger.counts(source.jobId);
      const finished = c.DONE + c.SKIPPED;
      progress.update(
        {
          done: finished,
          total: first.chunks.total,
          failed: c.FAILED,
          voxels: finished * perChunk,
        },
        true,
      );
      if (c.FAILED > 0) return 'FAILED';
      if (c.PENDING + c.RUNNING === 0) return 'SUCCEEDED';
      if (source.workersAlive() === false) {
        process.stderr.write(
          '\nno run holds the state directory any more; resume it with `tessera run`\n',
        );
        return 'STOPPED';
      }
      if (stop) return 'INTERRUPTED';
      await new Promise((r) => setTimeout(r, everyMs));
      if (stop) return 'INTERRUPTED';
    }
  } finally {
    process.off('SIGINT', onSignal);
    progress.end();
  }
}

/** After the output's path: how to look at it, once there is something to see. */
function outputNote(s: JobStatus, source: Source): string {
  if (s.state !== 'SUCCEEDED') return s.state === 'FAILED' ? ' (incomplete)' : '';
  return source.kind === 'local' ? ` (look at it: tessera view ${source.output})` : '';
}

function viewerLink(m: Manifest): string | undefined {
  return neuroglancerLink({
    name: m.name,
    outputUrl: m.output.url,
    inputUrl: m.input.url,
    dtype: m.output.dtype,
    ...(m.input.array ? { inputArray: m.input.array } : {}),
  });
}

function isManifestPath(target: string): boolean {
  return target.endsWith('.json') && existsSync(target);
}

async function localSource(target: string, values: Record<string, unknown>): Promise<Source> {
  let loaded: LoadedManifest | undefined;
  let jobId = target;
  let dir: string | undefined;
  if (isManifestPath(target)) {
    loaded = await loadManifest(target);
    const stateDir =
      typeof values.state === 'string' ? resolve(values.state) : defaultStateDir(loaded);
    // A state directory an earlier release wrote holds the job under the id it gave then.
    jobId = await resolveJobId(loaded, stateDir);
    loaded = { ...loaded, jobId };
    dir = join(stateDir, 'ledger');
  } else if (typeof values.state === 'string') {
    dir = join(resolve(values.state), 'ledger');
  } else {
    dir = await findStateDir(jobId);
  }
  if (dir === undefined || !existsSync(join(dir, 'ledger.jsonl')))
    throw new Error(
      `no local ledger found for ${target}${dir ? ` at ${dir}` : ' under ./.tessera'}; ` +
        'give the manifest, or --state DIR (the directory `tessera run --state` used), or --cloud for a cloud job',
    );
  const ledgerDir = dir;
  // Without the manifest, the plan (for voxel figures) comes from a manifest beside the
  // state directory whose job id matches, as `tessera run` lays them out.
  loaded ??= await manifestBeside(ledgerDir, jobId);
  const plan = loaded
    ? await planOf(
        loaded.manifest,
        loaded.jobId,
        new LocalStore(join(ledgerDir, '..', 'work', loaded.jobId), { fsync: false }),
        loaded.baseDir,
      )
    : undefined;
  return {
    kind: 'local',
    jobId,
    where: `the local ledger ${ledgerDir}`,
    ledger: () => JournalView.read(ledgerDir),
    workersAlive: () => lockHolder(ledgerDir) !== undefined,
    ...(plan ? { plan } : {}),
    ...(loaded
      ? {
          manifest: loaded.manifest,
          output:
            localPathOf(loaded.manifest.output.url, loaded.baseDir) ?? loaded.manifest.output.url,
        }
      : {}),
    close: () => {},
  };
}

async function findStateDir(jobId: string): Promise<string | undefined> {
  const root = resolve('.tessera');
  if (!existsSync(root)) return undefined;
  for (const name of readdirSync(root)) {
    const dir = join(root, name, 'ledger');
    if (!existsSync(join(dir, 'ledger.jsonl'))) continue;
    if ((await JournalView.read(dir)).jobIds().includes(jobId)) return dir;
  }
  return undefined;
}

async function manifestBeside(
  ledgerDir: string,
  jobId: string,
): Promise<LoadedManifest | undefined> {
  // <base>/.tessera/<name>/ledger → <base>/*.json
  const base = resolve(ledgerDir, '..', '..', '..');
  if (!existsSync(base)) return undefined;
  for (const f of readdirSync(base)) {
    if (!f.endsWith('.json') || !statSync(join(base, f)).isFile()) continue;
    const m = await loadManifest(join(base, f)).catch((e: unknown) => {
      // Other JSON files beside it (package.json, outputs) are not manifests.
      if (e instanceof ManifestError || e instanceof ManifestFileError) return undefined;
      throw e;
    });
    if (m?.jobId === jobId) return m;
    if (m && legacyJobIdFor(m.manifest) === jobId) return { ...m, jobId };
  }
  return undefined;
}

/**
 * The job's plan. From its frozen description (written at plan time into `work`) when
 * there is one: the shape the job was planned for, with no read of the input, checked
 * against how this release plans it. Before planning, from the input's metadata.
 */
async function planOf(
  manifest: Manifest,
  jobId: string,
  work: Store,
  baseDir?: string,
): Promise<Plan> {
  const frozen = await readJobDescription(work);
  if (frozen) {
    const plan = planFor(manifest, frozen.input.shape, { jobId, blockShape: frozen.plan.block });
    checkPlanAgainst(frozen, describeJob(jobId, manifest, frozen.input, plan));
    return plan;
  }
  const ctx = await openJob(manifest, {
    jobId,
    work,
    ...(baseDir === undefined ? {} : { baseDir }),
  });
  return ctx.plan;
}

async function cloudSource(jobId: string, values: Record<string, unknown>): Promise<Source> {
  const env = process.env;
  const outputs =
    typeof values['stack-outputs'] === 'string'
      ? await readStackOutputs(values['stack-outputs'])
      : undefined;
  const table = (values.table as string | undefined) ?? outputs?.table ?? env[ENV.table];
  const bucket = (values.bucket as string | undefined) ?? outputs?.bucket ?? env[ENV.bucket];
  if (!table)
    throw new Error(
      `which table? give --table, --stack-outputs cdk-outputs.json, or set ${ENV.table} (the stack's TableName output)`,
    );
  const client = makeDynamoClient(env);
  const ledger = new DynamoLedger({ client, table });
  let manifest: Manifest | undefined;
  let plan: Plan | undefined;
  let note: string | undefined;
  let statusDocument: (() => Promise<JobStatusDocument | undefined>) | undefined;
  if (bucket) {
    const s3 = makeS3Client(env);
    registerS3(s3);
    const store = new S3Store({ client: s3, bucket });
    const readDocument = async (): Promise<JobStatusDocument | undefined> => {
      const bytes = await store.get(`/${KEYS.status(jobId)}`);
      return bytes ? (JSON.parse(new TextDecoder().decode(bytes)) as JobStatusDocument) : undefined;
    };
    const doc = await readDocument();
    if (doc) {
      note = describeStatus('status.json', doc);
      statusDocument = readDocument;
    } else {
      // A manifest that never became a job has its status at KEYS.rejectedStatus(<name>).
      const name = manifestNameOf(jobId);
      const rejected = name ? await store.get(`/${KEYS.rejectedStatus(name)}`) : undefined;
      if (name && rejected) {
        const doc = JSON.parse(new TextDecoder().decode(rejected)) as JobStatusDocument;
        note = describeStatus(
          `no job ${jobId} in s3://${bucket}; the last manifest named "${name}" that never became a job ` +
            `(s3://${doc.manifest.bucket}/${doc.manifest.key}, ${doc.updatedAt}; s3://${bucket}/${KEYS.rejectedStatus(name)})`,
          doc,
        );
      }
    }
    const frozen = await store.get(`/${KEYS.jobManifest(jobId)}`);
    if (frozen) {
      manifest = parseManifest(
        (JSON.parse(new TextDecoder().decode(frozen)) as { manifest: unknown }).manifest,
      );
      try {
        plan = await planOf(manifest, jobId, new PrefixedStore(store, `jobs/${jobId}`));
      } catch (error) {
        // Voxel figures need the input's shape; without read access to it, counts still work.
        if (!(error instanceof Error)) throw error;
        note = `${note ? `${note}\n` : ''}voxel figures unavailable: ${error.message}`;
      }
    }
  }
  return {
    kind: 'dynamodb',
    jobId,
    where: `table ${table}`,
    ledger: async () => ledger,
    workersAlive: () => undefined,
    ...(plan ? { plan } : {}),
    ...(manifest ? { manifest, output: manifest.output.url } : {}),
    ...(note ? { note } : {}),
    ...(statusDocument ? { statusDocument } : {}),
    close: () => client.base.destroy(),
  };
}

/** A job whose chunk rows the PlanRanges Map is still writing (status.json plannedInRanges). */
export function planningLine(
  jobId: string,
  p: NonNullable<JobStatusDocument['plannedInRanges']>,
): string {
  return (
    `job ${jobId} is being planned: its ${p.chunks} chunk rows are written by the PlanRanges map ` +
    `(${p.ranges} ranges of up to ${p.rows} rows); the counts appear here once CompletePlan has made them claimable`
  );
}

function describeStatus(what: string, doc: JobStatusDocument): string {
  return `${what}: ${doc.status}${doc.reason ? `: ${doc.reason}` : ''}${
    doc.errors?.length ? `\n${doc.errors.map((e) => `  ${e.path}: ${e.message}`).join('\n')}` : ''
  }`;
}

/** The manifest name in a cloud job id (`<name>-<10 hex>`), or the argument when it is a bare name. */
export function manifestNameOf(jobIdOrName: string): string | undefined {
  const name = jobIdOrName.replace(/-[0-9a-f]{10}$/, '');
  return /^[a-z0-9]+(-[a-z0-9]+)*$/.test(name) && name.length <= 63 ? name : undefined;
}

export function render(
  s: JobStatus,
  source?: Pick<Source, 'where' | 'workersAlive' | 'note'>,
): string {
  const c = s.chunks;
  const finished = c.DONE + c.SKIPPED;
  const pct = c.total === 0 ? 100 : (100 * finished) / c.total;
  const width = 30;
  const fill = Math.round((pct / 100) * width);
  const alive = source?.workersAlive();
  const lines = [
    `job        ${s.jobId}${s.name ? ` (${s.name})` : ''} · ${source?.where ?? s.ledger}${
      alive === true ? ' · a run is in progress' : alive === false ? ' · no run holds it' : ''
    }`,
    `state      ${s.state} · created ${s.createdAt}${s.lastCompletionAt ? ` · last chunk finished ${s.lastCompletionAt}` : ''}`,
    `chunks     [${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${finished}/${c.total} (${pct.toFixed(1)}%): ` +
      `${c.DONE} done, ${c.SKIPPED} skipped, ${c.RUNNING} running, ${c.PENDING} pending, ${c.FAILED} failed`,
  ];
  if (s.voxels) lines.push(`voxels     ${fmt(s.voxels.done)} of ${fmt(s.voxels.total)}`);
  lines.push(
    `rate       ${
      s.rate
        ? `${s.rate.voxelsPerSecond !== undefined ? `${formatRate(s.rate.voxelsPerSecond)}, ` : ''}${(s.rate.chunksPerSecond * 60).toFixed(1)} chunks/min over the last ${formatSeconds(s.rate.windowSeconds)}`
        : 'not enough completions yet'
    }${s.etaSeconds !== undefined ? ` · ETA ${formatSeconds(s.etaSeconds)}` : ''}`,
    `attempts   ${s.attempts.total} in all · ${s.attempts.retriedChunks} chunk(s) retried · at most ${s.attempts.maxPerChunk} of ${s.attempts.maxAttempts} per chunk`,
    `workers    ${s.workers.active} active, ${s.workers.seen} seen`,
    `spend      ${s.spend.workerHours.toFixed(3)} worker-hours${
      s.spend.dollars !== undefined
        ? ` ≈ $${s.spend.dollars < 1 ? s.spend.dollars.toFixed(4) : s.spend.dollars.toFixed(2)}`
        : ''
    } (${s.spend.basis})`,
  );
  for (const r of s.running)
    lines.push(
      `running    ${r.chunkId} · ${r.owner} · attempt ${r.attempt} · ${
        r.stale
          ? 'its worker is gone: re-claimed on resume or lease expiry'
          : `lease ${r.leaseExpiresInSeconds}s left`
      }`,
    );
  for (const r of s.retrying)
    lines.push(
      `retrying   ${r.chunkId} · ${r.attempts} attempt(s) so far · last error: ${oneLine(r.lastError)}`,
    );
  for (const p of s.poison)
    lines.push(
      `POISON     ${p.chunkId} · failed ${p.attempts} attempt(s)${p.owner ? ` · last on ${p.owner}` : ''} · last error: ${oneLine(p.lastError)}`,
    );
  if (s.stalled)
    lines.push(
      `STALLED    no chunk finished for ${s.stalled.minutes} min (since ${s.stalled.since}) while chunks are unfinished: ` +
        "check the Batch queue for RUNNABLE jobs (Spot capacity, vCPU quota) and the workers' logs",
    );
  for (const f of s.workerFailures ?? [])
    lines.push(
      `batch      round ${f.round} · ${f.batchJobId} · ${oneLine(f.statusReason)}${
        f.reason ? ` · ${oneLine(f.reason)}` : ''
      }${f.exitCode !== undefined ? ` · exit ${f.exitCode}` : ''}${f.logStream ? ` · log ${f.logStream}` : ''}`,
    );
  if (source?.note) lines.push(source.note);
  return lines.join('\n');
}

function fmt(v: number): string {
  if (v >= 1e12) return `${(v / 1e12).toFixed(2)} T`;
  if (v >= 1e9) return `${(v / 1e9).toFixed(2)} G`;
  if (v >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  return String(Math.round(v));
}

const oneLine = (s: string | undefined): string =>
  (s ?? 'unknown').replace(/\s+/g, ' ').slice(0, 300);
