/**
 * The warm pool: for each model with recent interactive traffic, the workers that hold an interactive session of
 * it, with what was measured of each (round-trip time and run time, as moving averages; requests in flight).
 * Sized by demand (requests per second times the time one takes, with room to hedge), and let go when idle.
 */

/** Weight of a new sample in the moving averages. */
const ALPHA = 0.2;
/** A pool never grows past this many workers for one model. */
const MAX_POOL = 8;
/** Requests per model are counted in one-second buckets over this many seconds, to estimate its rate. */
const RATE_SECONDS = 10;

export interface WarmWorker {
  workerId: string;
  state: 'loading' | 'ready';
  /** Round trip to the worker (request out to answer back, less its run), ms; null until measured. */
  rttMs: number | null;
  runMs: number | null;
  /** Mean deviation of a request's whole time (as TCP keeps for its retransmission timer), ms. */
  devMs: number | null;
  inFlight: number;
  served: number;
}

interface ModelPool {
  workers: Map<string, WarmWorker>;
  lastUsed: number;
  /** Requests in each of the last RATE_SECONDS seconds (ring by second number). */
  perSecond: number[];
  second: number;
}

const ewma = (prev: number | null, x: number) => (prev === null ? x : prev + ALPHA * (x - prev));

export class WarmPool {
  private readonly models = new Map<string, ModelPool>();

  private pool(model: string, now: number): ModelPool {
    let p = this.models.get(model);
    if (!p) { p = { workers: new Map(), lastUsed: now, perSecond: new Array<number>(RATE_SECONDS).fill(0), second: Math.floor(now / 1000) }; this.models.set(model, p); }
    return p;
  }

  /** Moves a pool's ring of counts up to the second of `now`, emptying the seconds passed. */
  private advance(p: ModelPool, now: number): void {
    const second = Math.floor(now / 1000);
    for (let s = p.second + 1; s <= Math.min(second, p.second + RATE_SECONDS); s++) p.perSecond[s % RATE_SECONDS] = 0;
    p.second = Math.max(p.second, second);
  }

  /** A request for `model` arrived. */
  used(model: string, now: number): void {
    const p = this.pool(model, now);
    p.lastUsed = now;
    this.advance(p, now);
    p.perSecond[p.second % RATE_SECONDS]!++;
  }

  /** Workers of the pool of `model` (loading or ready). */
  members(model: string): WarmWorker[] {
    return [...(this.models.get(model)?.workers.values() ?? [])];
  }

  ready(model: string): WarmWorker[] {
    return this.members(model).filter((w) => w.state === 'ready');
  }

  has(model: string, workerId: string): boolean {
    return this.models.get(model)?.workers.has(workerId) ?? false;
  }

  /** A worker is asked to warm a session of `model`. */
  add(model: string, workerId: string, now: number): WarmWorker {
    const w: WarmWorker = { workerId, state: 'loading', rttMs: null, runMs: null, devMs: null, inFlight: 0, served: 0 };
    this.pool(model, now).workers.set(workerId, w);
    return w;
  }

  /** Its session is loaded; `rttMs` is the warm-up's round trip less the loading. */
  markReady(model: string, workerId: string, rttMs: number): void {
    const w = this.models.get(model)?.workers.get(workerId);
    if (!w) return;
    w.state = 'ready';
    w.rttMs = ewma(w.rttMs, Math.max(0, rttMs));
  }

  /** Drops a worker from one pool (it failed to warm), or from every pool (it left). */
  remove(workerId: string, model?: string): void {
    for (const [hash, p] of this.models) if (model === undefined || hash === model) p.workers.delete(workerId);
  }

  /** An answer came back after `totalMs`, of which the model's run took `runMs`. */
  answered(model: string, workerId: string, totalMs: number, runMs: number): void {
    const w = this.models.get(model)?.workers.get(workerId);
    if (!w) return;
    const expected = w.rttMs !== null && w.runMs !== null ? w.rttMs + w.runMs : totalMs;
    w.devMs = ewma(w.devMs, Math.abs(totalMs - expected));
    w.rttMs = ewma(w.rttMs, Math.max(0, totalMs - runMs));
    w.runMs = ewma(w.runMs, runMs);
    w.served++;
  }

  /**
   * When to ask another worker if this one has not answered: its expected time plus four mean deviations (as TCP
   * times a retransmission), so a worker that is merely as slow as usual is not hedged, and one that stalls is.
   */
  hedgeAfterMs(w: WarmWorker): number {
    return this.expectedMs(w) + 4 * (w.devMs ?? this.expectedMs(w) / 2) + 2;
  }

  /** The time a worker is expected to take for one request now (round trip, run, and what it already has). */
  expectedMs(w: WarmWorker): number {
    const run = w.runMs ?? 20;
    return (w.rttMs ?? 20) + run * (1 + w.inFlight);
  }

  /** How many warm workers `model` should have: its demand in flight, doubled for hedging, at least 2. */
  target(model: string, now: number): number {
    const p = this.models.get(model);
    if (!p) return 0;
    this.advance(p, now);
    const rate = p.perSecond.reduce((a, n) => a + n, 0) / RATE_SECONDS;
    const ready = this.ready(model);
    const perRequest = ready.length ? ready.reduce((a, w) => a + this.expectedMs(w), 0) / ready.length : 50;
    return Math.max(2, Math.min(MAX_POOL, Math.ceil(((rate * perRequest) / 1000) * 2) + 1));
  }

  /**
   * Models with no request for `idleMs`: their pools are let go (returned, for the workers to be told). A pool
   * larger than its target sheds its slowest members.
   */
  shrink(now: number, idleMs: number): { model: string; workerIds: string[] }[] {
    const out: { model: string; workerIds: string[] }[] = [];
    for (const [model, p] of this.models) {
      if (now - p.lastUsed >= idleMs) {
        out.push({ model, workerIds: [...p.workers.keys()] });
        this.models.delete(model);
        continue;
      }
      const target = this.target(model, now);
      const ready = this.ready(model).sort((a, b) => this.expectedMs(a) - this.expectedMs(b));
      const extra = ready.slice(target).filter((w) => w.inFlight === 0).map((w) => w.workerId);
      for (const id of extra) p.workers.delete(id);
      if (extra.length) out.push({ model, workerIds: extra });
    }
    return out;
  }

  /** Pools by model, for status views. */
  view(): { model: string; ready: number; loading: number; served: number }[] {
    return [...this.models].map(([model, p]) => {
      const ws = [...p.workers.values()];
      return { model, ready: ws.filter((w) => w.state === 'ready').length, loading: ws.filter((w) => w.state === 'loading').length, served: ws.reduce((a, w) => a + w.served, 0) };
    });
  }
}
