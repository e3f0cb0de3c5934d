/**
 * The server's metrics in Prometheus' text format, on a registry of its own (never prom-client's global one:
 * two apps in one process, as in tests, must not share counters). Counters and latency histograms follow the
 * event bus (server/events.ts); counts of state (jobs by status, workers online) are read at scrape time from
 * the sources given, so they cannot drift from what the store and the worker table hold.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { JobStatus } from '../../shared/protocol.js';
import type { AppEventMap, AppEvents } from '../events.js';

/** What the scrape-time gauges read. */
export interface MetricsSources {
  /** Jobs by status (statuses with none may be left out). */
  jobCounts(): Record<string, number>;
  /** The connected workers. */
  workers(): Iterable<{ kind: string; backends: readonly string[] }>;
}

/** Seconds, from a fast socket round trip to a slow commit. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];
/** Seconds of one store statement: most take microseconds; a stalled disk shows in the top buckets. */
const WRITE_BUCKETS = [0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.01, 0.05, 0.25];
const RUN_BUCKETS = [0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 120];
const REPLICA_BUCKETS = [1, 2, 3, 4, 5, 6, 8, 10, 15, 20];
const BATCH_BUCKETS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

type Listener<K extends keyof AppEventMap> = (...args: AppEventMap[K]) => void;

/**
 * A labelled metric's child per label value, made once: prom-client hashes the labels on every call that names
 * them, which costs more than the observation itself on the per-result path.
 */
function perLabel<T>(make: (value: string) => T): (value: string) => T {
  const children = new Map<string, T>();
  return (value) => {
    let c = children.get(value);
    if (!c) children.set(value, (c = make(value)));
    return c;
  };
}

export class Metrics {
  readonly registry = new Registry();
  private readonly storeWriteOf: (op: string) => { observe(seconds: number): void };
  private readonly subscriptions: [keyof AppEventMap, (...args: never[]) => void][] = [];
  private events: AppEvents | null = null;

  constructor(private readonly sources: MetricsSources) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry });
    const { jobCounts, workers } = sources;

    new Gauge({
      name: 'tabgrid_jobs', help: 'Jobs by status.', labelNames: ['status'], registers,
      collect() {
        const counts = { ...Object.fromEntries(Object.values(JobStatus).map((s) => [s, 0])), ...jobCounts() };
        for (const [status, n] of Object.entries(counts)) this.set({ status }, n);
      },
    });
    new Gauge({
      name: 'tabgrid_workers_online', help: 'Connected workers by kind and preferred (first listed) backend.', labelNames: ['kind', 'backend'], registers,
      collect() {
        this.reset();
        for (const w of workers()) this.inc({ kind: w.kind, backend: w.backends[0] ?? 'none' });
      },
    });

    const tasks = new Counter({ name: 'tabgrid_tasks_settled_total', help: 'Tasks settled: done (verified) or failed.', labelNames: ['outcome', 'canary'], registers });
    const results = new Counter({
      name: 'tabgrid_results_total', help: 'Returned results judged: accepted (agreed with the accepted answer), refused (outputs that do not fit), disagreed.',
      labelNames: ['verdict'], registers,
    });
    const replicas = new Histogram({
      name: 'tabgrid_task_replicas', help: 'Returned replicas counted when a task\'s result was accepted, by who decided it (a quorum or the server\'s own run).',
      labelNames: ['decided_by'], buckets: REPLICA_BUCKETS, registers,
    });
    const errors = new Counter({ name: 'tabgrid_replica_errors_total', help: 'Replicas a worker reported it could not run.', registers });
    const expiries = new Counter({ name: 'tabgrid_lease_expiries_total', help: 'Leases that lapsed without an answer.', registers });
    const audits = new Counter({ name: 'tabgrid_audits_total', help: 'Audits of accepted results by the server\'s own run: upheld or refuted.', labelNames: ['outcome'], registers });
    const auditsSkipped = new Counter({ name: 'tabgrid_audits_skipped_total', help: 'Audits not run: the server\'s runs already took their share of a core.', registers });
    const runs = new Counter({ name: 'tabgrid_server_runs_total', help: 'The server\'s own runs of tasks (canary, check, audit), by outcome.', labelNames: ['kind', 'outcome'], registers });
    const runSeconds = new Histogram({ name: 'tabgrid_server_run_seconds', help: 'Time of one server run.', labelNames: ['kind'], buckets: RUN_BUCKETS, registers });
    const quarantines = new Counter({ name: 'tabgrid_quarantines_total', help: 'Volunteers quarantined.', registers });
    const dispatch = new Histogram({
      name: 'tabgrid_dispatch_seconds', help: 'Socket events (work:request, task:result, ...) and the server\'s own answers (server:canary, server:check), from arrival to acknowledgement, the group commit included.',
      labelNames: ['event'], buckets: LATENCY_BUCKETS, registers,
    });
    const commit = new Histogram({ name: 'tabgrid_commit_seconds', help: 'One turn\'s group commit (every socket event of the turn in one transaction).', labelNames: ['outcome'], buckets: LATENCY_BUCKETS, registers });
    const commitSize = new Histogram({ name: 'tabgrid_commit_events', help: 'Socket events per group commit.', buckets: BATCH_BUCKETS, registers });
    const storeWrites = new Histogram({ name: 'tabgrid_store_write_seconds', help: 'One write to the durable store, by operation.', labelNames: ['op'], buckets: WRITE_BUCKETS, registers });
    this.storeWriteOf = perLabel((op) => storeWrites.labels({ op }));

    // Every series a dashboard graphs from the start, at 0, rather than appearing with its first event.
    for (const outcome of ['done', 'failed']) for (const canary of ['true', 'false']) tasks.inc({ outcome, canary }, 0);
    for (const verdict of ['accepted', 'refused', 'disagreed']) results.inc({ verdict }, 0);
    for (const outcome of ['upheld', 'refuted']) audits.inc({ outcome }, 0);

    const settled = perLabel((key) => tasks.labels({ outcome: key.slice(1), canary: String(key[0] === 'c') }));
    const replicasBy = perLabel((by) => replicas.labels({ decided_by: by }));
    const judged = perLabel((verdict) => results.labels({ verdict }));
    const answered = perLabel((event) => dispatch.labels({ event }));
    const committed = commit.labels({ outcome: 'committed' });
    this.on('task:settled', (outcome, canary) => settled(`${canary ? 'c' : '-'}${outcome}`).inc());
    this.on('task:accepted', (n, decidedBy) => replicasBy(decidedBy).observe(n));
    this.on('result:judged', (verdict, n) => judged(verdict).inc(n));
    this.on('replica:errored', () => errors.inc());
    this.on('lease:expired', () => expiries.inc());
    this.on('audit:judged', (refuted) => audits.inc({ outcome: refuted ? 'refuted' : 'upheld' }));
    this.on('audit:skipped', () => auditsSkipped.inc());
    this.on('server-run:done', (kind, ok, ms) => {
      runs.inc({ kind, outcome: ok ? 'ok' : 'failed' });
      runSeconds.observe({ kind }, ms / 1000);
    });
    this.on('volunteer:quarantined', () => quarantines.inc());
    this.on('socket:answered', (event, ms) => answered(event).observe(ms / 1000));
    this.on('tick:committed', (n, ms, ok) => {
      if (ok) committed.observe(ms / 1000);
      else commit.observe({ outcome: 'failed' }, ms / 1000);
      commitSize.observe(n);
    });
  }

  /** Follows the bus until `detach`. */
  attach(events: AppEvents): void {
    this.detach();
    this.events = events;
    for (const [event, fn] of this.subscriptions) events.on(event, fn as never);
  }

  detach(): void {
    if (!this.events) return;
    for (const [event, fn] of this.subscriptions) this.events.off(event, fn as never);
    this.events = null;
  }

  /** One store write of `op` took `seconds` (server/metrics/timed-store.ts). */
  storeWrite(op: string, seconds: number): void {
    this.storeWriteOf(op).observe(seconds);
  }

  /** The exposition, and its content type. */
  async scrape(): Promise<{ body: string; contentType: string }> {
    return { body: await this.registry.metrics(), contentType: this.registry.contentType };
  }

  private on<K extends keyof AppEventMap>(event: K, fn: Listener<K>): void {
    this.subscriptions.push([event, fn as (...args: never[]) => void]);
  }
}
