/**
 * The server's own runs of tasks with onnxruntime-node, in the background, one at a time: known answers for
 * canary tasks, checks that decide a task the volunteers could not (agreement from one origin, no quorum at the
 * cap, errors at the failure cap), and audits of a sample of accepted results. Canaries and checks go first;
 * audits only while the server's runs take less than their share of one core.
 */
import * as ort from 'onnxruntime-node';
import type { Logger } from 'pino';
import type { DType, Tensor } from '../../shared/tensor.js';
import type { WireTensor } from '../../shared/protocol.js';
import type { EventSink, ServerRunEventMap } from '../events.js';
import { fromOrtTensor, toOrtTensor } from '../onnx/ort-tensors.js';
import type { BlobStore } from '../store/blob-store.js';
import type { JobRow, Store, TaskRow } from '../store/store.js';

export const ServerRunKind = { canary: 'canary', check: 'check', audit: 'audit' } as const;
export type ServerRunKind = (typeof ServerRunKind)[keyof typeof ServerRunKind];

/** Where the answers go (the scheduler). `outputs` null: the server could not run the task; `error` says why. */
/** A check's or canary's answer is applied in a transaction that may commit after the call returns: `done` is told. */
export interface ServerRunSink {
  canaryReady(taskId: string, outputs: Tensor[] | null, done?: (err: Error | null) => void): void;
  serverChecked(taskId: string, outputs: Tensor[] | null, error: string | null, done?: (err: Error | null) => void): void;
  audited(taskId: string, outputs: Tensor[]): void;
}

export interface ServerRunsDeps {
  store: Store;
  blobs: BlobStore;
  log: Logger;
  taskInputs(job: JobRow, task: TaskRow): WireTensor[];
  /** Share of one core audits may keep the server busy (checks and canaries are not limited). */
  auditCpuShare: number;
  /** Wall-clock milliseconds, for the busy share (real time: it measures CPU spent, it schedules nothing). */
  now?: () => number;
  /** Told of each run as it ends and of each audit skipped (the metrics count them). */
  observer?: EventSink<ServerRunEventMap>;
  /** How long to wait before applying again a check's or canary's answer the store refused (default 1 s). */
  retryMs?: number;
  /**
   * Whether a task still waits here for a check or a known answer (pending, in this server's memory); one that does
   * not is passed over when its turn comes. Without it every queued run is run.
   */
  waitsHere?(taskId: string): boolean;
}

export interface ServerRunStats { canaries: number; checks: number; audits: number; auditsSkipped: number; stale: number; failed: number; busyMs: number }

/** Audits waiting at most; more are skipped (counted). */
const MAX_AUDITS_QUEUED = 32;
/** The window over which the busy share is measured. */
const WINDOW_MS = 10_000;
/** Model sessions kept warm. */
const MAX_SESSIONS = 4;
/** Runs in flight at once. */
const CONCURRENCY = 4;
/**
 * Times a check's or canary's answer is applied again after the store refused it (a database gone for a while):
 * dropped, the task would wait for a decision that never comes. About five minutes at the default pace.
 */
const APPLY_ATTEMPTS = 300;

export class ServerRuns {
  private readonly urgent: { task: TaskRow; kind: 'canary' | 'check' }[] = [];
  private readonly audits: TaskRow[] = [];
  private readonly queued = new Set<string>();
  private readonly sessions = new Map<string, Promise<ort.InferenceSession>>();
  private readonly recent: { at: number; ms: number }[] = [];
  private sink: ServerRunSink | null = null;
  private active = 0;
  private readonly waiters: (() => void)[] = [];
  private stopped = false;
  readonly stats: ServerRunStats = { canaries: 0, checks: 0, audits: 0, auditsSkipped: 0, stale: 0, failed: 0, busyMs: 0 };

  constructor(private readonly deps: ServerRunsDeps) {}

  /** Where answers go; set once the scheduler exists. */
  setSink(sink: ServerRunSink): void {
    this.sink = sink;
  }

  /** Queues canary tasks for their known answers; returns at once. */
  compute(tasks: TaskRow[]): void {
    for (const task of tasks) this.enqueue(task, 'canary');
  }

  /** Queues a check: the server's run decides the task. False when one is queued already. */
  check(task: TaskRow): boolean {
    return this.enqueue(task, 'check');
  }

  /** Queues an audit of an accepted result, if there is spare time for it; false when skipped. */
  audit(task: TaskRow): boolean {
    if (this.audits.length >= MAX_AUDITS_QUEUED || this.busyShare() >= this.deps.auditCpuShare) {
      this.stats.auditsSkipped++;
      this.deps.observer?.emit('audit:skipped');
      return false;
    }
    return this.enqueue(task, 'audit');
  }

  /** Whether a check of this task is queued or running. */
  checking(taskId: string): boolean {
    return this.queued.has(`check:${taskId}`);
  }

  /** Picks up canaries left unanswered by a restart. */
  resume(): void {
    this.compute(this.deps.store.unreadyCanaries());
  }

  /** Resolves when every queued run is done (for tests and shutdown). */
  idle(): Promise<void> {
    if (this.active === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  stop(): void {
    this.stopped = true;
    this.urgent.length = 0;
    this.audits.length = 0;
    this.queued.clear();
  }

  /** Share of one core spent on the server's runs over the last window. */
  busyShare(): number {
    const now = this.now();
    while (this.recent.length > 0 && this.recent[0]!.at < now - WINDOW_MS) this.recent.shift();
    return this.recent.reduce((a, r) => a + r.ms, 0) / WINDOW_MS;
  }

  private now(): number {
    return (this.deps.now ?? Date.now)();
  }

  private enqueue(task: TaskRow, kind: ServerRunKind): boolean {
    const key = `${kind}:${task.id}`;
    if (this.stopped || this.queued.has(key)) return false;
    this.queued.add(key);
    if (kind === 'audit') this.audits.push(task);
    else this.urgent.push({ task, kind });
    this.pump();
    return true;
  }

  /**
   * Starts queued runs up to CONCURRENCY at once: onnxruntime runs them on its own threads, and several in flight
   * keep a busy event loop's latency from spacing them out.
   */
  private pump(): void {
    let next: { task: TaskRow; kind: ServerRunKind } | undefined;
    while (!this.stopped && this.active < CONCURRENCY && (next = this.urgent.shift() ?? this.auditNext())) {
      this.active++;
      void this.runOne(next.task, next.kind).finally(() => {
        this.active--;
        if (this.active === 0 && this.urgent.length === 0 && this.audits.length === 0) for (const w of this.waiters.splice(0)) w();
        this.pump();
      });
    }
    if (this.active === 0) for (const w of this.waiters.splice(0)) w();
  }

  private async runOne(task: TaskRow, kind: ServerRunKind): Promise<void> {
    // Under load the queue runs behind: a task may have been settled meanwhile, or its slice be another server's (one
    // it gave back, or a new job's: its creator queues all its known answers), which decides it. Its run would be
    // wasted, and its answer read and written through the database in a turn.
    if (kind !== 'audit' && this.deps.waitsHere && !this.deps.waitsHere(task.id)) {
      this.queued.delete(`${kind}:${task.id}`);
      this.stats.stale++;
      return;
    }
    const started = this.now();
    const res = await this.run(task);
    const ms = this.now() - started;
    this.recent.push({ at: this.now(), ms });
    this.stats.busyMs += ms;
    this.queued.delete(`${kind}:${task.id}`);
    if (this.stopped || !res || !this.sink) return;
    if (res.error) this.stats.failed++;
    this.deps.observer?.emit('server-run:done', kind, !res.error, ms);
    this.apply(task, kind, res, 1);
  }

  /** Hands a run's answer to the scheduler; a check's or canary's that the store refused is applied again later. */
  private apply(task: TaskRow, kind: ServerRunKind, res: { outputs: Tensor[] | null; error: string | null }, attempt: number): void {
    if (this.stopped || !this.sink) return;
    const refused = (err: unknown) => {
      const again = kind !== 'audit' && attempt < APPLY_ATTEMPTS;
      this.deps.log.error({ err, taskId: task.id, kind, attempt, again }, 'applying the server\'s own run failed');
      if (again) setTimeout(() => this.apply(task, kind, res, attempt + 1), this.deps.retryMs ?? 1000).unref();
    };
    // Its commit may fail after the call returned (a networked store): then it is applied again as well.
    const done = (err: Error | null) => { if (err) refused(err); };
    try {
      if (kind === 'canary') {
        this.sink.canaryReady(task.id, res.outputs, done);
        this.stats.canaries++;
      } else if (kind === 'check') {
        this.sink.serverChecked(task.id, res.outputs, res.error, done);
        this.stats.checks++;
      } else if (res.outputs) {
        this.sink.audited(task.id, res.outputs);
        this.stats.audits++;
      }
    } catch (err) {
      refused(err);
    }
  }

  private auditNext(): { task: TaskRow; kind: 'audit' } | undefined {
    const task = this.audits.shift();
    return task && { task, kind: 'audit' };
  }

  /** Runs one task; null when its job is gone or no longer running. */
  private async run(task: TaskRow): Promise<{ outputs: Tensor[] | null; error: string | null } | null> {
    const job = this.deps.store.getJob(task.jobId);
    if (!job) return null;
    try {
      const session = await this.session(task.model);
      const feeds: Record<string, ort.Tensor> = {};
      for (const t of this.deps.taskInputs(job, task)) feeds[t.name] = toOrtTensor(t.dtype as DType, t.dims, t.data as Uint8Array);
      const out = await session.run(feeds);
      return { outputs: session.outputNames.map((n) => fromOrtTensor(n, out[n])), error: null };
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.deps.log.warn({ err, taskId: task.id }, 'the server could not run a task itself');
      return { outputs: null, error: message };
    }
  }

  private session(model: string): Promise<ort.InferenceSession> {
    let s = this.sessions.get(model);
    if (s) {
      this.sessions.delete(model);
      this.sessions.set(model, s);
      return s;
    }
    s = ort.InferenceSession.create(this.deps.blobs.read(model));
    s.catch(() => this.sessions.delete(model));
    this.sessions.set(model, s);
    if (this.sessions.size > MAX_SESSIONS) {
      const [oldest, old] = this.sessions.entries().next().value as [string, Promise<ort.InferenceSession>];
      this.sessions.delete(oldest);
      void old.then((x) => x.release()).catch(() => {});
    }
    return s;
  }

  /** Releases the warm sessions (after stop). */
  async close(): Promise<void> {
    for (const s of this.sessions.values()) await s.then((x) => x.release()).catch(() => {});
    this.sessions.clear();
  }
}
