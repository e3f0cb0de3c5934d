/**
 * Which tasks a worker is offered: those of shards it already holds first, then the rest, never a shard too
 * big for its GPU and, for a while after they become ready, not the stages another worker serves (so in
 * steady state each volunteer keeps serving one stage and downloads each shard once).
 */
import { AppError } from '../../shared/errors.js';
import type { JobRow, ModelRow, Store, TaskRow } from '../store/store.js';
import type { Clock } from './clock.js';

/** A connected worker as the views show it (REST and the dashboard feed, for admins). */
export interface WorkerInfo {
  workerId: string;
  volunteerId: string;
  kind: 'browser' | 'node';
  backends: string[];
  adapter?: Record<string, unknown>;
  /** The embedding site credited for its work, from a valid site token; null without one. */
  site: string | null;
  /** The network origin it connected from (an IPv4 address or /N, an IPv6 /64): quorums count distinct ones; null in tests. */
  origin: string | null;
  connectedAt: number;
  /** It answers interactive requests (infer:* events). */
  interactive: boolean;
}

/** What a worker told us about itself in its hello (and where it connected from). */
export interface WorkerProfile {
  kind?: 'browser' | 'node';
  backends?: string[];
  adapter?: Record<string, unknown>;
  /** Its GPU's vendor|architecture. */
  adapterClass?: string;
  /** Origin of the page embedding the widget it runs in (from a site token the server signed, not the worker's word). */
  site?: string | null;
  origin?: string;
  /** Models (shards) it already holds. */
  cached?: string[];
  /** WebGPU limits and device memory (GiB), where the browser tells. */
  limits?: Record<string, number>;
  interactive?: boolean;
}

/** A connected worker: the one table of workers (the scheduler keeps it; the socket layer and views read it). */
export interface WorkerEntry extends WorkerInfo {
  demand: number;
  adapterClass: string;
  /** Models it holds (reported, or handed to it since). */
  held: Set<string>;
  limits: Record<string, number>;
  /** The models too big for it, as of the picker's `modelsSeen` count (so a lease does not re-check every model). */
  tooBig?: { seen: number; hashes: string[] };
}

export class TaskPicker {
  private readonly models = new Map<string, ModelRow>();
  /** Models that are stages of split jobs. */
  private readonly stageModels = new Set<string>();
  /** How many connected workers hold each model: a lease looks this up instead of at every worker. */
  private readonly holders = new Map<string, number>();

  constructor(private readonly deps: { store: Store; clock: Clock; shardAffinityMs: number }) {}

  /** Whether split jobs were seen, so held-back stage tasks may need another look as time passes. */
  get hasStages(): boolean {
    return this.stageModels.size > 0;
  }

  /** A model's record, cached: models are immutable. */
  model(hash: string): ModelRow {
    let m = this.models.get(hash);
    if (!m) {
      m = this.deps.store.getModel(hash);
      if (!m) throw new AppError('NOT_FOUND', `model ${hash} not found`);
      this.models.set(hash, m);
    }
    return m;
  }

  /** Learns a job's models, so fit checks and shard affinity cover them. */
  registerJob(job: JobRow): void {
    for (const m of job.stageModels) this.model(m);
    if (job.stageModels.length > 1) for (const m of job.stageModels) this.stageModels.add(m);
  }

  /** A worker connected: the models it holds count for shard affinity. */
  addWorker(w: WorkerEntry): void {
    for (const h of w.held) this.count(h, 1);
  }

  /** A worker left. */
  removeWorker(w: WorkerEntry): void {
    for (const h of w.held) this.count(h, -1);
  }

  /** A worker was handed a model (it will hold it from now on). */
  hold(w: WorkerEntry, model: string): void {
    if (w.held.has(model)) return;
    w.held.add(model);
    this.count(model, 1);
  }

  private count(model: string, by: number): void {
    const n = (this.holders.get(model) ?? 0) + by;
    if (n > 0) this.holders.set(model, n); else this.holders.delete(model);
  }

  /** Up to `slots` tasks for worker `w`, best first, from the running jobs `jobs` in that order. */
  candidates(w: WorkerEntry, slots: number, jobs: string[]): TaskRow[] {
    const { store, clock, shardAffinityMs } = this.deps;
    if (slots <= 0) return [];
    if (w.tooBig?.seen !== this.models.size) {
      w.tooBig = { seen: this.models.size, hashes: [...this.models.values()].filter((m) => !fits(w, m)).map((m) => m.hash) };
    }
    const tooBig = w.tooBig.hashes;
    const mine = [...w.held].filter((h) => !tooBig.includes(h));
    const first = mine.length > 0 ? store.assignableTasks(w.volunteerId, slots, { models: mine, jobs }) : [];
    if (first.length >= slots) return first;
    // A stage is held back from this worker while another worker serves it, or while this one serves another stage.
    const servesAStage = [...w.held].some((h) => this.stageModels.has(h));
    const deferred = [...this.stageModels].filter((h) => !w.held.has(h) && (servesAStage || this.holders.has(h)));
    const rest = store.assignableTasks(w.volunteerId, slots - first.length, {
      excludeModels: [...tooBig, ...mine], deferModels: deferred, readySince: clock.now() - shardAffinityMs, jobs,
    });
    return [...first, ...rest];
  }
}

/** Whether a worker can hold a model: its largest weight within one GPU buffer, all of it within a quarter of device memory. */
export function fits(w: Pick<WorkerEntry, 'limits'>, m: Pick<ModelRow, 'largestWeight' | 'weightBytes'>): boolean {
  const buffer = Math.min(w.limits.maxStorageBufferBindingSize ?? Infinity, w.limits.maxBufferSize ?? Infinity);
  const memory = w.limits.deviceMemory !== undefined ? (w.limits.deviceMemory * 2 ** 30) / 4 : Infinity;
  return m.largestWeight <= buffer && m.weightBytes <= memory;
}
