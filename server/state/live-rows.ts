/**
 * The scheduler's working state in memory, with the store as its durable log: the rows (jobs, tasks, replicas,
 * volunteers) and how they change. A change is made in memory (live-tasks.ts, live-replicas.ts, live-volunteers.ts)
 * and the row is written once, when the outermost transaction ends (the per-turn group commit of api/tick-batch.ts),
 * so an acknowledged result is committed. Leases are never written: they lapse on a restart anyway, and on start the
 * memory is rebuilt from the store. A unit that throws is undone in memory (unit-log.ts); once a commit has landed,
 * settled tasks and their replicas leave memory. The questions the scheduler asks of these rows are live-store.ts's.
 */
import type { JobStatus } from '../../shared/protocol.js';
import type {
  JobRow, ReplicaPatch, ReplicaRow, RunningJobRow, Store, TaskPatch, TaskRow, VolunteerCounts, VolunteerPatch, VolunteerRow,
} from '../store/store.js';
import { LiveReplicas } from './live-replicas.js';
import { DURABLE_TASK_COLUMNS, LiveTasks, patched, settledCounts } from './live-tasks.js';
import { LiveVolunteers } from './live-volunteers.js';
import { SettledResults } from './settled-results.js';
import { StoreThroughLog } from './store-through-log.js';

export abstract class LiveRows extends StoreThroughLog {
  protected readonly tasks = new LiveTasks();
  protected readonly replicas = new LiveReplicas();
  protected readonly jobs = new Map<string, JobRow>();
  protected readonly volunteers: LiveVolunteers;
  /** Replicas the store has a row for (a lease gets one when it ends). */
  protected readonly persisted = new Set<string>();
  /** Replicas that may leave memory once this transaction has committed. */
  protected readonly leaving = new Set<string>();
  /** Tasks settled in this transaction: they leave memory once it has committed. */
  protected readonly settling = new Set<string>();
  protected readonly results = new SettledResults();
  /** The row of a task not in memory last read from the store, until anything is written (what `updateTask` reads). */
  private lastRead: TaskRow | null = null;
  /** The columns of each task changed since it was last written (a lease's count is never written). */
  protected readonly taskChanges = new Map<string, Set<keyof TaskPatch>>();

  /** Rebuilds the working state of running jobs from `inner`; leases left in it from an older TabGrid are released. */
  constructor(inner: Store) {
    super(inner);
    this.volunteers = new LiveVolunteers(inner, this.log);
    inner.transaction(() => {
      for (const r of inner.allLeased()) inner.updateReplica(r.id, { status: 'released' });
      for (const job of inner.listJobs()) if (job.status === 'running') this.goLive(job);
    });
  }

  /** Takes a running job's tasks and the replicas of its open tasks into memory. */
  protected goLive(job: JobRow): void {
    this.jobs.set(job.id, job);
    const replicas = this.inner.recoveryReplicas(job.id);
    const returned = new Map<string, number>();
    for (const r of replicas) {
      this.replicas.set(r.id, r);
      this.persisted.add(r.id);
      if (r.status === 'returned') returned.set(r.taskId, (returned.get(r.taskId) ?? 0) + 1);
    }
    // `active` counts leases too, and none survive a restart: it is what came back.
    const open = this.inner.recoveryTasks(job.id);
    for (const t of open) if (t.status === 'pending') t.active = returned.get(t.id) ?? 0;
    this.tasks.load(job, open, this.inner.stageCounts(job.id));
  }

  protected noteUndo(fn: () => void): void {
    this.log.noteUndo(fn);
  }

  protected abandoned(): void {
    this.lastRead = null;
    this.results.abandoned();
    this.leaving.clear();
    this.settling.clear();
  }

  /** Writes one changed row (`t:`, `r:` or `v:` and its id) as memory holds it. */
  protected writeRow(key: string): void {
    const id = key.slice(2);
    if (key[0] === 'r') {
      const r = this.replicas.get(id);
      if (!r) return;
      if (this.persisted.has(id)) {
        this.inner.updateReplica(id, { status: r.status, backend: r.backend, runMs: r.runMs, error: r.error, returnedAt: r.returnedAt, workerClass: r.workerClass });
      } else if (r.status !== 'leased') {
        this.inner.insertReplica(r);
        this.persisted.add(id);
        this.noteUndo(() => this.persisted.delete(id));
      }
    } else if (key[0] === 't') {
      const t = this.tasks.get(id);
      if (!t) return;
      // The columns changed, or all of them when a rolled-back write is written again.
      const keys = this.taskChanges.get(id) ?? DURABLE_TASK_COLUMNS;
      this.taskChanges.delete(id);
      const patch: Record<string, unknown> = {};
      for (const k of keys) patch[k] = t[k];
      this.inner.updateTask(id, patch as TaskPatch);
    } else {
      this.volunteers.write(id);
    }
  }

  /** After a commit: what the store now holds and the scheduler no longer needs leaves memory. */
  protected committed(): void {
    this.lastRead = null;
    this.results.committed();
    // A row still to be written (changed outside a transaction while this one's commit was landing) stays for now.
    for (const id of this.settling) {
      if (this.log.isDirty(`t:${id}`)) continue;
      this.tasks.evict(id);
      this.settling.delete(id);
    }
    for (const jobId of [...this.tasks.jobIds()]) {
      if (this.jobs.get(jobId)?.status === 'running') continue;
      for (const taskId of this.tasks.drop(jobId)) for (const r of this.replicas.ofTask(taskId)) this.leaving.add(r.id);
    }
    for (const id of this.leaving) {
      const r = this.replicas.get(id);
      if (r && this.log.isDirty(`r:${id}`)) continue;
      this.leaving.delete(id);
      if (!r || r.status === 'leased' || !this.persisted.has(id)) continue;
      const task = this.tasks.get(r.taskId);
      if (task && (task.status === 'pending' || task.canary)) continue;
      this.replicas.set(id, undefined);
      this.persisted.delete(id);
    }
    if (!this.log.isDirty()) this.volunteers.trim();
  }

  close(): void {
    this.transaction(() => {});
    this.inner.close();
  }

  // Volunteers: the records being used are kept and written back; rankings are the store's.

  volunteerFor(tokenHash: string, newId: string, now: number): { id: string; created: boolean } {
    return this.log.write(() => this.inner.volunteerFor(tokenHash, newId, now));
  }

  getVolunteer(id: string): VolunteerRow | undefined {
    return this.volunteers.get(id);
  }

  /** Reads a volunteer's record again from the store (what other servers counted). */
  refreshVolunteer(id: string): VolunteerRow | undefined {
    this.flush();
    return this.volunteers.refresh(id);
  }

  addToVolunteer(id: string, counts: VolunteerCounts, patch: VolunteerPatch = {}): void {
    this.volunteers.update(id, patch, counts);
  }

  updateVolunteer(id: string, patch: VolunteerPatch): void {
    this.volunteers.update(id, patch);
  }

  // Jobs.

  createJob(job: JobRow, tasks: TaskRow[]): void {
    this.log.write(() => this.inner.createJob(job, tasks));
    this.takeNewJob(job, tasks);
  }

  /** Creates a job on the store's own time (see Store.createJobAsync), then takes it into memory. */
  async createJobAsync(job: JobRow, tasks: TaskRow[]): Promise<void> {
    if (!this.inner.createJobAsync) { this.createJob(job, tasks); return; }
    await this.inner.createJobAsync(job, tasks);
    this.takeNewJob(job, tasks);
  }

  /** A job just created comes into memory as recovery would take it. */
  protected takeNewJob(job: JobRow, tasks: TaskRow[]): void {
    this.jobs.set(job.id, job);
    if (job.status !== 'running') return;
    // What recovery would load: the open tasks and the done known-answer ones.
    this.tasks.load(job, tasks.filter((t) => t.status === 'pending' || (t.canary && t.status === 'done')), settledCounts(tasks));
    this.noteUndo(() => { this.tasks.drop(job.id); this.jobs.delete(job.id); });
  }

  getJob(id: string): JobRow | undefined {
    let job = this.jobs.get(id);
    if (!job) {
      job = this.inner.getJob(id);
      if (job) this.jobs.set(id, job);
    }
    return job;
  }

  listJobs(owner?: string): JobRow[] {
    return this.inner.listJobs(owner);
  }

  runningJobs(): RunningJobRow[] {
    if (!this.weights) this.weights = new Map(this.inner.listApiKeys().map((k) => [k.id, k.weight]));
    const out: RunningJobRow[] = [];
    for (const id of this.tasks.jobIds()) {
      const j = this.jobs.get(id)!;
      if (j.status === 'running') out.push({ id, owner: j.owner, priority: j.priority, createdAt: j.createdAt, weight: this.weights.get(j.owner) ?? 1 });
    }
    return out;
  }

  setJobStatus(id: string, status: JobStatus, at: number, error: string | null = null): void {
    this.log.write(() => this.inner.setJobStatus(id, status, at, error));
    const prev = this.getJob(id);
    if (!prev) return;
    const next: JobRow = { ...prev, status, finishedAt: status === 'running' ? null : at, error };
    this.jobs.set(id, next);
    this.tasks.updateJob(next);
    this.noteUndo(() => { this.jobs.set(id, prev); this.tasks.updateJob(prev); });
    if (status === 'running' && !this.tasks.has(id)) {
      this.goLive(next);
      this.noteUndo(() => this.tasks.drop(id));
    }
  }

  // Tasks.

  getTask(id: string): TaskRow | undefined {
    const held = this.tasks.get(id);
    if (held) return held;
    this.flush();
    this.lastRead = this.inner.getTask(id) ?? null;
    return this.lastRead ?? undefined;
  }

  updateTask(id: string, patch: TaskPatch): void {
    let prev = this.tasks.get(id);
    const adopted = !prev;
    if (!prev) {
      // A settled task of a running job (it left memory) comes back; any other goes to the store as it is, with the
      // turn's writes (a read of it first writes what is pending).
      const stored = this.lastRead?.id === id ? this.lastRead : this.inner.getTask(id);
      this.lastRead = null;
      if (!stored || !this.tasks.has(stored.jobId) || !this.holds(stored)) { this.log.defer(() => this.inner.updateTask(id, patch)); return; }
      prev = stored;
    }
    const before = prev;
    const next = { ...before };
    let changes = this.taskChanges.get(id);
    for (const [k, v] of Object.entries(patch) as [keyof TaskPatch, unknown][]) {
      if (v === undefined || next[k] === v) continue;
      (next as Record<string, unknown>)[k] = v;
      if (k !== 'active') (changes ??= new Set()).add(k);
    }
    if (before.status !== 'pending' && next.status === 'pending') this.reloadReplicas(id);
    this.tasks.set(next, before);
    this.noteUndo(() => { this.tasks.set(before, next); if (adopted) this.tasks.evict(id); });
    if (next.status !== 'pending') {
      this.settling.add(id);
      for (const r of this.replicas.ofTask(id)) this.leaving.add(r.id);
    }
    if (changes) {
      this.taskChanges.set(id, changes);
      this.log.touch(`t:${id}`);
    }
  }

  /** Whether this server holds the task's part of the job (all of it, but where servers share a database). */
  protected holds(_task: TaskRow): boolean {
    return true;
  }

  /** Whether memory holds the task pending: it waits for a decision here (settled ones leave memory). No store read. */
  pendingHere(id: string): boolean {
    return this.tasks.get(id)?.status === 'pending';
  }

  /** A settled task opened again: its replicas come back into memory, so who ran it still counts. */
  private reloadReplicas(taskId: string): void {
    this.flush();
    for (const r of this.inner.replicasOfTask(taskId)) {
      if (this.replicas.get(r.id)) continue;
      this.replicas.set(r.id, r);
      this.persisted.add(r.id);
      this.noteUndo(() => { this.replicas.set(r.id, undefined); this.persisted.delete(r.id); });
    }
  }

  clearTaskResult(id: string): void { this.stageResult(id, undefined); this.log.defer(() => this.inner.clearTaskResult(id)); }
  setTaskResult(id: string, result: Uint8Array): void { this.stageResult(id, result); this.log.defer(() => this.inner.setTaskResult(id, result)); }
  setTaskResultOf(id: string, replicaId: string): void {
    this.stageResult(id, this.replicas.outputsOf(replicaId));
    this.log.defer(() => this.inner.setTaskResultOf(id, replicaId));
  }

  /**
   * A result set in this unit: a known-answer task's is kept in memory once its transaction commits (`undefined`: read
   * from the store). Only those: other results are seldom read again, and holding them would grow the heap.
   */
  private stageResult(id: string, result: Uint8Array | undefined): void {
    const prev = this.results.staging(id);
    this.results.stage(id, this.tasks.get(id)?.canary ? result : undefined);
    this.noteUndo(() => this.results.unstage(id, prev));
  }

  /**
   * A known-answer task's answer is read for every probe a newcomer returns: those this server computed are kept from
   * their commit, others once read (up to a bound).
   */
  taskResult(id: string): Uint8Array | undefined {
    const cached = this.results.get(id);
    if (cached) return cached;
    this.flush();
    const result = this.inner.taskResult(id);
    const task = this.tasks.get(id);
    if (result && task?.canary && task.status === 'done' && !this.results.staging(id)) this.results.keep(id, result);
    return result;
  }

  taskResults(jobId: string, stage: number): Iterable<{ batch: number; result: Uint8Array }> {
    this.flush();
    return this.inner.taskResults(jobId, stage);
  }

  // Replicas.

  insertReplica(row: ReplicaRow): void {
    this.replicas.set(row.id, row);
    this.noteUndo(() => this.replicas.set(row.id, undefined));
    if (row.status !== 'leased') this.log.touch(`r:${row.id}`);
  }

  getReplica(id: string): ReplicaRow | undefined {
    return this.replicas.get(id) ?? this.inner.getReplica(id);
  }

  updateReplica(id: string, patch: ReplicaPatch): void {
    const prev = this.replicas.get(id);
    if (!prev) { this.log.write(() => this.inner.updateReplica(id, patch)); return; }
    const next = patched(prev, patch);
    this.replicas.set(id, next);
    this.noteUndo(() => this.replicas.set(id, prev));
    this.leaving.add(id);
    this.log.touch(`r:${id}`);
  }

  /** Outputs are written at once (a returned replica is part of the durable log) and kept while their task is open. */
  setReplicaOutputs(id: string, outputs: Uint8Array): void {
    const prev = this.replicas.outputsOf(id);
    this.replicas.setOutputs(id, outputs);
    this.noteUndo(() => this.replicas.setOutputs(id, prev));
    this.log.defer(() => this.inner.setReplicaOutputs(id, outputs));
  }

  replicaOutputs(id: string): Uint8Array | undefined {
    return this.replicas.outputsOf(id) ?? this.inner.replicaOutputs(id);
  }

  // Retention: the store's, after what is pending; a deleted job is forgotten here too.

  /**
   * Deletes a job and forgets it: its tasks, its replicas (leases included: cancel a running job first, so its
   * workers are told) and their outputs leave memory. A unit of its own: a delete is not undone in memory.
   */
  deleteJob(id: string): boolean {
    if (this.log.inTransaction) throw new Error('deleteJob is a unit of its own: call it outside a transaction');
    this.flush();
    const deleted = this.inner.deleteJob(id);
    this.results.forgetJob(id);
    for (const taskId of this.tasks.drop(id)) {
      this.taskChanges.delete(taskId);
      this.settling.delete(taskId);
    }
    for (const r of this.replicas.ofJob(id)) {
      this.replicas.set(r.id, undefined);
      this.persisted.delete(r.id);
      this.leaving.delete(r.id);
    }
    this.jobs.delete(id);
    return deleted;
  }
}
