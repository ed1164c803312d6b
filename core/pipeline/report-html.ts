// report.html: report.json for people. One self-contained file (the preview inlined as
// base64, the charts as inline SVG, no scripts or external assets), so it can be
// mailed, attached to a ticket or opened straight from S3.

import type { Preview } from './preview.ts';
import type { Histogram, RunReport } from './report.ts';

export const REPORT_HTML_KEY = '/report.html';

export function reportHtml(r: RunReport, preview?: Preview): string {
  const rows: [string, string][] = [
    ['job', r.jobId],
    ['status', r.status],
    ['output', r.output],
    ['started', r.startedAt],
    ['finished', r.finishedAt],
    ['seconds', String(round((Date.parse(r.finishedAt) - Date.parse(r.startedAt)) / 1000))],
    [
      'chunks',
      `${r.chunks.DONE} done, ${r.chunks.SKIPPED} skipped, ${r.chunks.FAILED} failed, ` +
        `${r.chunks.PENDING + r.chunks.RUNNING} unfinished, of ${r.chunks.total}`,
    ],
    [
      'patches',
      `${r.patches.inferred} inferred of ${r.patches.total}; margin cropping would infer ${r.patches.marginCroppingWouldInfer}`,
    ],
    [
      'voxels',
      `${r.voxels.region.toLocaleString('en')} in the region, ${rate(r.voxels.perSecond)}`,
    ],
    [
      'blocks',
      `${r.blocks.total} (${r.blocks.owned} written by one chunk, ${r.blocks.seam} blended)`,
    ],
    [
      'attempts',
      `${r.attempts.total} in all; ${r.attempts.retriedChunks} chunk(s) retried, at most ${r.attempts.maxPerChunk} per chunk`,
    ],
    ['workers', `${r.workers} on ${r.device}`],
    ...(r.channels ? [['channels', r.channels.join(', ')] as [string, string]] : []),
    ...(r.normalization
      ? [['model input', normalisationText(r.normalization)] as [string, string]]
      : []),
    [
      'steps (s)',
      Object.entries(r.timings)
        .map(([k, v]) => `${k} ${round(v)}`)
        .join(', ') || '—',
    ],
  ];
  if (r.chunkMs)
    rows.push([
      'per chunk (ms)',
      (['read', 'infer', 'write'] as const)
        .map(
          (k) =>
            `${k} p50 ${r.chunkMs![k].p50} / p95 ${r.chunkMs![k].p95} / max ${r.chunkMs![k].max}`,
        )
        .join('; '),
    ]);
  if (r.levels && r.levels.length > 1)
    rows.push([
      'levels',
      r.levels.map((l) => `${l.path}: ${l.shape.join('×')} (÷${l.factor.join(',')})`).join('; '),
    ]);
  const link = r.viewer?.neuroglancer;

  const failures =
    r.failures.length === 0
      ? ''
      : `<h2>Failed chunks</h2><table>${r.failures
          .map(
            (f) =>
              `<tr><td><code>${esc(f.chunkId)}</code></td><td>${f.attempts} attempt(s)</td><td>${esc(f.lastError ?? 'unknown')}</td></tr>`,
          )
          .join('')}</table>`;

  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>${esc(r.name)} — Tessera report</title>
<style>
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em}
table{border-collapse:collapse}td{padding:.2em .8em .2em 0;vertical-align:top}
td:first-child{color:#666;white-space:nowrap}
.status-SUCCEEDED{color:#070}.status-FAILED{color:#b00}
figure{margin:0}figcaption{color:#666;font-size:.9em}
img{image-rendering:pixelated;max-width:100%;border:1px solid #ccc}
svg text{font:11px system-ui,sans-serif;fill:#444}
</style></head><body>
<h1>${esc(r.name)} <span class="status-${r.status}">${r.status}</span></h1>
<table>${rows.map(([k, v]) => `<tr><td>${esc(k)}</td><td>${esc(v)}</td></tr>`).join('')}
${link ? `<tr><td>view</td><td><a href="${esc(link)}">open in neuroglancer</a></td></tr>` : ''}</table>
${preview ? previewFigure(preview) : ''}
${r.chunkHistogram ? `<h2>Time per chunk</h2>${histogramSvg(r.chunkHistogram, 'ms per chunk (read + infer + write)')}` : ''}
${r.timeline ? `<h2>Chunks finished over time</h2>${timelineSvg(r.timeline)}` : ''}
${failures}
</body></html>
`;
}

function previewFigure(p: Preview): string {
  const src = `data:image/png;base64,${Buffer.from(p.png).toString('base64')}`;
  return `<h2>Preview</h2><figure><img src="${src}" width="${p.width}" height="${p.height}" alt="input and output slices">
<figcaption>Columns: ${p.columns.map(esc).join(', ')}. Rows: z = ${p.depths.join(', ')}.
Area y ${p.area.start[1]}–${p.area.stop[1]}, x ${p.area.start[2]}–${p.area.stop[2]}; one pixel = ${p.voxelsPerPixel}×${p.voxelsPerPixel} voxels (mean), output level ${esc(p.level)}.</figcaption></figure>`;
}

const W = 640;
const H = 200;
const PAD = { l: 44, r: 10, t: 10, b: 34 };

function bars(
  counts: readonly number[],
  labels: (i: number) => string | undefined,
  xTitle: string,
): string {
  const max = Math.max(1, ...counts);
  const iw = W - PAD.l - PAD.r;
  const ih = H - PAD.t - PAD.b;
  const bw = iw / counts.length;
  const rects = counts
    .map((c, i) => {
      const h = (c / max) * ih;
      return `<rect x="${round(PAD.l + i * bw + 1)}" y="${round(PAD.t + ih - h)}" width="${round(Math.max(1, bw - 2))}" height="${round(h)}" fill="#4a7ab8"><title>${c}</title></rect>`;
    })
    .join('');
  const ticks = counts
    .map((_, i) => labels(i))
    .map((t, i) =>
      t === undefined
        ? ''
        : `<text x="${round(PAD.l + i * bw)}" y="${H - PAD.b + 14}" text-anchor="middle">${esc(t)}</text>`,
    )
    .join('');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">
<line x1="${PAD.l}" y1="${PAD.t + ih}" x2="${W - PAD.r}" y2="${PAD.t + ih}" stroke="#999"/>
<text x="${PAD.l - 6}" y="${PAD.t + 10}" text-anchor="end">${max}</text>
<text x="${PAD.l - 6}" y="${PAD.t + ih}" text-anchor="end">0</text>
${rects}${ticks}
<text x="${PAD.l + iw / 2}" y="${H - 4}" text-anchor="middle">${esc(xTitle)}</text></svg>`;
}

export function histogramSvg(h: Histogram, xTitle: string): string {
  const every = Math.max(1, Math.ceil(h.counts.length / 8));
  return bars(h.counts, (i) => (i % every === 0 ? String(h.edges[i]) : undefined), xTitle);
}

function timelineSvg(t: NonNullable<RunReport['timeline']>): string {
  const every = Math.max(1, Math.ceil(t.chunks.length / 8));
  const minutes = t.chunks.length * t.binSeconds >= 180;
  const at = (s: number): string => (minutes ? `${round(s / 60)}m` : `${Math.round(s)}s`);
  return bars(
    t.chunks,
    (i) => (i % every === 0 ? at(i * t.binSeconds) : undefined),
    `chunks finished per ${t.binSeconds} s since ${t.start}`,
  );
}

function rate(v: number): string {
  return v >= 1e6 ? `${(v / 1e6).toFixed(2)} Mvoxels/s` : `${(v / 1e3).toFixed(1)} kvoxels/s`;
}

const round = (v: number): number => Math.round(v * 10) / 10;

function normalisationText(n: NonNullable<RunReport['normalization']>): string {
  const m = n.mapping;
  const formula =
    m.kind === 'range' ? `(v − ${m.low}) / (${m.high} − ${m.low})` : `v · ${m.scale} + ${m.offset}`;
  return `${n.rule}: x = ${formula}${m.clip ? ', clipped to [0, 1]' : ''}; NaN: ${n.nan}`;
}

function esc(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!,
  );
}
