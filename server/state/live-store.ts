/**
 * The Store the scheduler uses: its working state in memory (live-rows.ts) with the store as its durable log. What
 * every lease and result asks (the open tasks of running jobs and their counts, leases, who ran what, the replicas of
 * open tasks) is answered from memory; reads the memory cannot answer (researchers' queries, ended jobs, settled
 * tasks) go to the store after the pending rows are written, so they see what the scheduler sees.
 */
import type {
  BatchRange, ReplicaRow, ReplicaStatus, StageCounts, Store, TaskCounts, TaskFilter, TaskRow,
} from '../store/store.js';
import { LiveRows } from './live-rows.js';

const byLeaseTime = (a: ReplicaRow, b: ReplicaRow) => a.leasedAt - b.leasedAt;

export class LiveStore extends LiveRows implements Store {
  // Jobs: counts memory holds for running jobs, the store's for the others.

  taskCounts(jobId: string): TaskCounts {
    return this.tasks.taskCounts(jobId) ?? (this.flush(), this.inner.taskCounts(jobId));
  }

  stageCounts(jobId: string): StageCounts[] {
    return this.tasks.stageCounts(jobId) ?? (this.flush(), this.inner.stageCounts(jobId));
  }

  hasUnfinishedTasks(jobId: string): boolean {
    const c = this.tasks.taskCounts(jobId);
    return c ? c.pending + c.running + c.failed > 0 : (this.flush(), this.inner.hasUnfinishedTasks(jobId));
  }

  replicaCount(jobId: string): number {
    this.flush();
    return this.inner.replicaCount(jobId) + this.replicas.leasedInJob(jobId).filter((r) => !this.persisted.has(r.id)).length;
  }

  canaryCount(jobId: string): number { return this.inner.canaryCount(jobId); }

  failedTasks(jobId: string): TaskRow[] {
    if (this.tasks.taskCounts(jobId)?.failed === 0) return [];
    this.flush();
    return this.inner.failedTasks(jobId);
  }

  taintedCount(jobId: string): number {
    this.flush();
    return this.inner.taintedCount(jobId);
  }

  taintedTasks(jobId: string): TaskRow[] {
    this.flush();
    return this.current(this.inner.taintedTasks(jobId));
  }

  recoveryTasks(jobId: string, range?: BatchRange): TaskRow[] {
    this.flush();
    return this.inner.recoveryTasks(jobId, range);
  }

  recoveryReplicas(jobId: string, range?: BatchRange): ReplicaRow[] {
    this.flush();
    return this.inner.recoveryReplicas(jobId, range);
  }

  // Tasks.

  /** The running jobs' ids by priority, then age. */
  private runningOrder(): string[] {
    return this.runningJobs().sort((a, b) => b.priority - a.priority || a.createdAt - b.createdAt || (a.id < b.id ? -1 : 1)).map((j) => j.id);
  }

  assignableTasks(volunteerId: string, limit: number, filter: TaskFilter = {}): TaskRow[] {
    const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
    if (n === 0 || filter.models?.length === 0) return [];
    const only = filter.models && new Set(filter.models);
    const not = new Set(filter.excludeModels ?? []);
    return this.tasks.pick(filter.jobs ?? this.runningOrder(), n, {
      touched: (t) => this.replicas.touched(t.id, volunteerId),
      model: (m) => (!only || only.has(m)) && !not.has(m),
      deferred: filter.deferModels?.length ? new Set(filter.deferModels) : undefined,
      readySince: filter.readySince,
    });
  }

  probeTasks(volunteerId: string, limit: number): TaskRow[] {
    const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
    const out: TaskRow[] = [];
    if (n === 0) return out;
    const jobs = this.runningJobs().map((j) => j.id);
    for (let i = jobs.length - 1; i > 0; i--) {
      const k = Math.floor(Math.random() * (i + 1));
      [jobs[i], jobs[k]] = [jobs[k]!, jobs[i]!];
    }
    for (const jobId of jobs) {
      const ids = this.tasks.doneCanaries(jobId);
      const start = Math.floor(Math.random() * ids.length);
      for (let i = 0; i < ids.length; i++) {
        const id = ids[(start + i) % ids.length]!;
        if (this.replicas.ranTask(id, volunteerId)) continue;
        out.push(this.tasks.get(id)!);
        if (out.length >= n) return out;
      }
    }
    return out;
  }

  unreadyCanaries(): TaskRow[] {
    const jobs = this.runningJobs().sort((a, b) => a.createdAt - b.createdAt);
    return jobs.flatMap((j) => [...this.tasks.tasksOf(j.id)].filter((t) => t.canary && !t.ready));
  }

  /** Tasks the store found, as the memory has them where it holds them. */
  protected current(rows: TaskRow[]): TaskRow[] {
    return rows.map((t) => this.tasks.get(t.id) ?? t);
  }

  pendingTasksReturnedBy(volunteerId: string): TaskRow[] {
    this.flush();
    return this.current(this.inner.pendingTasksReturnedBy(volunteerId));
  }

  acceptedTasksReturnedBy(volunteerId: string): TaskRow[] {
    this.flush();
    return this.current(this.inner.acceptedTasksReturnedBy(volunteerId));
  }

  endedTasksReturnedBy(volunteerId: string): TaskRow[] {
    this.flush();
    return this.current(this.inner.endedTasksReturnedBy(volunteerId));
  }

  openTasksWithReplicas(): TaskRow[] {
    const age = new Map(this.runningJobs().map((j) => [j.id, j.createdAt]));
    return [...this.tasks.withReplicas()].sort((a, b) => age.get(a.jobId)! - age.get(b.jobId)! || a.stage - b.stage || a.batch - b.batch);
  }

  stalledTasks(limit: number): TaskRow[] {
    const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
    const out: TaskRow[] = [];
    if (n === 0) return out;
    for (const t of this.tasks.partlyServed(this.runningOrder())) {
      if (this.replicas.ofTask(t.id).some((r) => r.status === 'leased')) continue;
      out.push(t);
      if (out.length >= n) break;
    }
    return out;
  }

  // Replicas.

  replicasOfTask(taskId: string, status?: ReplicaStatus): ReplicaRow[] {
    const task = this.tasks.get(taskId);
    let rows: ReplicaRow[];
    if (task && task.status === 'pending') rows = this.replicas.ofTask(taskId);
    else {
      this.flush();
      const mine = new Map(this.replicas.ofTask(taskId).map((r) => [r.id, r]));
      rows = this.inner.replicasOfTask(taskId).map((r) => mine.get(r.id) ?? r);
      for (const r of mine.values()) if (!this.persisted.has(r.id)) rows.push(r);
      rows.sort(byLeaseTime);
    }
    return status === undefined ? rows : rows.filter((r) => r.status === status);
  }

  leasedBefore(now: number): ReplicaRow[] { return this.replicas.leasedBefore(now); }
  leasedByWorker(workerId: string): ReplicaRow[] { return this.replicas.leasedByWorker(workerId); }
  leasedCountByWorker(workerId: string): number { return this.replicas.leasedCountByWorker(workerId); }
  leasedInJob(jobId: string): ReplicaRow[] { return this.replicas.leasedInJob(jobId); }
  allLeased(): ReplicaRow[] { return this.replicas.allLeased(); }
  leasedByVolunteer(volunteerId: string): ReplicaRow[] { return this.replicas.leasedByVolunteer(volunteerId); }

  newcomerLeasesByOrigin(origin: string, vetted: { canaries: number; valid: number; createdBefore: number }): number {
    let n = 0;
    for (const r of this.replicas.leasedByOrigin(origin)) {
      const v = this.getVolunteer(r.volunteerId);
      if (!v || v.canaryPassed < vetted.canaries || v.valid < vetted.valid || v.canaryFailed > 0 || v.createdAt > vetted.createdBefore) n++;
    }
    return n;
  }

  replicasOfJob(jobId: string): ReplicaRow[] {
    this.flush();
    const rows = this.inner.replicasOfJob(jobId).map((r) => this.replicas.get(r.id) ?? r);
    for (const r of this.replicas.leasedInJob(jobId)) if (!this.persisted.has(r.id)) rows.push(r);
    return rows.sort(byLeaseTime);
  }
}
