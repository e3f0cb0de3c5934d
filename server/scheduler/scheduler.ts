/**
 * Hands tasks to workers and takes their results: leases, expiry, reissue, retry cap, distinct
 * volunteers per task, and verification through verify/. Plain TypeScript over the Store, so tests can
 * drive it with a fake clock and no sockets; the socket layer gives it `deliver` and `cancel` callbacks.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { AppError } from '../../shared/errors.js';
import type { TaskAssignment, WireTensor } from '../../shared/protocol.js';
import { packTensors, unpackTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';
import type { JobRow, ModelRow, ReplicaRow, Store, TaskRow } from '../store/store.js';
import { decide } from '../verify/verifier.js';
import type { Clock } from './clock.js';
import { outputProblem } from './result-check.js';

export interface SchedulerConfig {
  leaseMs: number;
  /** Failed, invalid or lapsed replicas a task may have before it is given up as failed. */
  maxFailures: number;
}

export interface SchedulerEvents {
  deliver(workerId: string, tasks: TaskAssignment[]): void;
  cancel(workerId: string, replicaIds: string[]): void;
  jobChanged?(jobId: string): void;
}

export interface SchedulerDeps {
  store: Store;
  clock: Clock;
  log: Logger;
  config: SchedulerConfig;
  /** The input tensors of one task (a slice of the job's data sets). */
  taskInputs(job: JobRow, task: TaskRow): WireTensor[];
}

interface WorkerEntry { volunteerId: string; demand: number }

export interface ResultMeta { backend: string; runMs: number }

const newId = (prefix: string) => `${prefix}-${randomBytes(8).toString('hex')}`;

export class Scheduler {
  private readonly workers = new Map<string, WorkerEntry>();
  private readonly models = new Map<string, ModelRow>();
  private dispatching = false;
  private dispatchAgain = false;
  private events: SchedulerEvents = { deliver: () => {}, cancel: () => {} };

  constructor(private readonly deps: SchedulerDeps) {}

  /** The transport's callbacks: push tasks to a worker, withdraw replicas from one, note job changes. */
  setEvents(events: SchedulerEvents): void {
    this.events = events;
  }

  /** After a restart no worker holds the old leases: return them to the queue at once. */
  recoverLeases(): number {
    const { store } = this.deps;
    const stale = store.allLeased();
    store.transaction(() => {
      for (const r of stale) this.dropReplica(r, 'released', null);
    });
    return stale.length;
  }

  connect(workerId: string, volunteerId: string): void {
    this.workers.set(workerId, { volunteerId, demand: 0 });
  }

  /** A dropped socket: its leases go back to the queue (not counted as failures). */
  disconnect(workerId: string): void {
    this.workers.delete(workerId);
    const { store } = this.deps;
    const held = store.leasedByWorker(workerId);
    if (held.length === 0) return;
    store.transaction(() => {
      for (const r of held) this.dropReplica(r, 'released', null);
    });
    this.deps.log.info({ workerId, released: held.length }, 'worker left; leases returned');
    this.dispatch();
  }

  get connectedWorkers(): number {
    return this.workers.size;
  }

  /** Leases up to `slots` tasks now; the rest is remembered as demand and filled when work appears. */
  requestWork(workerId: string, slots: number): TaskAssignment[] {
    const w = this.workers.get(workerId);
    if (!w) throw new AppError('UNAUTHORIZED', 'say worker:hello before asking for work');
    const tasks = this.lease(workerId, w.volunteerId, slots);
    w.demand = slots - tasks.length;
    return tasks;
  }

  /** Called when new tasks may be assignable (job created, lease lapsed, more replicas wanted). */
  dispatch(): void {
    if (this.dispatching) { this.dispatchAgain = true; return; }
    this.dispatching = true;
    try {
      do {
        this.dispatchAgain = false;
        for (const [workerId, w] of this.workers) {
          if (w.demand <= 0) continue;
          const tasks = this.lease(workerId, w.volunteerId, w.demand);
          if (tasks.length === 0) continue;
          w.demand -= tasks.length;
          this.events.deliver(workerId, tasks);
        }
      } while (this.dispatchAgain);
    } finally {
      this.dispatching = false;
    }
  }

  /** Lapses every lease past its deadline; each counts as a failure of its task. */
  sweep(): number {
    const { store, clock } = this.deps;
    const lapsed = store.leasedBefore(clock.now());
    if (lapsed.length === 0) return 0;
    store.transaction(() => {
      for (const r of lapsed) this.dropReplica(r, 'expired', `lease expired: no answer within ${this.deps.config.leaseMs} ms`);
    });
    this.deps.log.info({ lapsed: lapsed.length }, 'leases expired');
    this.dispatch();
    return lapsed.length;
  }

  /**
   * Records a replica's outputs and decides its task. Acknowledge the worker only after this returns:
   * the result is committed by then.
   */
  submitResult(workerId: string, replicaId: string, outputs: Tensor[], meta: ResultMeta): { accepted: boolean } {
    const { store, clock } = this.deps;
    const w = this.workers.get(workerId);
    if (!w) throw new AppError('UNAUTHORIZED', 'say worker:hello before sending results');
    let changedJob: string | null = null;
    let needDispatch = false;
    const cancels: ReplicaRow[] = [];
    const result = store.transaction((): { accepted: boolean } | { problem: string } => {
      const replica = store.getReplica(replicaId);
      if (!replica || replica.volunteerId !== w.volunteerId) {
        throw new AppError('LEASE_NOT_HELD', `replica ${replicaId} is not leased to you`);
      }
      if (replica.status === 'returned') return { accepted: true }; // a repeat of a committed result
      if (replica.status === 'cancelled') return { accepted: false }; // withdrawn: the task settled or the job ended
      if (replica.status !== 'leased' && replica.status !== 'expired' && replica.status !== 'released') {
        throw new AppError('LEASE_NOT_HELD', `replica ${replicaId} is ${replica.status}`);
      }
      const task = store.getTask(replica.taskId);
      const job = store.getJob(replica.jobId);
      if (!task || !job || task.status !== 'pending' || job.status !== 'running') {
        store.updateReplica(replicaId, { status: 'cancelled' });
        if (replica.status === 'leased' && task) store.updateTask(task.id, { active: task.active - 1 });
        return { accepted: false };
      }
      const wasActive = replica.status === 'leased';
      const problem = outputProblem(outputs, this.model(job.model).outputs, task.itemEnd - task.itemStart);
      if (problem) {
        this.failReplica(replica, task, job, 'invalid', problem, wasActive);
        changedJob = job.id;
        needDispatch = true;
        return { problem };
      }
      store.setReplicaOutputs(replicaId, packTensors(outputs));
      store.updateReplica(replicaId, { status: 'returned', backend: meta.backend, runMs: meta.runMs, returnedAt: clock.now() });
      const active = task.active + (wasActive ? 0 : 1);
      store.updateTask(task.id, { active });
      changedJob = job.id;
      const d = this.verify({ ...task, active }, job);
      needDispatch = d.needDispatch;
      cancels.push(...d.cancels);
      return { accepted: true };
    });
    this.after(changedJob, needDispatch, cancels);
    if ('problem' in result) throw new AppError('INVALID_PAYLOAD', `result refused: ${result.problem}`);
    return result;
  }

  /** The worker could not run the task (the model failed in its runtime, out of memory...). */
  reportError(workerId: string, replicaId: string, message: string): void {
    const { store } = this.deps;
    const w = this.workers.get(workerId);
    if (!w) throw new AppError('UNAUTHORIZED', 'say worker:hello first');
    let jobId: string | null = null;
    store.transaction(() => {
      const replica = store.getReplica(replicaId);
      if (!replica || replica.volunteerId !== w.volunteerId || replica.status !== 'leased') {
        throw new AppError('LEASE_NOT_HELD', `replica ${replicaId} is not leased to you`);
      }
      const task = store.getTask(replica.taskId)!;
      const job = store.getJob(replica.jobId)!;
      this.failReplica(replica, task, job, 'failed', message, true);
      jobId = job.id;
    });
    this.after(jobId, true, []);
  }

  /** Cancels a running job: its leases are withdrawn from the workers holding them. */
  cancelJob(jobId: string): void {
    const { store, clock } = this.deps;
    const leased = store.leasedInJob(jobId);
    store.transaction(() => {
      store.setJobStatus(jobId, 'cancelled', clock.now());
      for (const r of leased) store.updateReplica(r.id, { status: 'cancelled' });
    });
    this.after(jobId, false, leased);
  }

  private model(hash: string): ModelRow {
    let m = this.models.get(hash);
    if (!m) {
      m = this.deps.store.getModel(hash);
      if (!m) throw new AppError('NOT_FOUND', `model ${hash} not found`);
      this.models.set(hash, m);
    }
    return m;
  }

  private lease(workerId: string, volunteerId: string, slots: number): TaskAssignment[] {
    const { store, clock, config } = this.deps;
    if (slots <= 0) return [];
    return store.transaction(() => {
      const out: TaskAssignment[] = [];
      const now = clock.now();
      for (const task of store.assignableTasks(volunteerId, slots)) {
        const job = store.getJob(task.jobId)!;
        const replicaId = newId('r');
        store.insertReplica({
          id: replicaId, taskId: task.id, jobId: job.id, workerId, volunteerId, status: 'leased',
          leasedAt: now, leaseExpires: now + config.leaseMs, backend: null, runMs: null, error: null, returnedAt: null,
        });
        store.updateTask(task.id, { active: task.active + 1 });
        out.push({
          replicaId, taskId: task.id, jobId: job.id, modelHash: job.model, modelUrl: `/models/${job.model}`,
          inputs: this.deps.taskInputs(job, task), leaseMs: config.leaseMs,
        });
      }
      return out;
    });
  }

  /** Takes a leased replica out of play; `reason` non-null counts it as a failure of its task. */
  private dropReplica(r: ReplicaRow, status: 'expired' | 'released', reason: string | null): void {
    const { store } = this.deps;
    const task = store.getTask(r.taskId);
    const job = store.getJob(r.jobId);
    if (!task || !job) return;
    if (reason) { this.failReplica(r, task, job, 'expired', reason, true); return; }
    store.updateReplica(r.id, { status });
    store.updateTask(task.id, { active: task.active - 1 });
  }

  private failReplica(r: ReplicaRow, task: TaskRow, job: JobRow, status: 'failed' | 'invalid' | 'expired', reason: string, wasActive: boolean): void {
    const { store, clock, config } = this.deps;
    store.updateReplica(r.id, { status, error: reason });
    const failures = task.failures + 1;
    const active = task.active - (wasActive ? 1 : 0);
    if (failures >= config.maxFailures && task.status === 'pending') {
      store.updateTask(task.id, { failures, active, status: 'failed', error: `failed on ${failures} workers; last: ${reason}` });
      store.setJobStatus(job.id, 'failed', clock.now(), `batch ${task.batch} failed on ${failures} workers: ${reason}`);
      this.deps.log.warn({ jobId: job.id, taskId: task.id, reason }, 'task failed; job failed');
    } else {
      store.updateTask(task.id, { failures, active });
    }
  }

  /** Runs the verifier on a task's returned replicas and applies its decision (inside a transaction). */
  private verify(task: TaskRow, job: JobRow): { needDispatch: boolean; cancels: ReplicaRow[] } {
    const { store, clock } = this.deps;
    const returned = store.replicasOfTask(task.id, 'returned').map((r) => ({
      id: r.id, outputs: unpackTensors(store.replicaOutputs(r.id)!),
    }));
    const inFlight = task.active - returned.length;
    const d = decide(returned, task.wanted, inFlight, {
      quorum: job.replicas, maxReplicas: job.maxReplicas, rtol: job.rtol, atol: job.atol,
    });
    switch (d.verdict) {
      case 'wait':
        return { needDispatch: false, cancels: [] };
      case 'more':
        store.updateTask(task.id, { wanted: task.wanted + 1 });
        this.deps.log.info({ taskId: task.id, detail: d.detail }, 'replicas disagree; one more wanted');
        return { needDispatch: true, cancels: [] };
      case 'fail':
        store.updateTask(task.id, { status: 'failed', error: d.detail });
        store.setJobStatus(job.id, 'failed', clock.now(), `batch ${task.batch}: ${d.detail}`);
        return { needDispatch: false, cancels: this.withdraw(store.leasedInJob(job.id)) };
      case 'accept': {
        store.setTaskResult(task.id, store.replicaOutputs(d.replicaId)!);
        store.updateTask(task.id, { status: 'done', doneAt: clock.now() });
        const counts = store.taskCounts(job.id);
        if (counts.done === counts.total) store.setJobStatus(job.id, 'completed', clock.now());
        return { needDispatch: false, cancels: this.withdraw(store.replicasOfTask(task.id, 'leased')) };
      }
    }
  }

  private withdraw(leased: ReplicaRow[]): ReplicaRow[] {
    for (const r of leased) this.deps.store.updateReplica(r.id, { status: 'cancelled' });
    return leased;
  }

  private after(jobId: string | null, needDispatch: boolean, cancels: ReplicaRow[]): void {
    const byWorker = new Map<string, string[]>();
    for (const r of cancels) byWorker.set(r.workerId, [...(byWorker.get(r.workerId) ?? []), r.id]);
    for (const [workerId, ids] of byWorker) this.events.cancel(workerId, ids);
    if (jobId) this.events.jobChanged?.(jobId);
    if (needDispatch) this.dispatch();
  }
}
