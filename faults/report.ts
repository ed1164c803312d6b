// The fault matrix's table (terminal and Markdown) and faults/RESULTS.md.

import { writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { passed, type Row, type Trial } from './trial.ts';

export interface MatrixRun {
  seed: number;
  trials: number | undefined;
  command: string;
  startedAt: Date;
  seconds: number;
  rows: Row[];
}

interface Cells {
  fault: string;
  path: string;
  trials: string;
  injected: string;
  outcome: string;
  lost: string;
  reinferred: string;
  dupLive: string;
  divergent: string;
  equal: string;
  ok: string;
}

const HEAD: Cells = {
  fault: 'fault',
  path: 'path',
  trials: 'trials',
  injected: 'injected',
  outcome: 'job outcome',
  lost: 'lost',
  reinferred: 're-inferred',
  dupLive: 'dup (live)',
  divergent: 'divergent',
  equal: '= reference',
  ok: 'ok',
};

const sum = (ts: Trial[], f: (t: Trial) => number): number => ts.reduce((a, t) => a + f(t), 0);

function outcomeCell(ts: Trial[]): string {
  const counts = new Map<string, number>();
  for (const t of ts) {
    const k = t.outcome === t.expected ? t.outcome : `${t.outcome} (want ${t.expected})`;
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return [...counts].map(([k, n]) => `${n}/${ts.length} ${k}`).join(', ');
}

export function cells(r: Row): Cells {
  const ts = r.trials;
  const applicable = ts.filter((t) => t.equal !== undefined);
  return {
    fault: r.row,
    path: r.path,
    trials: String(ts.length),
    injected: String(sum(ts, (t) => t.injected)),
    outcome: outcomeCell(ts),
    lost: String(sum(ts, (t) => t.lost)),
    reinferred: String(sum(ts, (t) => t.reinferred)),
    dupLive: String(sum(ts, (t) => t.dupLive)),
    divergent: String(sum(ts, (t) => t.divergent)),
    equal:
      applicable.length === 0
        ? 'n/a (must fail)'
        : `${applicable.filter((t) => t.equal).length}/${applicable.length}`,
    ok: ts.every(passed) ? 'yes' : 'NO',
  };
}

export function textTable(rows: Row[]): string {
  const all = [HEAD, ...rows.map(cells)];
  const keys = Object.keys(HEAD) as (keyof Cells)[];
  const width = Object.fromEntries(
    keys.map((k) => [k, Math.max(...all.map((c) => c[k].length))]),
  ) as Record<keyof Cells, number>;
  const line = (c: Cells): string => keys.map((k) => c[k].padEnd(width[k])).join('  ');
  return [line(HEAD), keys.map((k) => '-'.repeat(width[k])).join('  '), ...all.slice(1).map(line)]
    .map((l) => l.trimEnd())
    .join('\n');
}

function markdownTable(rows: Row[]): string {
  const keys = Object.keys(HEAD) as (keyof Cells)[];
  const esc = (s: string): string => s.replaceAll('|', '\\|');
  return [
    `| ${keys.map((k) => HEAD[k]).join(' | ')} |`,
    `| ${keys.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => {
      const c = cells(r);
      return `| ${keys.map((k) => esc(c[k])).join(' | ')} |`;
    }),
  ].join('\n');
}

export function failures(rows: Row[]): string[] {
  const out: string[] = [];
  for (const r of rows)
    r.trials.forEach((t, i) => {
      if (passed(t)) return;
      const why = [
        ...(t.outcome !== t.expected ? [`outcome ${t.outcome}, expected ${t.expected}`] : []),
        ...(t.lost > 0 ? [`${t.lost} chunk(s) lost`] : []),
        ...(t.divergent > 0 ? [`${t.divergent} chunk(s) divergent`] : []),
        ...(t.equal === false && t.lost === 0 && t.divergent === 0 ? ['output != reference'] : []),
        ...t.violations,
      ];
      out.push(`${r.row} #${i + 1}: ${why.join('; ')}`);
    });
  return out;
}

export function writeResults(path: string, run: MatrixRun): void {
  const failed = failures(run.rows);
  const trials = run.rows.reduce((n, r) => n + r.trials.length, 0);
  const injected = run.rows.reduce((n, r) => n + sum(r.trials, (t) => t.injected), 0);
  const lost = run.rows.reduce((n, r) => n + sum(r.trials, (t) => t.lost), 0);
  const divergent = run.rows.reduce((n, r) => n + sum(r.trials, (t) => t.divergent), 0);
  const md = `# Fault matrix results

Written by \`${run.command}\` on ${run.startedAt.toISOString()}; seed ${run.seed}${
    run.trials === undefined ? ' (default trial counts)' : `, ${run.trials} trial(s) per fault`
  }; ${run.seconds.toFixed(0)} s on ${availableParallelism()} CPU(s), load average at the end ${loadavg()
    .map((l) => l.toFixed(1))
    .join(' / ')}. Replay a schedule with the same \`--seed\`.

**${trials} trials, ${injected} faults injected: ${lost} chunks lost, ${divergent} divergent; ${
    failed.length === 0 ? 'every trial passed' : `${failed.length} trial(s) FAILED`
  }.**

${markdownTable(run.rows)}

Columns: *trials* jobs (or job tails) run with the fault; *injected* faults that landed
(a kill at its point, an injected error or dropped connection, a signal, a duplicate
event); *lost* chunks not finished or finished without their output; *re-inferred*
chunks claimed more than once (expected after a kill: the dead owner's chunk is done
again); *dup (live)* chunks whose owner was alive when another worker took them over
(lease lost); *divergent* chunks whose output differs from the whole-volume reference by
more than 1e-5 (or, for jobs that must fail, chunks failed or not failed wrongly);
*= reference* trials whose whole output equals the reference. The four SIGKILL rows share
their jobs (each job has one victim per kill point, then a fresh pair of workers finishes
it), so their job-level figures are the same jobs' counted once per row. *ok* is "no":
a lost or divergent chunk, a wrong outcome, or a scenario check that failed (listed below).
${failed.length > 0 ? `\n## Failed trials\n\n${failed.map((f) => `- ${f}`).join('\n')}\n` : ''}
## Per-trial figures

${run.rows
  .map(
    (r) =>
      `### ${r.row} (${r.path})\n\n${r.trials
        .map(
          (t, i) =>
            `- #${i + 1} (${t.seconds.toFixed(1)} s): ${t.outcome}; lost ${t.lost}, re-inferred ${t.reinferred}, dup ${t.dupLive}, divergent ${t.divergent}. ${t.notes.join(' ')}${t.violations.length > 0 ? ` **Violations:** ${t.violations.join('; ')}` : ''}`,
        )
        .join('\n')}`,
  )
  .join('\n\n')}
`;
  // Error messages carry absolute paths; the committed report names files by repo path,
  // and scratch files under the temporary directory as $TMPDIR/...
  const root = fileURLToPath(new URL('..', import.meta.url));
  writeFileSync(path, md.replaceAll(root, '').replaceAll(`${tmpdir()}/`, '$TMPDIR/'));
}
