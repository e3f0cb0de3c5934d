/**
 * What the dashboard knows, folded from the `/dashboard` feed: jobs, workers, verification and the throughput
 * samples, from which it derives tasks per second over time and each running job's ETA. No DOM.
 */
import type { ThroughputSample, VerificationView, DashboardSnapshot, WorkerView } from '../../shared/dashboard-protocol.js';
import type { JobView } from '../../shared/protocol.js';

export interface RatePoint { at: number; perSec: number }

/** Throughput is measured over this window for the headline figure and ETAs. */
export const RATE_WINDOW_MS = 60_000;
/** The headline "tasks / s" looks back this far, so it reads as "now". */
export const CURRENT_WINDOW_MS = 20_000;
const MAX_SAMPLES = 600;

export class DashboardState {
  readonly jobs = new Map<string, JobView>();
  workers: WorkerView[] = [];
  verification: VerificationView = { agreement: null, classes: [], jobs: {} };
  samples: ThroughputSample[] = [];
  scope: 'own' | 'all' = 'own';

  applySnapshot(s: DashboardSnapshot): void {
    this.jobs.clear();
    for (const j of s.jobs) this.jobs.set(j.id, j);
    this.workers = s.workers;
    this.verification = s.verification;
    this.samples = s.samples.slice(-MAX_SAMPLES);
    this.scope = s.scope;
  }

  upsertJobs(jobs: JobView[]): void {
    for (const j of jobs) this.jobs.set(j.id, j);
  }

  addSample(s: ThroughputSample): void {
    this.samples.push(s);
    if (this.samples.length > MAX_SAMPLES) this.samples.splice(0, this.samples.length - MAX_SAMPLES);
  }

  /** Running jobs first, then newest first. */
  sortedJobs(): JobView[] {
    return [...this.jobs.values()].sort((a, b) =>
      Number(b.status === 'running') - Number(a.status === 'running') || b.createdAt - a.createdAt);
  }

  /**
   * Tasks finished per second between successive samples, all visible jobs together. A job missing from a
   * sample did not change since its last one, so its last count carries forward.
   */
  throughput(): RatePoint[] {
    const known = new Map<string, number>();
    const out: RatePoint[] = [];
    let prevAt: number | null = null;
    for (const s of this.samples) {
      let delta = 0;
      for (const [id, n] of Object.entries(s.done)) {
        const before = known.get(id);
        if (before !== undefined && n > before) delta += n - before;
        known.set(id, n);
      }
      if (prevAt !== null && s.at > prevAt) out.push({ at: s.at, perSec: (delta * 1000) / (s.at - prevAt) });
      prevAt = s.at;
    }
    return out;
  }

  /** A job's tasks per second over the last `windowMs` of samples; null before two samples span it. */
  jobRate(id: string, windowMs = RATE_WINDOW_MS): number | null {
    const points: { at: number; n: number }[] = [];
    let last: number | undefined;
    for (const s of this.samples) {
      if (s.done[id] !== undefined) last = s.done[id];
      if (last !== undefined) points.push({ at: s.at, n: last });
    }
    const end = points[points.length - 1];
    if (!end) return null;
    const start = points.find((p) => p.at >= end.at - windowMs) ?? points[0]!;
    if (end.at <= start.at) return null;
    return ((end.n - start.n) * 1000) / (end.at - start.at);
  }

  /** Milliseconds until a running job's remaining tasks are done at its recent rate; null when unknown. */
  eta(id: string): number | null {
    const job = this.jobs.get(id);
    if (!job || job.status !== 'running') return null;
    const rate = this.jobRate(id);
    if (!rate || rate <= 0) return null;
    const remaining = job.tasks.total - job.tasks.done - job.tasks.failed;
    return remaining <= 0 ? 0 : (remaining / rate) * 1000;
  }

  /**
   * Every visible job together, tasks per second over the last `windowMs` up to the latest sample (or
   * since the first sample, when that is more recent); falls to 0 once the work stops.
   */
  currentRate(windowMs = CURRENT_WINDOW_MS): number | null {
    const totals = this.totals();
    const end = totals[totals.length - 1];
    if (!end || totals.length < 2) return null;
    const from = [...totals].reverse().find((t) => t.at <= end.at - windowMs) ?? totals[0]!;
    return end.at > from.at ? ((end.done - from.done) * 1000) / (end.at - from.at) : null;
  }

  /** Tasks done by all visible jobs together at each sample (a job missing from one carries forward). */
  private totals(): { at: number; done: number }[] {
    const known = new Map<string, number>();
    return this.samples.map((s) => {
      for (const [id, n] of Object.entries(s.done)) known.set(id, n);
      let done = 0;
      for (const n of known.values()) done += n;
      return { at: s.at, done };
    });
  }
}

/** "42 s", "3 min", "1 h 20 min", for ETAs. */
export function formatEta(ms: number | null): string {
  if (ms === null) return '–';
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  const m = Math.round(s / 60);
  if (m < 60) return `${m} min`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, '0')} min`;
}

/** "0.52", "12.3", "140": a rate with sensible precision. */
export function formatRate(perSec: number | null): string {
  if (perSec === null) return '–';
  if (perSec < 1) return perSec.toFixed(2);
  if (perSec < 100) return perSec.toFixed(1);
  return Math.round(perSec).toLocaleString('en-US');
}
