/**
 * The live state of one server among several on one database: it holds in memory only the slices of work it has
 * claimed (SLICE_BATCHES batches of a job, every stage), so every task is decided by exactly one server and the
 * rules that count who ran a task (distinct volunteers and origins) hold across servers. What the memory no longer
 * sees whole (a job's counts, whether it is finished, a volunteer's tasks elsewhere) is asked of the store.
 * The claims themselves (who holds which slice, heartbeats, taking over a dead server's) are cluster/'s.
 */
import type { BatchRange, JobRow, ReplicaRow, StageCounts, Store, TaskCounts, TaskRow, ViewCounts } from '../store/store.js';
import { SLICE_BATCHES } from '../store/store.js';
import { totalCounts, viewCountsOf } from '../store/view-counts.js';
import { LiveStore } from './live-store.js';

export const sliceOf = (batch: number) => Math.floor(batch / SLICE_BATCHES);
export const sliceRange = (slice: number): BatchRange => ({ from: slice * SLICE_BATCHES, to: (slice + 1) * SLICE_BATCHES });
const key = (jobId: string, slice: number) => `${jobId}:${slice}`;

/** `c` with `running` of its open tasks running (the rest pending); the counts of the servers that hold them, together. */
function runningHere<C extends TaskCounts>(c: C, running: number): C {
  const open = c.pending + c.running;
  const r = Math.min(running, open);
  return { ...c, running: r, pending: open - r };
}

/** A slice held: which job, which one. */
export interface SliceRef { jobId: string; slice: number }

export class SlicedLiveStore extends LiveStore {
  /** Slices held, by `job:slice`. Initialised lazily: the base constructor calls goLive before fields exist. */
  private heldSlices?: Map<string, SliceRef>;
  /** The tasks of a job the other servers' workers hold, by stage (peer-views.ts). */
  private elsewhere: (jobId: string) => ReadonlyMap<number, number> | undefined = () => undefined;

  constructor(inner: Store) {
    super(inner);
  }

  private get held(): Map<string, SliceRef> {
    return (this.heldSlices ??= new Map());
  }

  /** A running job is known, with none of its tasks until a slice of it is taken. */
  protected goLive(job: JobRow): void {
    this.jobs.set(job.id, job);
    this.tasks.load(job, [], []);
  }

  protected holds(task: TaskRow): boolean {
    return this.held.has(key(task.jobId, sliceOf(task.batch)));
  }

  protected takeNewJob(job: JobRow): void {
    // Created on a connection of its own, it may have been learned from the store (and slices of it taken) already.
    if (this.tasks.has(job.id)) return;
    this.jobs.set(job.id, job);
    if (job.status !== 'running') return;
    this.tasks.load(job, [], []);
    this.noteUndo(() => { this.tasks.drop(job.id); this.jobs.delete(job.id); });
  }

  /**
   * A running job as memory holds it (the others tell of its end at once). One that has ended is read from the store
   * outside a transaction: another server may have deleted it since, or run it again.
   */
  override getJob(id: string): JobRow | undefined {
    const job = this.jobs.get(id);
    if (!job) return super.getJob(id);
    if (job.status === 'running' || this.log.inTransaction || this.tasks.has(id)) return job;
    const now = this.inner.getJob(id);
    if (now) this.jobs.set(id, now); else this.jobs.delete(id);
    return now;
  }

  /** A job's row as the store has it now (another server may have changed it); memory takes it without writing it. */
  refreshJob(id: string): JobRow | undefined {
    this.flush();
    const job = this.inner.getJob(id);
    if (!job) return undefined;
    this.jobs.set(id, job);
    this.tasks.updateJob(job);
    return job;
  }

  /** A job that became running on another server (or is new there): known here, its slices not held yet. */
  learnJob(job: JobRow): void {
    if (this.tasks.has(job.id)) return;
    this.goLive(job);
  }

  /**
   * Forgets a job that ended on another server: its tasks and replicas leave memory (its leases here should be
   * withdrawn first). Outside a transaction, with nothing of it pending.
   */
  forgetJob(job: JobRow): void {
    this.flush();
    this.jobs.set(job.id, job);
    for (const taskId of this.tasks.drop(job.id)) {
      for (const r of this.replicas.ofTask(taskId)) this.forgetReplica(r);
      this.taskChanges.delete(taskId);
      this.settling.delete(taskId);
    }
    for (const [k, ref] of this.held) if (ref.jobId === job.id) this.held.delete(k);
    this.results.forgetJob(job.id);
  }

  private forgetReplica(r: ReplicaRow): void {
    this.replicas.set(r.id, undefined);
    this.persisted.delete(r.id);
    this.leaving.delete(r.id);
  }

  /**
   * Takes a slice claimed in the store into memory: its open and known-answer tasks and their replicas. Returns the
   * open tasks that have replicas back (to be decided again, as after a restart).
   */
  takeSlice(jobId: string, slice: number): TaskRow[] {
    if (!this.tasks.has(jobId) || this.held.has(key(jobId, slice))) return [];
    this.flush();
    const range = sliceRange(slice);
    const returned = new Map<string, number>();
    for (const r of this.inner.recoveryReplicas(jobId, range)) {
      if (this.replicas.get(r.id)) continue;
      this.replicas.set(r.id, r);
      this.persisted.add(r.id);
      if (r.status === 'returned') returned.set(r.taskId, (returned.get(r.taskId) ?? 0) + 1);
    }
    const open = this.inner.recoveryTasks(jobId, range);
    for (const t of open) if (t.status === 'pending') t.active = returned.get(t.id) ?? 0;
    this.tasks.add(jobId, open);
    this.held.set(key(jobId, slice), { jobId, slice });
    return open.filter((t) => t.status === 'pending' && t.active > 0);
  }

  /**
   * The known-answer tasks of a slice held here still waiting for the server's answer: the server taking a slice
   * computes them (a job's creator passes over those of slices it does not hold: ServerRuns' `waitsHere`). An answer
   * for a task memory does not hold would go to the store alone, a read and a write inside the turn, and the slice's
   * holder, waiting for it in memory, would wait for ever.
   */
  unreadyCanariesOfSlice(jobId: string, slice: number): TaskRow[] {
    const { from, to } = sliceRange(slice);
    return [...this.tasks.tasksOf(jobId)].filter((t) => t.canary && !t.ready && t.status === 'pending' && t.batch >= from && t.batch < to);
  }

  /** Gives a slice back: its tasks and replicas leave memory (withdraw its leases first). Outside a transaction. */
  dropSlice(jobId: string, slice: number): void {
    this.flush();
    const range = sliceRange(slice);
    for (const taskId of this.tasks.dropRange(jobId, range.from, range.to)) {
      for (const r of this.replicas.ofTask(taskId)) this.forgetReplica(r);
      this.taskChanges.delete(taskId);
      this.settling.delete(taskId);
    }
    this.held.delete(key(jobId, slice));
    this.results.forgetJob(jobId);
  }

  /** The slices held now. */
  heldSlicesList(): SliceRef[] {
    return [...this.held.values()];
  }

  /** Open tasks of a held slice still in memory (none: the slice is finished here). */
  openInSlice(jobId: string, slice: number): number {
    const { from, to } = sliceRange(slice);
    let n = 0;
    for (const t of this.tasks.tasksOf(jobId)) if (t.status === 'pending' && t.batch >= from && t.batch < to) n++;
    return n;
  }

  /** Leases out on a slice's tasks. */
  leasesInSlice(jobId: string, slice: number): ReplicaRow[] {
    const { from, to } = sliceRange(slice);
    return this.replicas.leasedInJob(jobId).filter((r) => { const t = this.tasks.get(r.taskId); return t !== undefined && t.batch >= from && t.batch < to; });
  }

  /** Tasks in memory that want a replica now. */
  wantingCount(): number {
    return this.tasks.wantingCount();
  }

  /** Where the running tasks of the other servers are learnt (as they last told them). */
  countRunningElsewhere(of: (jobId: string) => ReadonlyMap<number, number> | undefined): void {
    this.elsewhere = of;
  }

  /** The tasks this server's workers hold now, by stage, for the jobs they hold any of. */
  runningByJob(): Map<string, Map<number, number>> {
    const out = new Map<string, Map<number, number>>();
    for (const jobId of this.tasks.jobIds()) {
      const stages = (this.tasks.stageCounts(jobId) ?? []).filter((s) => s.running > 0);
      if (stages.length) out.set(jobId, new Map(stages.map((s) => [s.stage, s.running])));
    }
    return out;
  }

  // What memory sees only in part: the store's (other servers' tasks included). The store holds no leases (they would
  // not survive a restart anyway), so its open tasks are all pending there: those running are this server's, as memory
  // counts them, and the other servers', as they last told them.

  taskCounts(jobId: string): TaskCounts {
    return totalCounts(this.stageCounts(jobId));
  }

  stageCounts(jobId: string): StageCounts[] {
    this.flush();
    return this.runningHere(jobId, this.inner.stageCounts(jobId));
  }

  viewCounts(jobId: string, ended: boolean): ViewCounts {
    this.flush();
    const counts = this.inner.viewCounts?.(jobId, ended) ?? viewCountsOf(this.inner, jobId);
    return { ...counts, stages: this.runningHere(jobId, counts.stages) };
  }

  private runningHere(jobId: string, stages: StageCounts[]): StageCounts[] {
    const here = new Map((this.tasks.stageCounts(jobId) ?? []).map((s) => [s.stage, s.running]));
    const elsewhere = this.elsewhere(jobId);
    return stages.map((s) => runningHere(s, (here.get(s.stage) ?? 0) + (elsewhere?.get(s.stage) ?? 0)));
  }

  hasUnfinishedTasks(jobId: string): boolean {
    const c = this.tasks.taskCounts(jobId);
    if (c && c.pending + c.running > 0) return true;
    this.flush();
    return this.inner.hasUnfinishedTasks(jobId);
  }

  failedTasks(jobId: string): TaskRow[] {
    this.flush();
    return this.inner.failedTasks(jobId);
  }

  /**
   * Only the tasks this server holds, to be reopened here: the servers holding others reopen theirs when told of the
   * quarantine. The rest (in slices already finished) are marked tainted, as in a job that has ended, for the
   * researcher to see and rerun (`tabgrid rerun`): reopening them would take a slice no server holds.
   */
  acceptedTasksReturnedBy(volunteerId: string): TaskRow[] {
    const all = super.acceptedTasksReturnedBy(volunteerId);
    for (const t of all) if (!this.holds(t) && !t.tainted) this.log.write(() => this.inner.updateTask(t.id, { tainted: true }));
    return all.filter((t) => this.holds(t));
  }

  pendingTasksReturnedBy(volunteerId: string): TaskRow[] {
    return super.pendingTasksReturnedBy(volunteerId).filter((t) => this.holds(t));
  }

  protected committed(): void {
    super.committed();
    for (const [k, ref] of this.held) if (!this.tasks.has(ref.jobId)) this.held.delete(k);
  }
}
