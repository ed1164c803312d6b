// Progress for long runs: a redrawn bar on a terminal, plain lines otherwise (CI logs,
// pipes), at most one plain line every few seconds.

export interface ProgressState {
  done: number;
  total: number;
  failed: number;
  voxels: number;
}

export class Progress {
  private lastPlain = 0;
  private readonly t0 = Date.now();
  private startVoxels = -1;

  constructor(
    private readonly out: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean },
    private readonly label: string,
    private readonly quiet = false,
  ) {}

  update(s: ProgressState, force = false): void {
    if (this.quiet) return;
    if (this.startVoxels < 0) this.startVoxels = s.voxels;
    // Where this display started, taken on the first update (not the first ETA): a
    // watch that starts at 0 done must not measure its first chunks against themselves.
    this.firstFrac ??= s.total === 0 ? 0 : s.done / s.total;
    const secs = Math.max(1e-3, (Date.now() - this.t0) / 1000);
    const rate = (s.voxels - this.startVoxels) / secs;
    const frac = s.total === 0 ? 1 : s.done / s.total;
    const eta =
      frac > 0 && frac < 1 ? (secs / Math.max(1e-9, frac - this.startFrac(s))) * (1 - frac) : 0;
    const text = `${this.label} ${s.done}/${s.total} chunks${s.failed ? ` (${s.failed} failed attempts)` : ''} · ${formatRate(rate)} · ETA ${formatSeconds(eta)}`;
    if (this.out.isTTY) {
      const width = 24;
      const fill = Math.round(frac * width);
      this.out.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text}\x1b[K`);
    } else if (force || Date.now() - this.lastPlain > 5000) {
      this.lastPlain = Date.now();
      this.out.write(`${text}\n`);
    }
  }

  private firstFrac: number | undefined;
  private startFrac(s: ProgressState): number {
    if (this.firstFrac === undefined) this.firstFrac = s.total === 0 ? 0 : s.done / s.total;
    return this.firstFrac;
  }

  end(): void {
    if (!this.quiet && this.out.isTTY) this.out.write('\n');
  }
}

export function formatRate(voxelsPerSecond: number): string {
  if (voxelsPerSecond >= 1e9) return `${(voxelsPerSecond / 1e9).toFixed(2)} Gvox/s`;
  if (voxelsPerSecond >= 1e6) return `${(voxelsPerSecond / 1e6).toFixed(2)} Mvox/s`;
  return `${(voxelsPerSecond / 1e3).toFixed(1)} kvox/s`;
}

export function formatSeconds(s: number): string {
  if (!Number.isFinite(s) || s <= 0) return '--';
  if (s < 90) return `${Math.round(s)}s`;
  if (s < 5400) return `${Math.round(s / 60)}m`;
  return `${(s / 3600).toFixed(1)}h`;
}
