/**
 * What changes jobs and volunteers from outside a worker's events: a restart, a researcher cancelling a job or asking
 * for its tainted tasks again, an interactive answer the server refuted, and, on a shared database (cluster/), what
 * another server did: a slice taken over, a job ended there, a volunteer quarantined there. Each runs in a transaction of its own; what it means for workers (leases
 * withdrawn, checks, dispatch) goes back through the scheduler's `after`.
 */
import { AppError } from '../../shared/errors.js';
import type { JobRow, ReplicaRow, TaskRow } from '../store/store.js';
import type { SchedulerDeps } from './scheduler-types.js';
import { type Effects, type Settler, noEffects } from './settle.js';

export interface JobControlDeps extends Pick<SchedulerDeps, 'store' | 'clock'> {
  settler: Settler;
  /** The scheduler's handling of a transaction's effects. */
  after(fx: Effects): void;
  /** A job running (again): its tasks go out. */
  runAgain(job: JobRow): void;
  jobChanged(jobId: string): void;
}

export class JobControl {
  constructor(private readonly deps: JobControlDeps) {}

  /** After a restart (see Scheduler.recoverLeases); returns how many leases went back to the queue. */
  recoverLeases(): number {
    const { store, settler } = this.deps;
    for (const job of store.listJobs()) if (job.status === 'running') this.deps.runAgain(job);
    const stale = store.allLeased();
    const fx = noEffects();
    store.transaction(() => {
      for (const r of stale) settler.dropReplica(r, 'released', null, fx);
      for (const task of store.openTasksWithReplicas()) settler.verify(task, store.getJob(task.jobId)!, fx);
    });
    this.deps.after(fx);
    return stale.length;
  }

  /** A volunteer caught giving a wrong answer: quarantined for good (see Scheduler.interactiveRefuted). */
  condemn(volunteerId: string): void {
    const fx = noEffects();
    this.deps.store.transaction(() => this.deps.settler.condemn(volunteerId, fx));
    this.deps.after(fx);
  }

  /** Cancels a running job: its leases are withdrawn from the workers holding them. */
  cancelJob(jobId: string): void {
    const { store, clock } = this.deps;
    const fx = noEffects();
    store.transaction(() => {
      store.setJobStatus(jobId, 'cancelled', clock.now());
      for (const r of store.leasedInJob(jobId)) {
        store.updateReplica(r.id, { status: 'cancelled' });
        fx.cancels.push(r);
      }
      fx.jobs.add(jobId);
    });
    this.deps.after(fx);
  }

  /** Reopens a job's tainted tasks (see Scheduler.rerunTainted); returns how many were reopened. */
  rerunTainted(jobId: string): number {
    const { store, clock, settler } = this.deps;
    const fx = noEffects();
    const reopened = store.transaction(() => {
      const job = store.getJob(jobId);
      if (!job) throw new AppError('NOT_FOUND', `job ${jobId} not found`);
      if (job.status === 'cancelled') throw new AppError('CONFLICT', 'the job was cancelled');
      let n = 0;
      for (const task of store.taintedTasks(jobId)) {
        if (store.getTask(task.id)?.status !== 'done') continue;
        settler.reopen(task, fx, true);
        n++;
      }
      if (n > 0 && job.status !== 'running') store.setJobStatus(jobId, 'running', clock.now(), null);
      return n;
    });
    this.deps.after(fx);
    if (reopened > 0) this.deps.runAgain(store.getJob(jobId)!);
    return reopened;
  }

  /** Open tasks with replicas back in a slice taken over: decided again, as after a restart. */
  decideAgain(tasks: TaskRow[]): void {
    const { store, settler } = this.deps;
    const fx = noEffects();
    store.transaction(() => {
      for (const t of tasks) {
        const task = store.getTask(t.id);
        const job = store.getJob(t.jobId);
        if (task?.status === 'pending' && job?.status === 'running') settler.verify(task, job, fx);
      }
    });
    fx.dispatch = true;
    this.deps.after(fx);
  }

  /** A job ended on another server: its leases here are withdrawn from the workers holding them. */
  withdrawJob(jobId: string): void {
    this.withdraw(() => this.deps.store.leasedInJob(jobId), jobId);
  }

  /**
   * Leases still out on a slice this server gives up (see ClusterMember): withdrawn from the workers holding them,
   * and written so, so that a result which crosses the withdrawal is told it was withdrawn.
   */
  withdrawLeases(replicaIds: string[]): void {
    const { store } = this.deps;
    this.withdraw(() => replicaIds.map((id) => store.getReplica(id)).filter((r) => r?.status === 'leased') as ReplicaRow[]);
  }

  private withdraw(leased: () => ReplicaRow[], jobId?: string): void {
    const { store } = this.deps;
    const fx = noEffects();
    store.transaction(() => {
      for (const r of leased()) { store.updateReplica(r.id, { status: 'cancelled' }); fx.cancels.push(r); }
      if (jobId) fx.jobs.add(jobId);
    });
    this.deps.after(fx);
  }

  /** Completes a running job whose tasks are all done (its last slice may have been finished by another server). */
  completeIfDone(jobId: string): void {
    this.deps.store.transaction(() => this.deps.settler.completeIfDone(jobId));
    this.deps.jobChanged(jobId);
  }

  /** A volunteer quarantined by another server: its leases here are withdrawn and what it did here decided again. */
  quarantinedElsewhere(volunteerId: string): void {
    const fx = noEffects();
    this.deps.store.transaction(() => this.deps.settler.quarantine(volunteerId, fx));
    this.deps.after(fx);
  }
}
