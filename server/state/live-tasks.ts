/**
 * The open tasks of running jobs, in memory: each open (or known-answer) task's row, the tasks of each stage that
 * want another replica in the order they are handed out, and each stage's counts. A lease, a result or a count
 * reads this instead of the store, at a cost that does not grow with the job's size or the number of workers.
 * A settled task leaves memory (`evict`) once the store has it; its counts stay.
 *
 * A stage's queue is its tasks in batch order with a head that moves past the ones handed out; a task that
 * wants a replica again (a lease lapsed, replicas disagreed) goes to the stage's retry set, which is looked at
 * first, so it is not kept waiting behind the rest of the job.
 */
import type { JobRow, StageCounts, TaskCounts, TaskPatch, TaskRow } from '../store/store.js';

/** A copy of `row` with the patch's defined fields (rows are replaced, never changed in place). */
export const patched = <T extends object>(row: T, patch: Partial<NoInfer<T>>): T =>
  ({ ...row, ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)) });

/** What a task's row keeps across a restart (`active` is rebuilt from the replicas returned). */
export const DURABLE_TASK_COLUMNS = new Set<keyof TaskPatch>(['status', 'wanted', 'failures', 'error', 'doneAt', 'ready', 'readyAt', 'tainted']);

/** Counts of settled tasks per stage in `tasks` (a job created with some already settled). */
export function settledCounts(tasks: TaskRow[]): StageCounts[] {
  const by = new Map<number, StageCounts>();
  for (const t of tasks) {
    if (t.status === 'pending') continue;
    const c = by.get(t.stage) ?? { stage: t.stage, total: 0, done: 0, failed: 0, pending: 0, running: 0 };
    c.total++;
    if (t.status === 'done') c.done++; else c.failed++;
    by.set(t.stage, c);
  }
  return [...by.values()];
}

/** Whether a task wants another replica now. */
export const wanting = (t: TaskRow): boolean => t.status === 'pending' && t.ready && t.active < t.wanted;

interface StageQueue {
  stage: number;
  model: string;
  order: string[];
  head: number;
  /** Tasks between head and the end of `order` (they are reached there). */
  inOrder: Set<string>;
  retry: Set<string>;
  counts: StageCounts;
}

interface LiveJob {
  job: JobRow;
  /** Stages, last first (later stages finish batches that earlier ones started). */
  stages: StageQueue[];
  /** Ids of the tasks in memory. */
  ids: Set<string>;
  /** Tasks that want a replica and have one or more out or back (candidates for a stall). */
  partial: Set<string>;
  /** Done known-answer tasks (probes for newcomers). */
  canaries: string[];
}

/** What a pick may take. */
export interface PickFilter {
  /** Whether a task is one this volunteer may not run (it ran it already). */
  touched(task: TaskRow): boolean;
  /** Whether a task's model may be offered at all. */
  model(model: string): boolean;
  /** Models held back until their tasks have been ready since `readySince`. */
  deferred?: Set<string>;
  readySince?: number;
}

const emptyCounts = (stage: number): StageCounts => ({ stage, total: 0, done: 0, failed: 0, pending: 0, running: 0 });

function count(c: TaskCounts, t: TaskRow, by: number): void {
  c.total += by;
  if (t.status === 'done') c.done += by;
  else if (t.status === 'failed') c.failed += by;
  else if (t.active > 0) c.running += by;
  else c.pending += by;
}

export class LiveTasks {
  private readonly jobs = new Map<string, LiveJob>();
  private readonly rows = new Map<string, TaskRow>();

  has(jobId: string): boolean {
    return this.jobs.has(jobId);
  }

  jobIds(): IterableIterator<string> {
    return this.jobs.keys();
  }

  get size(): number {
    return this.rows.size;
  }

  /**
   * Takes a running job in: its open and known-answer tasks, and the counts of
   * each stage's tasks settled (done or failed) as the store has them.
   */
  load(job: JobRow, tasks: Iterable<TaskRow>, settled: StageCounts[]): void {
    const stages = job.stageModels.map((model, stage): StageQueue => ({
      stage, model, order: [], head: 0, inOrder: new Set(), retry: new Set(), counts: emptyCounts(stage),
    }));
    for (const c of settled) {
      const q = stages[c.stage];
      if (q) { q.counts.total = c.done + c.failed; q.counts.done = c.done; q.counts.failed = c.failed; }
    }
    const live: LiveJob = { job, stages, ids: new Set(), partial: new Set(), canaries: [] };
    this.jobs.set(job.id, live);
    for (const t of tasks) {
      const q = stages[t.stage]!;
      this.rows.set(t.id, t);
      live.ids.add(t.id);
      if (t.status === 'pending') count(q.counts, t, 1);
      if (wanting(t) && t.active > 0) live.partial.add(t.id);
      if (t.canary && t.status === 'done') live.canaries.push(t.id);
      if (wanting(t)) { q.order.push(t.id); q.inOrder.add(t.id); }
    }
    // Each stage's queue in batch order (the store gives them so; a job made with its tasks out of order is sorted).
    for (const q of stages) {
      if (q.order.some((id, i) => i > 0 && this.rows.get(id)!.batch < this.rows.get(q.order[i - 1]!)!.batch)) {
        q.order.sort((a, b) => this.rows.get(a)!.batch - this.rows.get(b)!.batch);
      }
    }
    stages.reverse();
  }

  /**
   * Adds more of a job's open and known-answer tasks (a slice this server took over); the job must be loaded.
   * Counts of settled tasks are not the memory's to keep then (servers sharing a database count in the store).
   */
  add(jobId: string, tasks: Iterable<TaskRow>): void {
    const live = this.jobs.get(jobId);
    if (!live) return;
    const touched = new Set<StageQueue>();
    for (const t of tasks) {
      if (this.rows.has(t.id)) continue;
      const q = live.stages.find((s) => s.stage === t.stage)!;
      this.rows.set(t.id, t);
      live.ids.add(t.id);
      if (t.status === 'pending') count(q.counts, t, 1);
      if (wanting(t) && t.active > 0) live.partial.add(t.id);
      if (t.canary && t.status === 'done') live.canaries.push(t.id);
      if (wanting(t)) { q.order.push(t.id); q.inOrder.add(t.id); touched.add(q); }
    }
    for (const q of touched) {
      // What is left of the queue (tasks of a slice given back are gone from memory), in batch order again.
      const rest = q.order.slice(q.head).filter((id) => this.rows.has(id));
      q.order = rest.sort((a, b) => this.rows.get(a)!.batch - this.rows.get(b)!.batch);
      q.inOrder = new Set(q.order);
      q.head = 0;
    }
  }

  /** Lets the tasks of batches [from, to) of a job go (a slice given back); returns their ids. */
  dropRange(jobId: string, from: number, to: number): string[] {
    const live = this.jobs.get(jobId);
    if (!live) return [];
    const out: string[] = [];
    for (const id of live.ids) {
      const t = this.rows.get(id);
      if (!t || t.batch < from || t.batch >= to) continue;
      const q = live.stages.find((s) => s.stage === t.stage)!;
      if (t.status === 'pending') count(q.counts, t, -1);
      this.rows.delete(id);
      live.ids.delete(id);
      live.partial.delete(id);
      q.retry.delete(id);
      q.inOrder.delete(id);
      out.push(id);
    }
    if (out.length) live.canaries = live.canaries.filter((id) => this.rows.has(id));
    return out;
  }

  /** Tasks in memory that want a replica now (what this server can still hand out). */
  wantingCount(): number {
    let n = 0;
    for (const t of this.rows.values()) if (wanting(t) && this.jobs.get(t.jobId)?.job.status === 'running') n++;
    return n;
  }

  /** Lets a job's tasks go (it ended); returns the ids of those that were in memory. */
  drop(jobId: string): string[] {
    const live = this.jobs.get(jobId);
    if (!live) return [];
    this.jobs.delete(jobId);
    for (const id of live.ids) this.rows.delete(id);
    return [...live.ids];
  }

  /** A settled task leaves memory (the store has it); it stays counted. Known-answer tasks stay (they are probes). */
  evict(id: string): void {
    const t = this.rows.get(id);
    if (!t || t.status === 'pending' || t.canary) return;
    this.rows.delete(id);
    this.jobs.get(t.jobId)?.ids.delete(id);
  }

  updateJob(job: JobRow): void {
    const live = this.jobs.get(job.id);
    if (live) live.job = job;
  }

  get(id: string): TaskRow | undefined {
    return this.rows.get(id);
  }

  /**
   * Replaces a task's row (of a live job), keeping queues and counts in step. A settled task that left memory
   * comes back with `prev`, its row as the store has it (a task opened again).
   */
  set(next: TaskRow, prev: TaskRow | undefined = this.rows.get(next.id)): void {
    const live = this.jobs.get(next.jobId);
    if (!live || !prev) return;
    this.rows.set(next.id, next);
    live.ids.add(next.id);
    const q = live.stages.find((s) => s.stage === next.stage)!;
    count(q.counts, prev, -1);
    count(q.counts, next, 1);
    if (next.canary && next.status === 'done' && prev.status !== 'done') live.canaries.push(next.id);
    if (wanting(next) && !wanting(prev) && !q.inOrder.has(next.id)) q.retry.add(next.id);
    if (wanting(next) && next.active > 0) live.partial.add(next.id); else live.partial.delete(next.id);
  }

  /** Up to `limit` tasks that want a replica, from the jobs `jobIds` in that order, passing `filter`. */
  pick(jobIds: Iterable<string>, limit: number, filter: PickFilter): TaskRow[] {
    const out: TaskRow[] = [];
    if (limit <= 0) return out;
    for (const jobId of jobIds) {
      const live = this.jobs.get(jobId);
      if (!live || live.job.status !== 'running') continue;
      for (const q of live.stages) {
        if (!filter.model(q.model)) continue;
        const deferred = filter.deferred?.has(q.model) ? filter.readySince ?? 0 : null;
        const ok = (t: TaskRow) => !filter.touched(t) && (deferred === null || (t.readyAt ?? 0) <= deferred);
        for (const id of q.retry) {
          const t = this.rows.get(id);
          if (!t || !wanting(t)) { q.retry.delete(id); continue; }
          if (ok(t)) { out.push(t); if (out.length >= limit) return out; }
        }
        for (let i = q.head; i < q.order.length; i++) {
          const id = q.order[i]!;
          const t = this.rows.get(id);
          if (!t || !wanting(t)) {
            // The front of the queue moves past what was handed out; such a task comes back through `retry`.
            if (i === q.head) { q.head++; q.inOrder.delete(id); }
            continue;
          }
          if (ok(t)) { out.push(t); if (out.length >= limit) return out; }
        }
        if (q.head > 1024 && q.head * 2 > q.order.length) { q.order = q.order.slice(q.head); q.head = 0; }
      }
    }
    return out;
  }

  taskCounts(jobId: string): TaskCounts | undefined {
    const live = this.jobs.get(jobId);
    if (!live) return undefined;
    const c: TaskCounts = { total: 0, done: 0, failed: 0, pending: 0, running: 0 };
    for (const q of live.stages) {
      c.total += q.counts.total; c.done += q.counts.done; c.failed += q.counts.failed; c.pending += q.counts.pending; c.running += q.counts.running;
    }
    return c;
  }

  stageCounts(jobId: string): StageCounts[] | undefined {
    const live = this.jobs.get(jobId);
    return live && [...live.stages].reverse().filter((q) => q.counts.total > 0).map((q) => ({ ...q.counts }));
  }

  /** Done known-answer tasks of running jobs, job by job. */
  doneCanaries(jobId: string): readonly string[] {
    return this.jobs.get(jobId)?.canaries ?? [];
  }

  /** A job's tasks in memory: open and known-answer ones. */
  *tasksOf(jobId: string): Iterable<TaskRow> {
    const live = this.jobs.get(jobId);
    if (!live) return;
    for (const id of live.ids) { const t = this.rows.get(id); if (t) yield t; }
  }

  /** Open tasks that want a replica and already have one or more (stalled candidates), oldest jobs first. */
  *partlyServed(jobIds: Iterable<string>): Iterable<TaskRow> {
    for (const jobId of jobIds) {
      const live = this.jobs.get(jobId);
      if (!live || live.job.status !== 'running') continue;
      for (const id of live.partial) yield this.rows.get(id)!;
    }
  }

  /** Pending tasks with replicas out or back. */
  *withReplicas(): Iterable<TaskRow> {
    for (const t of this.rows.values()) if (t.status === 'pending' && t.active > 0 && this.jobs.get(t.jobId)?.job.status === 'running') yield t;
  }
}
