// Progress for long runs: a redrawn bar on a terminal, plain lines otherwise (CI logs,
// pipes), at most one plain line every few seconds.

export interface ProgressState {
  done: number;
  total: number;
  failed: number;
  voxels: number;
}

/**
 * No ETA before this: a rate measured over the first moments (one chunk finished a few
 * milliseconds after the display started, or none yet) extrapolates to nonsense.
 */
export const ETA_AFTER_MS = 3000;
/** The smoothed rate's time constant: recent chunks count most, one slow chunk does not jump it. */
const RATE_TIME_CONSTANT_MS = 30_000;

export interface ProgressOptions {
  quiet?: boolean;
  /** Milliseconds since some epoch; tests pass a fake clock. */
  now?: () => number;
}

export class Progress {
  private lastPlain = Number.NEGATIVE_INFINITY;
  private readonly quiet: boolean;
  private readonly now: () => number;
  /** The first update: where this display's rates are measured from. */
  private start: { t: number; done: number; voxels: number } | undefined;
  /** The last update with more chunks done than the one before. */
  private last: { t: number; done: number; voxels: number } | undefined;
  /** Chunks and voxels per millisecond, exponentially smoothed; undefined until measured. */
  private rate: { chunks: number; voxels: number } | undefined;

  constructor(
    private readonly out: NodeJS.WriteStream | { write(s: string): boolean; isTTY?: boolean },
    private readonly label: string,
    o: ProgressOptions = {},
  ) {
    this.quiet = o.quiet ?? false;
    this.now = o.now ?? Date.now;
  }

  update(s: ProgressState, force = false): void {
    if (this.quiet) return;
    const t = this.now();
    this.measure(s, t);
    const frac = s.total === 0 ? 1 : s.done / s.total;
    const eta = this.etaSeconds(s);
    const rate = this.rate ? formatRate(this.rate.voxels * 1000) : 'measuring';
    const text = `${this.label} ${s.done}/${s.total} chunks${s.failed ? ` (${s.failed} failed attempts)` : ''} · ${rate} · ETA ${eta === undefined ? '--' : formatSeconds(eta)}`;
    if (this.out.isTTY) {
      const width = 24;
      const fill = Math.round(frac * width);
      this.out.write(`\r[${'#'.repeat(fill)}${'.'.repeat(width - fill)}] ${text}\x1b[K`);
    } else if (force || t - this.lastPlain > 5000) {
      this.lastPlain = t;
      this.out.write(`${text}\n`);
    }
  }

  /**
   * Seconds left, from the smoothed chunk rate; undefined while there is no rate (no chunk
   * finished since the display started, or fewer than ETA_AFTER_MS ago) or nothing is left.
   */
  etaSeconds(s: ProgressState): number | undefined {
    const left = s.total - s.done;
    if (this.rate === undefined || this.rate.chunks <= 0 || left <= 0) return undefined;
    return left / this.rate.chunks / 1000;
  }

  private measure(s: ProgressState, t: number): void {
    // Chunks finished before the display started (a resumed run, a watch joining late)
    // are not this display's rate.
    this.start ??= { t, done: s.done, voxels: s.voxels };
    const { start } = this;
    if (s.done <= (this.last?.done ?? start.done)) return;
    if (t - start.t < ETA_AFTER_MS) {
      this.last = { t, done: s.done, voxels: s.voxels };
      return;
    }
    if (this.rate === undefined) {
      // The first rate: the average since the display started.
      const ms = t - start.t;
      this.rate = { chunks: (s.done - start.done) / ms, voxels: (s.voxels - start.voxels) / ms };
    } else {
      const prev = this.last ?? start;
      const ms = Math.max(1, t - prev.t);
      const a = 1 - Math.exp(-ms / RATE_TIME_CONSTANT_MS);
      this.rate = {
        chunks: this.rate.chunks + a * ((s.done - prev.done) / ms - this.rate.chunks),
        voxels: this.rate.voxels + a * ((s.voxels - prev.voxels) / ms - this.rate.voxels),
      };
    }
    this.last = { t, done: s.done, voxels: s.voxels };
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
