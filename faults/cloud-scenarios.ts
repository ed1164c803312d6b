// The AWS-specific faults: real `tessera worker` processes against s3rver and DynamoDB
// Local, each behind its own fault proxy where the fault needs one, and the cloud steps
// (plan, verify, blend, finalize) in-process. Every random choice is drawn from the
// trial's Rng before anything starts, so a seed replays the same schedule.

import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { S3Event } from 'aws-lambda';
import { makeS3Client, registerS3 } from '../adapters/aws/clients.ts';
import { cloudDeps } from '../adapters/aws/deps.ts';
import { dynamoClientConfig } from '../adapters/aws/dynamo-client.ts';
import { DynamoLedger } from '../adapters/aws/dynamo-ledger.ts';
import { manifestLocations } from '../adapters/aws/s3-events.ts';
import { S3Store } from '../adapters/aws/s3-store.ts';
import { ENV, type ManifestLocation, type PipelineInput, WORKER_EXIT } from '../contracts/cloud.ts';
import {
  type CloudDeps,
  handleManifestCreated,
  planFromManifest,
  verifyStep,
} from '../core/cloud/index.ts';
import { type ChunkRow, OutputClaimedError } from '../core/ledger/index.ts';
import { EMULATOR_CREDENTIALS } from '../test/helpers/s3-emulator.ts';
import {
  type CloudLab,
  checkJob,
  finishJob,
  type JobOutcome,
  manifestFor,
  reap,
  type SubmittedJob,
  spawnWorker,
  submitJob,
  until,
  uploadManifest,
  type WorkerProc,
  workerEnv,
} from './cloud.ts';
import { startImds } from './imds.ts';
import { FaultProxy, type ProxiedRequest, type Verdict } from './proxy.ts';
import { Rng } from './rng.ts';
import type { Trial } from './trial.ts';

export interface CloudContext {
  lab: CloudLab;
  seed: number;
  log: (line: string) => void;
}

/** A trial's figures before it is named, with the job's final ledger rows for checks. */
type Row = Omit<Trial, 'row' | 'path' | 'seconds'> & { rows: ChunkRow[] };

const linesOf = (ws: WorkerProc[], type: string): number =>
  ws.reduce((n, w) => n + w.lines.filter((l) => l.type === type).length, 0);

function fromOutcome(o: JobOutcome, ws: WorkerProc[], expected = 'SUCCEEDED'): Row {
  return {
    outcome: o.outcome,
    expected,
    injected: 0,
    lost: o.lost,
    divergent: o.divergent,
    reinferred: o.reclaimed,
    dupLive: linesOf(ws, 'lease-lost'),
    equal: o.equal,
    violations: [],
    notes: [],
    rows: o.rows,
  };
}

async function finishAndCheck(
  c: CloudContext,
  job: SubmittedJob,
  ws: WorkerProc[],
  deps?: CloudDeps,
): Promise<Row> {
  let outcome: string;
  try {
    outcome = await finishJob(c.lab, job, deps);
  } catch (e) {
    outcome = `ERROR ${(e as Error).message.split('\n')[0]}`;
  }
  return fromOutcome(await checkJob(c.lab, job, outcome), ws);
}

// ---- workers SIGKILLed at exact points --------------------------------------------------

export const KILL_POINTS = [
  'before-claim',
  'mid-inference',
  'mid-write',
  'before-complete',
] as const;
export type KillPoint = (typeof KILL_POINTS)[number];
export const KILL_ROWS: Record<KillPoint, string> = {
  'before-claim': 'SIGKILL before claim',
  'mid-inference': 'SIGKILL mid-inference',
  'mid-write': 'SIGKILL mid-write',
  'before-complete': 'SIGKILL after write, before complete',
};

/**
 * One job, four victims (one per kill point, in a seeded order, each at a seeded k-th
 * chunk), killed while the proxy holds the request that marks the point; then a fresh
 * pair of workers finishes the job (dead owners' leases expire first).
 */
export async function killPoints(c: CloudContext, trial: number): Promise<Trial[]> {
  const rng = Rng.for(c.seed, 'kill-points', trial);
  const t0 = Date.now();
  const job = await submitJob(c.lab, `kp-${trial}`);
  const plan = KILL_POINTS.map((point) => ({
    point,
    k: rng.int(1, 2),
    write: rng.int(1, 12),
    delayMs: rng.int(0, 150),
  }));
  const order = rng.shuffle(plan);
  const victims: { point: KillPoint; w: WorkerProc; landed: () => boolean; note: () => string }[] =
    [];
  for (const p of order) {
    let landed = false;
    let heldWrite = false;
    let claims = 0;
    let completes = 0;
    let writes = 0;
    let claimedLines = 0;
    let holdWrites = false;
    let w: WorkerProc | undefined;
    const kill = (): void => {
      if (landed) return;
      landed = true;
      w?.kill('SIGKILL');
    };
    w = await spawnWorker(c.lab, job.jobId, {
      name: `victim-${p.point}`,
      dynamodb: {
        rule: (r): Verdict | undefined => {
          if (landed) return 'hold';
          const op = r.ledger?.op;
          if (op === 'claim' && p.point === 'before-claim' && ++claims === p.k) {
            setImmediate(kill);
            return 'hold';
          }
          if (op === 'complete' && p.point === 'before-complete' && ++completes === p.k) {
            setImmediate(kill);
            return 'hold';
          }
          return undefined;
        },
      },
      s3: {
        rule: (r): Verdict | undefined => {
          if (r.method !== 'PUT') return landed ? 'hold' : undefined;
          if (landed || holdWrites) {
            heldWrite = true;
            return 'hold';
          }
          if (p.point === 'mid-write' && ++writes === p.write) {
            setImmediate(kill);
            return 'hold';
          }
          return undefined;
        },
      },
    });
    if (p.point === 'mid-inference') {
      w.onLine((l) => {
        if (l.type !== 'claimed' || ++claimedLines !== p.k) return;
        // From here on nothing of this worker's reaches S3: it dies between claim and write.
        holdWrites = true;
        setTimeout(kill, p.delayMs);
      });
    }
    victims.push({
      point: p.point,
      w,
      landed: () => landed,
      note: () =>
        `${p.point}: k=${p.k}${p.point === 'mid-write' ? ` write#${p.write}` : ''}${
          p.point === 'mid-inference'
            ? ` +${p.delayMs}ms${heldWrite ? ' (reached its writes)' : ' (before any write)'}`
            : ''
        }${landed ? '' : ' NOT REACHED'}`,
    });
  }
  await reap(
    victims.map((v) => v.w),
    60_000,
  );
  const helpers = [
    await spawnWorker(c.lab, job.jobId, { name: 'helper-1' }),
    await spawnWorker(c.lab, job.jobId, { name: 'helper-2' }),
  ];
  await reap(helpers, 120_000);
  const all = [...victims.map((v) => v.w), ...helpers];
  const row = await finishAndCheck(c, job, all);
  const seconds = (Date.now() - t0) / 1000;
  return victims.map((v) => ({
    ...row,
    row: KILL_ROWS[v.point],
    path: 'cloud' as const,
    injected: v.landed() ? 1 : 0,
    notes: [v.note()],
    violations: helpers.some((h) => h.lines.some((l) => l.type === 'text'))
      ? ['a helper printed a non-JSON line']
      : [],
    seconds,
  }));
}

// ---- SIGTERM and spot interruption notice: release --------------------------------------

export async function gracefulStop(
  c: CloudContext,
  trial: number,
  mode: 'SIGTERM' | 'spot',
): Promise<Trial> {
  const rng = Rng.for(c.seed, 'graceful', mode, trial);
  const k = rng.int(1, 3);
  const delayMs = rng.int(0, 300);
  const t0 = Date.now();
  // 108 one-patch chunks: one worker alone needs longer than the spot poll (5 s) to finish.
  const job = await submitJob(c.lab, `${mode === 'spot' ? 'spot' : 'term'}-${trial}`, {
    chunkShape: [8, 12, 12],
  });
  const imds = mode === 'spot' ? await startImds() : undefined;
  const victim = await spawnWorker(c.lab, job.jobId, {
    name: `victim-${mode}`,
    ...(imds
      ? {
          env: {
            AWS_EC2_METADATA_DISABLED: 'false',
            AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.endpoint,
          },
        }
      : {}),
  });
  let signalledAt: number | undefined;
  let claimed = 0;
  victim.onLine((l) => {
    if (l.type !== 'claimed' || ++claimed !== k) return;
    setTimeout(() => {
      signalledAt = Date.now();
      if (imds) imds.notice();
      else victim.kill('SIGTERM');
    }, delayMs);
  });
  const exit = await victim.exit;
  const exitedAt = Date.now();
  await imds?.stop();
  // What a graceful stop must leave behind: no lease held by the stopped worker.
  const owner = victim.lines.find((l) => typeof l.owner === 'string')?.owner;
  const stillHeld: string[] = [];
  for await (const r of c.lab.deps.ledger.list(job.jobId, 'RUNNING'))
    if (r.owner === owner) stillHeld.push(r.chunkId);
  const helper = await spawnWorker(c.lab, job.jobId, { name: 'helper' });
  await reap([victim, helper], 120_000);
  const row = await finishAndCheck(c, job, [victim, helper]);
  const violations: string[] = [];
  const released = victim.lines.filter((l) => l.type === 'released').map((l) => l.chunkId);
  const stopping = victim.lines.find((l) => String(l.message ?? '').startsWith('stopping'));
  // A spot notice lands when the worker reads it; one that finished first never saw it.
  const landed = signalledAt !== undefined && (!imds || imds.servedAt() !== undefined);
  if (landed && signalledAt !== undefined) {
    // Interrupted, its chunks released: the exit code Batch's retry strategy retries.
    if (exit.code !== WORKER_EXIT.interrupted)
      violations.push(
        `the worker exited ${exit.code ?? exit.signal}, not ${WORKER_EXIT.interrupted} (WORKER_EXIT.interrupted)`,
      );
    if (exitedAt - signalledAt > 25_000)
      violations.push(`the worker took ${exitedAt - signalledAt} ms to stop (Batch kills at 30 s)`);
    if (!stopping) violations.push('the worker never logged that it was stopping');
    if (stillHeld.length > 0)
      violations.push(`the worker exited still holding ${stillHeld.join(', ')} (not released)`);
  }
  const rows = new Map(row.rows.map((r) => [r.chunkId, r]));
  for (const id of released) {
    const r = rows.get(id ?? '');
    const releases = released.filter((x) => x === id).length;
    if (r && r.attempts !== r.token - releases)
      violations.push(
        `released chunk ${id} burned an attempt (attempts ${r.attempts}, claims ${r.token})`,
      );
  }
  const detect =
    imds && signalledAt !== undefined && imds.servedAt() !== undefined
      ? `, notice seen ${imds.servedAt()! - signalledAt} ms after it was posted`
      : '';
  return {
    ...row,
    row: mode === 'spot' ? 'spot interruption notice → release' : 'SIGTERM → release',
    path: 'cloud',
    injected: landed ? 1 : 0,
    violations,
    notes: [
      `${landed ? '' : 'NOT REACHED (the worker finished first); '}released ${released.length} chunk(s); stopped ${signalledAt === undefined ? '?' : exitedAt - signalledAt} ms after the ${mode === 'spot' ? 'notice' : 'signal'}${detect}`,
    ],
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---- the whole fleet killed, a new one started ------------------------------------------

export async function fleetKill(c: CloudContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'fleet', trial);
  const after = rng.int(2, 12);
  const t0 = Date.now();
  const job = await submitJob(c.lab, `fleet-${trial}`);
  const fleet = await Promise.all(
    [1, 2, 3].map((i) => spawnWorker(c.lab, job.jobId, { name: `fleet-a-${i}` })),
  );
  let killed = false;
  const check = (): void => {
    if (!killed && linesOf(fleet, 'done') >= after) {
      killed = true;
      for (const w of fleet) w.kill('SIGKILL');
    }
  };
  for (const w of fleet) w.onLine(check);
  await reap(fleet, 120_000);
  const before = new Map<string, ChunkRow>();
  for await (const r of c.lab.deps.ledger.list(job.jobId)) before.set(r.chunkId, r);
  const doneBefore = [...before.values()].filter((r) => r.status === 'DONE');
  const second = await Promise.all(
    [1, 2].map((i) => spawnWorker(c.lab, job.jobId, { name: `fleet-b-${i}` })),
  );
  await reap(second, 120_000);
  const row = await finishAndCheck(c, job, [...fleet, ...second]);
  const violations: string[] = [];
  const after2 = new Map(row.rows.map((r) => [r.chunkId, r]));
  for (const r of doneBefore)
    if (after2.get(r.chunkId)?.token !== r.token)
      violations.push(`chunk ${r.chunkId} was DONE before the kill and was claimed again`);
  return {
    ...row,
    row: 'whole fleet SIGKILLed, new fleet started',
    path: 'cloud',
    injected: killed ? 3 : 0,
    violations,
    notes: [
      `killed 3 workers after ${after} chunks done; ${doneBefore.length} DONE and ${[...before.values()].filter((r) => r.status === 'RUNNING').length} RUNNING at the kill`,
    ],
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---- throttling, 5xx and dropped connections --------------------------------------------

const DYNAMO_FAULTS = [
  'throttle',
  'provisioned',
  'server-error',
  'drop-before',
  'drop-after',
] as const;
const S3_FAULTS = ['slowdown', 'server-error', 'drop-before', 'drop-after'] as const;

export async function networkFaults(
  c: CloudContext,
  trial: number,
  service: 'dynamodb' | 's3',
  rate: number,
): Promise<Trial> {
  const t0 = Date.now();
  const job = await submitJob(c.lab, `net-${service}-${trial}`);
  const random = (label: string) => ({
    rng: Rng.for(c.seed, 'net', service, trial, label),
    rate,
    faults: service === 'dynamodb' ? DYNAMO_FAULTS : S3_FAULTS,
  });
  const workers = await Promise.all(
    [1, 2].map((i) =>
      spawnWorker(c.lab, job.jobId, { name: `net-${i}`, [service]: { random: random(`w${i}`) } }),
    ),
  );
  await reap(workers, 180_000);
  // The tail of the pipeline (verify, blend, finalize) through the same kind of faults.
  const proxy = new FaultProxy({
    service,
    upstream: service === 'dynamodb' ? c.lab.ddb.endpoint : c.lab.s3.endpoint,
    random: random('steps'),
  });
  const endpoint = await proxy.start();
  const env = workerEnv(
    c.lab,
    service === 's3' ? endpoint : c.lab.s3.endpoint,
    service === 'dynamodb' ? endpoint : c.lab.ddb.endpoint,
  );
  const s3 = makeS3Client(env, { credentials: EMULATOR_CREDENTIALS });
  const ddb = new DynamoDBClient({
    ...dynamoClientConfig(env),
    credentials: { accessKeyId: 'tesseratest', secretAccessKey: 'tesseratest' },
  });
  const deps: CloudDeps = {
    ...cloudDeps(
      {
        table: c.lab.table,
        bucket: c.lab.bucket,
        allowedBuckets: [],
        stateMachineArn: undefined,
        maxChunks: undefined,
        maxRounds: 3,
      },
      { s3, ledger: new DynamoLedger({ client: ddb, table: c.lab.table }) },
    ),
  };
  registerS3(s3);
  let row: Row;
  try {
    row = await finishAndCheck(c, job, workers, deps);
  } finally {
    registerS3(c.lab.s3.client);
    s3.destroy();
    ddb.destroy();
    await proxy.stop();
  }
  const proxies = [...workers.flatMap((w) => w.proxies), proxy];
  const byKind = new Map<string, number>();
  let requests = 0;
  for (const p of proxies) {
    requests += p.stats.requests;
    for (const [k, n] of Object.entries(p.stats.faults)) byKind.set(k, (byKind.get(k) ?? 0) + n);
  }
  const injected = [...byKind.values()].reduce((a, b) => a + b, 0);
  const failedWorkers = workers.filter((w) =>
    w.lines.every((l) => l.message !== 'worker finished'),
  );
  return {
    ...row,
    row:
      service === 'dynamodb'
        ? `DynamoDB throttling/5xx/drops at ${Math.round(rate * 100)}%`
        : `S3 SlowDown/5xx/drops at ${Math.round(rate * 100)}%`,
    path: 'cloud',
    injected,
    violations: failedWorkers.map((w) => `${w.name} did not finish: ${w.raw().slice(-300)}`),
    notes: [
      `${injected} of ${requests} requests faulted: ${[...byKind]
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k} ${n}`)
        .join(', ')}`,
    ],
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---- clocks that disagree ----------------------------------------------------------------

export async function clockSkew(c: CloudContext, trial: number, beyond: boolean): Promise<Trial> {
  const rng = Rng.for(c.seed, 'clock', beyond ? 'beyond' : 'within', trial);
  const offsets = beyond
    ? [rng.int(8000, 12_000), 0]
    : [rng.int(1000, 3000), -rng.int(1000, 3000), 0];
  const t0 = Date.now();
  const job = await submitJob(c.lab, `clock-${beyond ? 'b' : 'w'}-${trial}`);
  const workers = await Promise.all(
    offsets.map((ms, i) =>
      spawnWorker(c.lab, job.jobId, {
        name: `clock${ms >= 0 ? '+' : ''}${ms}-${i}`,
        env: { TESSERA_CLOCK_OFFSET_MS: String(ms) },
      }),
    ),
  );
  await reap(workers, 180_000);
  const row = await finishAndCheck(c, job, workers);
  const violations =
    !beyond && row.dupLive > 0
      ? [
          `${row.dupLive} lease(s) lost with clocks only ${offsets.join('/')} ms apart (within SKEW_MS)`,
        ]
      : [];
  return {
    ...row,
    row: beyond
      ? 'clock 8-12 s ahead (beyond SKEW_MS 5 s)'
      : 'clocks ±1-3 s apart (within SKEW_MS)',
    path: 'cloud',
    injected: offsets.filter((o) => o !== 0).length,
    violations,
    notes: [`offsets ${offsets.join(', ')} ms; ${row.dupLive} live lease(s) taken over`],
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---- a lease that expires while its owner is alive: fencing -----------------------------

export async function staleOwner(c: CloudContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'fencing', trial);
  // Where the owner stalls: inside inference (a seeded moment after its k-th claim); with
  // its chunk inferred and its first write on the wire (held by the proxy, sent on waking);
  // or with a successful heartbeat's answer on the wire (it reads it only on waking, ten
  // seconds late, and must not take it for a fresh confirmation of its lease).
  const at = (['before-write', 'mid-inference', 'heartbeat-in-flight'] as const)[trial % 3]!;
  const k = rng.int(1, 2);
  const delayMs = rng.int(0, 100);
  const t0 = Date.now();
  const job = await submitJob(c.lab, `fence-${trial}`);
  let resumedAt = Number.POSITIVE_INFINITY;
  let stoppedAt: number | undefined;
  let proc: WorkerProc | undefined;
  const lateWrites: string[] = [];
  const lateCompletes: number[] = [];
  let claimed = 0;
  const stop = (): void => {
    if (stoppedAt !== undefined) return;
    proc?.kill('SIGSTOP');
    stoppedAt = Date.now();
  };
  const victim = await spawnWorker(c.lab, job.jobId, {
    name: 'stale-owner',
    s3: {
      rule: (r) => {
        // A chunk's writes (its output blocks and seam partials), not the array metadata.
        const chunkWrite = r.method === 'PUT' && /\/partials\/|\/0\/c\//.test(r.target);
        if (at !== 'before-write' || !chunkWrite || Date.now() >= resumedAt) return undefined;
        if (stoppedAt === undefined) setImmediate(stop);
        return 'hold';
      },
      onRequest: (r: ProxiedRequest) => {
        if (r.method === 'PUT' && Date.now() >= resumedAt) lateWrites.push(r.target);
      },
    },
    dynamodb: {
      onRequest: (r: ProxiedRequest) => {
        if (r.ledger?.op === 'complete' && Date.now() >= resumedAt)
          lateCompletes.push(r.ledger.index ?? -1);
      },
      // A machine waking from a stall often has a slow network too: its first ledger calls
      // take 1.5 s, so what it does before hearing its lease is gone is what it does unfenced.
      delayMs: () => (Date.now() >= resumedAt && Date.now() < resumedAt + 3000 ? 1500 : 0),
      beforeReply: (r) => {
        if (at === 'heartbeat-in-flight' && claimed >= k && r.ledger?.op === 'heartbeat') stop();
      },
    },
  });
  proc = victim;
  victim.onLine((l) => {
    if (l.type !== 'claimed' || ++claimed !== k || at !== 'mid-inference') return;
    setTimeout(stop, delayMs);
  });
  await until(() => stoppedAt !== undefined || !victim.alive(), 120_000, 'the victim to claim');
  // What the stalled owner holds, from the ledger (its stdout may still be in the pipe).
  const owner = String(victim.lines.find((l) => typeof l.owner === 'string')?.owner ?? '');
  const held = new Set<string>();
  for await (const r of c.lab.deps.ledger.list(job.jobId, 'RUNNING'))
    if (r.owner === owner || owner === '') held.add(r.chunkId);
  const helper = await spawnWorker(c.lab, job.jobId, { name: 'helper' });
  // The helper takes the stalled owner's chunks once their leases expire and finishes the
  // whole job; only then does the owner wake, so nothing is left it could rightly claim and
  // every write it makes from here on is a stale one.
  await reap([helper], 120_000);
  resumedAt = Date.now();
  victim.kill('SIGCONT');
  // A write already on the wire when the owner stalled lands when it wakes: no lease check
  // can stop that (S3 has no fencing token). Writes it starts after waking are the gap.
  const inFlight = (await Promise.all(victim.proxies.map((p) => p.releaseHeld()))).reduce(
    (a, b) => a + b,
    0,
  );
  await reap([victim], 120_000);
  const row = await finishAndCheck(c, job, [victim, helper]);
  const violations: string[] = [];
  for (const r of row.rows)
    if (held.has(r.chunkId) && r.owner === owner)
      violations.push(`the stale owner completed chunk ${r.chunkId}`);
  const heldIndex = new Set(row.rows.filter((r) => held.has(r.chunkId)).map((r) => r.index));
  const staleCompleteTries = lateCompletes.filter((i) => heldIndex.has(i)).length;
  const lost = victim.lines.filter((l) => l.type === 'lease-lost').length;
  if (stoppedAt !== undefined && lost === 0)
    violations.push('the stale owner never noticed it lost its lease');
  const staleChunkWrites = lateWrites.filter((key) =>
    [...held].some((id) => key.endsWith(`/${id}.bin`)),
  );
  // The object store cannot check a fencing token, so one write whose lease check came
  // just before the stall can still go out on waking (writes go one at a time). Any
  // further write means the owner wrote after it could have known its lease was gone.
  if (lateWrites.length > 1)
    violations.push(
      `the stale owner started ${lateWrites.length} write(s) after its lease was taken over (identical bytes, but unfenced): ${lateWrites.slice(0, 4).join(', ')}`,
    );
  return {
    ...row,
    row: 'lease expires while owner alive (SIGSTOP/SIGCONT)',
    path: 'cloud',
    injected: stoppedAt === undefined ? 0 : 1,
    violations,
    notes: [
      `stalled ${at}${at === 'mid-inference' ? ` (claim ${k} +${delayMs} ms)` : ''}, holding ${held.size} chunk(s) for ${resumedAt - (stoppedAt ?? resumedAt)} ms; after waking: ${lost} lease-lost, ${staleCompleteTries} refused complete(s), ${inFlight} in-flight write(s) landed, ${lateWrites.length} new PUT(s) (${staleChunkWrites.length} of them partials of the lost chunks, identical bytes)`,
    ],
    seconds: (Date.now() - t0) / 1000,
  };
}

// ---- duplicate and out-of-order S3 events; a manifest re-uploaded mid-run ---------------

function eventFor(loc: ManifestLocation & { eTag?: string }): S3Event {
  return {
    Records: [
      {
        eventName: 'ObjectCreated:Put',
        s3: {
          bucket: { name: loc.bucket },
          object: {
            key: encodeURIComponent(loc.key).replace(/%2F/g, '/'),
            eTag: loc.eTag ?? '',
            ...(loc.versionId ? { versionId: loc.versionId } : {}),
          },
        },
      },
    ],
  } as unknown as S3Event;
}

function depsWithStarts(c: CloudContext): { deps: CloudDeps; names: string[] } {
  const names: string[] = [];
  const taken = new Set<string>();
  return {
    names,
    deps: {
      ...c.lab.deps,
      startExecution: async (name: string, _input: PipelineInput) => {
        names.push(name);
        const alreadyExists = taken.has(name);
        taken.add(name);
        return alreadyExists
          ? { alreadyExists }
          : { executionArn: `arn:aws:states:::execution:tessera:${name}`, alreadyExists };
      },
    },
  };
}

/**
 * Delivers an event as S3's asynchronous Lambda invocation does: a function error is
 * retried, twice. (s3rver overwrites objects in place, so a status.json read while a
 * concurrent duplicate rewrites it can come back torn, which real S3 never returns; the
 * retry is what a torn read costs here.)
 */
async function deliver(
  deps: CloudDeps,
  event: S3Event,
  retried: { n: number },
): ReturnType<typeof handleManifestCreated> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await handleManifestCreated(deps, manifestLocations(event));
    } catch (e) {
      if (attempt >= 3) throw e;
      retried.n++;
    }
  }
}

const acceptedIds = (outcomes: Awaited<ReturnType<typeof handleManifestCreated>>): string[] =>
  outcomes.map((o) =>
    o.kind === 'accepted' ? o.jobId : o.kind === 'planned' ? o.result.jobId : 'rejected',
  );

export async function duplicateEvents(c: CloudContext, trial: number): Promise<Trial> {
  const rng = Rng.for(c.seed, 'events', trial);
  const copies = rng.int(2, 5);
  const t0 = Date.now();
  const name = `evt-${trial}`;
  const { deps, names } = depsWithStarts(c);
  const loc = await uploadManifest(c.lab, `manifests/${name}.json`, manifestFor(c.lab, name));
  const events = rng.shuffle(Array.from({ length: copies }, () => eventFor(loc)));
  const retried = { n: 0 };
  const outcomes = (await Promise.all(events.map((e) => deliver(deps, e, retried)))).flat();
  const ids = new Set(acceptedIds(outcomes));
  const violations: string[] = [];
  if (ids.size !== 1)
    violations.push(`${copies} copies of one event made jobs ${[...ids].join(', ')}`);
  if (new Set(names).size !== 1) violations.push(`execution names ${names.join(', ')}`);
  // One execution's Plan task, retried (a Lambda retry, a redriven execution): one job.
  // Retries follow each other; one execution per job id keeps Plan tasks from overlapping.
  const plans = [await planFromManifest(deps, loc), await planFromManifest(deps, loc)];
  const created = plans.filter((p) => p.kind === 'planned' && p.created).length;
  if (created !== 1) violations.push(`a retried Plan task reported created ${created} times`);
  const first = plans[0]!;
  if (first.kind !== 'planned') throw new Error('not planned');
  const job: SubmittedJob = {
    jobId: first.result.jobId,
    name,
    chunks: first.result.chunks,
    seamBlocks: first.result.seamBlocks,
    blendItemsKey: first.result.blendItemsKey,
  };
  const workers = await Promise.all(
    [1, 2].map((i) => spawnWorker(c.lab, job.jobId, { name: `evt-${i}` })),
  );
  // Late duplicates, delivered while the job runs and out of order with each other.
  let late = 0;
  workers[0]!.onLine((l) => {
    if (l.type === 'done' && late++ === 0)
      void Promise.all(
        rng.shuffle([eventFor(loc), eventFor(loc)]).map((e) =>
          deliver(deps, e, retried).then((o) => {
            for (const id of acceptedIds(o))
              if (id !== job.jobId) violations.push(`late event made ${id}`);
          }),
        ),
      );
  });
  await reap(workers, 120_000);
  const row = await finishAndCheck(c, job, workers);
  return {
    ...row,
    row: 'duplicate + out-of-order S3 events',
    path: 'cloud',
    injected: copies + 2 + 1,
    violations,
    notes: [
      `${copies} concurrent copies, a retried Plan task, 2 late copies mid-run: ${ids.size} job, ${new Set(names).size} execution name; ${retried.n} invocation(s) retried`,
    ],
    seconds: (Date.now() - t0) / 1000,
  };
}

/**
 * A manifest re-uploaded while its job runs: the same bytes again (must be the same
 * job), then an edited one (a new job) with a stale event of the old one arriving after
 * it. The running job's frozen manifest must not change, and its output must stay its
 * own: the edited job names the same output.url, so planning it is refused (the ledger's
 * output claim); were it planned, its workers would run on that output.
 */
export async function reupload(c: CloudContext, trial: number): Promise<Trial[]> {
  const t0 = Date.now();
  const name = `re-${trial}`;
  const { deps, names } = depsWithStarts(c);
  const body = manifestFor(c.lab, name);
  const key = `manifests/${name}.json`;
  const v1 = await uploadManifest(c.lab, key, body);
  const [a] = await handleManifestCreated(deps, manifestLocations(eventFor(v1)));
  const p1 = await planFromManifest(deps, v1);
  if (a?.kind !== 'accepted' || p1.kind !== 'planned') throw new Error('v1 not planned');
  const job1: SubmittedJob = {
    jobId: p1.result.jobId,
    name,
    chunks: p1.result.chunks,
    seamBlocks: p1.result.seamBlocks,
    blendItemsKey: p1.result.blendItemsKey,
  };
  const violations: string[] = [];
  const workers1 = await Promise.all(
    [1, 2].map((i) => spawnWorker(c.lab, job1.jobId, { name: `re-v1-${i}` })),
  );
  let job2: SubmittedJob | undefined;
  let workers2: WorkerProc[] = [];
  let step: Promise<void> = Promise.resolve();
  let dones = 0;
  workers1[0]!.onLine((l) => {
    if (l.type !== 'done' || dones++ !== 0) return;
    step = (async () => {
      // The same bytes again: S3 gives the same ETag, so the same job.
      const same = await uploadManifest(c.lab, key, body);
      const ids = acceptedIds(await handleManifestCreated(deps, manifestLocations(eventFor(same))));
      if (ids.some((id) => id !== job1.jobId))
        violations.push(`re-uploading identical bytes made job ${ids.join(', ')}`);
      // An edit: a new job. v1's event arrives again, late, after v2 replaced the object.
      const v2 = await uploadManifest(c.lab, key, { ...body, blend: 'bump' });
      const out = [
        ...(await handleManifestCreated(deps, manifestLocations(eventFor(v2)))),
        ...(await handleManifestCreated(deps, manifestLocations(eventFor(v1)))),
      ];
      const ids2 = new Set(acceptedIds(out));
      if (ids2.size !== 1 || ids2.has(job1.jobId))
        violations.push(`the edit and the stale event made jobs ${[...ids2].join(', ')}`);
      // Refusing the edit while the first job owns the same output is the right answer
      // (OutputClaimedError: two jobs never share an output).
      const p2 = await planFromManifest(deps, v2).catch((e: unknown) => {
        if (e instanceof OutputClaimedError) return undefined;
        throw e;
      });
      if (p2?.kind !== 'planned') return;
      job2 = {
        jobId: p2.result.jobId,
        name,
        chunks: p2.result.chunks,
        seamBlocks: p2.result.seamBlocks,
        blendItemsKey: p2.result.blendItemsKey,
      };
      workers2 = [await spawnWorker(c.lab, job2.jobId, { name: 're-v2' })];
    })();
  });
  await reap(workers1, 120_000);
  await step;
  await reap(workers2, 120_000);
  const frozen = JSON.parse(
    new TextDecoder().decode(await c.lab.deps.bucketStore.get(`/jobs/${job1.jobId}/manifest.json`)),
  ) as { manifest: { blend: string } };
  if (frozen.manifest.blend !== 'gaussian')
    violations.push(`job 1's frozen manifest changed to blend ${frozen.manifest.blend}`);
  // Both executions run to their ends, in the order they were started.
  const row1 = await finishAndCheck(c, job1, workers1);
  const out: Trial[] = [
    {
      ...row1,
      row: 'manifest re-uploaded while its job runs',
      path: 'cloud',
      injected: 3,
      violations,
      notes: [
        `executions started: ${new Set(names).size}; edited job ${job2 ? `planned (${job2.jobId}) and run on the same output.url` : 'refused'}`,
      ],
      seconds: (Date.now() - t0) / 1000,
    },
  ];
  if (job2) {
    let outcome2: string;
    try {
      outcome2 = await finishJob(c.lab, job2);
    } catch (e) {
      outcome2 = `ERROR ${(e as Error).message.split('\n')[0]}`;
    }
    // Job 1's output, re-read after job 2 finished writing the same array.
    const again = await checkJob(c.lab, job1, row1.outcome);
    const second = await checkJob(c.lab, job2, outcome2, 'bump');
    out[0]!.divergent = Math.max(row1.divergent, again.divergent);
    out[0]!.equal = again.equal;
    out[0]!.notes.push(
      `after the edited job finished: job 1 output ${again.divergent}/${job1.chunks} chunks differ from its reference; job 2 ${second.divergent}/${job2.chunks}`,
    );
  }
  return out;
}

// ---- blend or finalize killed mid-way and re-run -----------------------------------------

const TSX = pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href;
const STEP_CHILD = new URL('./step-child.ts', import.meta.url).pathname;

async function runStepChild(
  c: CloudContext,
  args: string[],
  killAtPut: number | undefined,
): Promise<{ landed: boolean; puts: number; finished: boolean }> {
  let puts = 0;
  let landed = false;
  let child: ReturnType<typeof spawn> | undefined;
  const proxy = new FaultProxy({
    service: 's3',
    upstream: c.lab.s3.endpoint,
    rule: (r) => {
      if (landed) return 'hold';
      if (r.method !== 'PUT') return undefined;
      puts++;
      if (killAtPut !== undefined && puts === killAtPut) {
        landed = true;
        setImmediate(() => child?.kill('SIGKILL'));
        return 'hold';
      }
      return undefined;
    },
  });
  const endpoint = await proxy.start();
  child = spawn(process.execPath, ['--import', TSX, STEP_CHILD, ...args], {
    env: workerEnv(c.lab, endpoint, c.lab.ddb.endpoint),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (b: Buffer) => (out += b.toString()));
  child.stderr!.on('data', (b: Buffer) => (out += b.toString()));
  await new Promise((resolve) => child!.once('exit', resolve));
  await proxy.stop();
  const finished = out.includes('"finished":true');
  if (!landed && !finished) throw new Error(`step child failed: ${out.slice(-500)}`);
  return { landed, puts, finished };
}

export interface StepsJob {
  job: SubmittedJob;
  blendPuts: number;
  finalizePuts: number;
  /** sha256 of every object finalize writes byte-identically (metadata, pyramid). */
  golden: Map<string, string>;
}

const sha = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** One job run to completion once; every trial then breaks and re-runs its tail. */
export async function prepareStepsJob(c: CloudContext): Promise<StepsJob> {
  const job = await submitJob(c.lab, 'steps', {
    output: {
      url: `s3://${c.lab.bucket}/outputs/steps.zarr`,
      dtype: 'float32',
      blockShape: [7, 12, 12],
      pyramid: 1,
    },
  });
  // Workers that assemble no shard (as if each died between completing and assembling),
  // so that every shard is the Blend step's: the tail these trials break.
  const ws = await Promise.all(
    [1, 2].map((i) =>
      spawnWorker(c.lab, job.jobId, { name: `st-${i}`, env: { [ENV.seamBlend]: 'off' } }),
    ),
  );
  await reap(ws, 120_000);
  // Verify writes the leftover shards as the Blend Map's items.
  const verified = await verifyStep(c.lab.deps, { jobId: job.jobId, round: 1 });
  if (verified.status !== 'COMPLETE' || !verified.blendItemCount)
    throw new Error(`steps job: verify left nothing to blend (${JSON.stringify(verified)})`);
  const blend = await runStepChild(c, ['blend', job.blendItemsKey], undefined);
  const fin = await runStepChild(c, ['finalize', job.jobId], undefined);
  return {
    job,
    blendPuts: blend.puts,
    finalizePuts: fin.puts,
    golden: await finalizeObjects(c, job),
  };
}

async function finalizeObjects(c: CloudContext, job: SubmittedJob): Promise<Map<string, string>> {
  const store = new S3Store({
    client: c.lab.s3.client,
    bucket: c.lab.bucket,
    prefix: `outputs/${job.name}.zarr`,
  });
  const out = new Map<string, string>();
  for await (const key of store.list('/')) {
    // Level 0 is blend's and the workers'; report.* carry timings and so change every run.
    if (key.startsWith('/0/') || key.startsWith('/report')) continue;
    const bytes = await store.get(key);
    if (bytes) out.set(key, sha(bytes));
  }
  return out;
}

export async function stepKilled(
  c: CloudContext,
  trial: number,
  prepared: StepsJob,
  step: 'blend' | 'finalize',
): Promise<Trial> {
  const rng = Rng.for(c.seed, 'steps', step, trial);
  const t0 = Date.now();
  const { job } = prepared;
  const store = new S3Store({
    client: c.lab.s3.client,
    bucket: c.lab.bucket,
    prefix: `outputs/${job.name}.zarr`,
  });
  if (step === 'blend') {
    // Back to "workers done, nothing blended": every level-0 object is a shard the Blend
    // step assembled (the workers assembled none), so all of them go.
    const level0: string[] = [];
    for await (const key of store.list('/0/c/')) level0.push(key);
    for (const key of level0) await store.delete(key as `/${string}`);
  }
  const total = step === 'blend' ? prepared.blendPuts : prepared.finalizePuts;
  // The last PUTs may vary between runs (finalize writes what changed); aim inside them.
  const killAt = rng.int(1, Math.max(1, total - 1));
  const run = await runStepChild(
    c,
    step === 'blend' ? ['blend', job.blendItemsKey] : ['finalize', job.jobId],
    killAt,
  );
  // The re-run (a Map item retry, a re-driven execution) and the rest of the tail.
  const outcome = await finishJob(c.lab, job);
  const row = await checkJob(c.lab, job, outcome);
  const violations: string[] = [];
  const objects = await finalizeObjects(c, job);
  for (const [key, hash] of prepared.golden)
    if (objects.get(key) !== hash) violations.push(`${key} differs from a clean finalize`);
  const report = await store.get('/report.json');
  const status =
    report && (JSON.parse(new TextDecoder().decode(report)) as { status?: string }).status;
  if (status !== 'SUCCEEDED') violations.push(`report.json says ${status ?? 'nothing'}`);
  return {
    ...fromOutcome(row, []),
    row: step === 'blend' ? 'blend step SIGKILLed, re-run' : 'finalize step SIGKILLed, re-run',
    path: 'cloud',
    injected: run.landed ? 1 : 0,
    reinferred: 0,
    violations,
    notes: [`killed at PUT ${killAt} of ${total}${run.landed ? '' : ' (NOT REACHED)'}`],
    seconds: (Date.now() - t0) / 1000,
  };
}
