/**
 * Hands tasks to workers and takes their results: leases (capped by standing), expiry, reissue, straggler
 * backups, distinct volunteers per task, known-answer probes for volunteers not yet vetted, adaptive replication
 * for trusted ones, verification through settle.ts, and the server's own runs where volunteers cannot decide
 * (checks) or should be watched (audits). Plain TypeScript over the Store, so tests can drive it with a fake
 * clock and no sockets; the socket layer gives it `deliver` and `cancel` callbacks.
 */
import { AppError } from '../../shared/errors.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import { packTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { DEFAULT_REPUTATION } from '../verify/reputation.js';
import { FairShare } from './fair-share.js';
import { JobControl } from './job-control.js';
import { Leaser } from './leaser.js';
import { outputProblem } from './result-check.js';
import { type ResultMeta, ResultRefused, type SchedulerDeps, type SchedulerEvents, type ServerRunQueue } from './scheduler-types.js';
import { ServerAnswers } from './server-answers.js';
import { type Effects, Settler, noEffects } from './settle.js';
import { Stragglers } from './stragglers.js';
import { TaskPicker, type WorkerEntry, type WorkerProfile } from './task-picker.js';

export type { WorkerEntry, WorkerInfo, WorkerProfile } from './task-picker.js';
export { ResultRefused, type ResultMeta, type SchedulerConfig, type SchedulerDeps, type SchedulerEvents, type ServerRunQueue } from './scheduler-types.js';

/** Consecutive idle workers that find nothing before a dispatch stops looking. */
const DISPATCH_GIVE_UP = 64;

export class Scheduler {
  private readonly workers = new Map<string, WorkerEntry>();
  private readonly picker: TaskPicker;
  private readonly settler: Settler;
  private readonly random: () => number;
  private dispatching = false;
  private dispatchAgain = false;
  private sweeps = 0;
  private draining = false;
  private events: SchedulerEvents = { deliver: () => {}, cancel: () => {} };
  private serverRuns: ServerRunQueue | null = null;
  private readonly stragglers: Stragglers;
  private readonly leaser: Leaser;
  private readonly answers: ServerAnswers;
  private readonly control: JobControl;
  /** Whether a vetted volunteer is connected: set on its hello, looked at afresh on each sweep. */
  private vouchersOnline = false;

  constructor(private readonly deps: SchedulerDeps) {
    this.stragglers = new Stragglers(deps.config.stragglers);
    this.settler = new Settler({
      store: deps.store, clock: deps.clock, log: deps.log, reputation: deps.config.reputation ?? DEFAULT_REPUTATION, maxFailures: deps.config.maxFailures,
      vouchersOnline: () => this.vouchersOnline, observer: deps.observer,
    });
    this.random = deps.random ?? Math.random;
    this.picker = new TaskPicker({ store: deps.store, clock: deps.clock, shardAffinityMs: deps.config.shardAffinityMs ?? 10_000 });
    this.leaser = new Leaser({
      ...deps, settler: this.settler, picker: this.picker, fairShare: new FairShare(), random: this.random, vouchersOnline: () => this.vouchersOnline,
    });
    this.answers = new ServerAnswers({
      ...deps, settler: this.settler, model: (hash) => this.picker.model(hash), dispatch: () => this.dispatch(), after: (fx) => this.after(fx),
    });
    this.control = new JobControl({
      ...deps, settler: this.settler, after: (fx) => this.after(fx), runAgain: (job) => this.jobCreated(job), jobChanged: (id) => this.events.jobChanged?.(id),
    });
    deps.origins?.provide({ newcomerLeases: () => this.newcomerLeasesByOrigin() });
  }

  /** Newcomers' leases held on this server, per network origin (for the other servers of a shared database). */
  newcomerLeasesByOrigin(): [string, number][] {
    const origins = new Set<string>();
    for (const r of this.deps.store.allLeased()) if (r.origin !== null) origins.add(r.origin);
    return [...origins].map((o) => [o, this.leaser.newcomerLeases(o)]);
  }

  /** The transport's callbacks: push tasks to a worker, withdraw replicas from one, note job changes. */
  setEvents(events: SchedulerEvents): void {
    this.events = events;
  }

  /** Where checks and audits go (the server's own runs); without it, tasks that need one wait. */
  setServerRuns(runs: ServerRunQueue): void {
    this.serverRuns = runs;
  }

  /**
   * After a restart no worker holds the old leases: return them to the queue at once, and decide again the
   * tasks with replicas back (a check the server had queued before it stopped is asked for again).
   */
  recoverLeases(): number { return this.control.recoverLeases(); }

  /** Stops handing out work (graceful shutdown); results keep being taken. */
  drain(): void {
    this.draining = true;
  }

  /** A worker said hello. */
  connect(workerId: string, volunteerId: string, profile: WorkerProfile = {}): void {
    const w: WorkerEntry = {
      workerId, volunteerId, kind: profile.kind ?? 'node', backends: profile.backends ?? [], adapter: profile.adapter, connectedAt: this.deps.clock.now(),
      interactive: profile.interactive ?? false,
      demand: 0, adapterClass: profile.adapterClass ?? '-|-', site: profile.site ?? null, origin: profile.origin ?? null,
      held: new Set(profile.cached ?? []), limits: profile.limits ?? {},
    };
    const before = this.workers.get(workerId);
    if (before) this.picker.removeWorker(before);
    this.workers.set(workerId, w);
    this.picker.addWorker(w);
    if (this.settler.vetted(volunteerId)) this.vouchersOnline = true;
  }

  /** A new job: its models become known (for fit checks), and its tasks go out. */
  jobCreated(job: JobRow): void {
    this.picker.registerJob(job);
    this.events.jobChanged?.(job.id);
    this.dispatch();
  }

  /** A dropped socket: its leases go back to the queue (not counted as failures). */
  disconnect(workerId: string): void {
    const w = this.workers.get(workerId);
    if (w) this.picker.removeWorker(w);
    this.workers.delete(workerId);
    const { store } = this.deps;
    const held = store.leasedByWorker(workerId);
    if (held.length === 0) return;
    store.transaction(() => {
      for (const r of held) this.settler.dropReplica(r, 'released', null, noEffects());
    });
    this.deps.log.info({ workerId, released: held.length }, 'worker left; leases returned');
    this.dispatch();
  }

  /** Leases a volunteer holds now on this server. */
  leasesOf(volunteerId: string): number {
    return this.deps.store.leasedByVolunteer(volunteerId).length;
  }

  get connectedWorkers(): number {
    return this.workers.size;
  }

  /** Whether a volunteer is vetted and not quarantined (it may answer alone, and vouch for others). */
  vetted(volunteerId: string): boolean {
    return this.settler.vetted(volunteerId) && this.settler.volunteer(volunteerId).quarantinedAt === null;
  }

  /**
   * The server's recomputation of an interactive answer a volunteer gave alone disagreed with it: the volunteer is
   * quarantined for good, like one caught by an audit (its leases withdrawn, what it helped accept looked at again).
   */
  interactiveRefuted(volunteerId: string): void { this.control.condemn(volunteerId); }

  /** The connected workers (the one table of them), by worker id: for reading; only the scheduler changes it. */
  get workerTable(): Map<string, WorkerEntry> {
    return this.workers;
  }

  /** Leases up to `slots` tasks now; the rest is remembered as demand and filled when work appears. */
  requestWork(workerId: string, slots: number): TaskAssignment[] {
    const w = this.workers.get(workerId);
    if (!w) throw new AppError('UNAUTHORIZED', 'say worker:hello before asking for work');
    if (this.settler.volunteer(w.volunteerId).quarantinedAt !== null) {
      throw new AppError('QUARANTINED', 'this volunteer\'s results disagreed with verified results too often; it gets no more work');
    }
    if (this.draining) throw new AppError('SHUTTING_DOWN', 'the server is shutting down; try again shortly');
    return this.lease(workerId, w, slots);
  }

  /** Called when new tasks may be assignable (job created, lease lapsed, more replicas wanted). */
  dispatch(): void {
    if (this.dispatching) { this.dispatchAgain = true; return; }
    if (this.draining) return;
    this.dispatching = true;
    try {
      do {
        this.dispatchAgain = false;
        // With thousands of idle workers, stop once a run of them finds nothing: the work has run out. A task
        // that only a later worker could take waits for the next event, or the sweeper's periodic look.
        let empty = 0;
        for (const [workerId, w] of this.workers) {
          if (w.demand <= 0) continue;
          const tasks = this.lease(workerId, w, w.demand);
          if (tasks.length === 0) {
            if (++empty >= DISPATCH_GIVE_UP) break;
            continue;
          }
          empty = 0;
          this.events.deliver(workerId, tasks);
        }
      } while (this.dispatchAgain);
    } finally {
      this.dispatching = false;
    }
  }

  /** Lapses every lease past its deadline (each counts as a failure of its task), and backs up stragglers. */
  sweep(): number {
    const { store, clock } = this.deps;
    this.vouchersOnline = [...this.workers.values()].some((w) => this.settler.vetted(w.volunteerId));
    this.backUpStragglers();
    this.decideStalled();
    const lapsed = store.leasedBefore(clock.now());
    if (lapsed.length === 0) {
      // Stage tasks held back for their shard's holders become open to all with time, and a dispatch may have
      // given up early: look again now and then.
      if ((this.picker.hasStages || ++this.sweeps % 10 === 0) && [...this.workers.values()].some((w) => w.demand > 0)) this.dispatch();
      return 0;
    }
    const fx = noEffects();
    store.transaction(() => {
      for (const r of lapsed) this.settler.dropReplica(r, 'expired', `lease expired: no answer within ${r.leaseExpires - r.leasedAt} ms`, fx);
    });
    this.deps.log.info({ lapsed: lapsed.length }, 'leases expired');
    fx.dispatch = true;
    this.after(fx);
    return lapsed.length;
  }

  // The server's own runs' answers (server-answers.ts): the scheduler is their sink.

  canaryReady(taskId: string, outputs: Tensor[] | null, done?: (err: Error | null) => void): void { this.answers.canaryReady(taskId, outputs, done); }

  serverChecked(taskId: string, outputs: Tensor[] | null, error: string | null, done?: (err: Error | null) => void): void {
    this.answers.serverChecked(taskId, outputs, error, done);
  }

  audited(taskId: string, outputs: Tensor[]): boolean { return this.answers.audited(taskId, outputs); }

  /**
   * Reopens a job's tainted tasks (accepted with a volunteer since quarantined) so they are computed afresh;
   * the job runs again until they are done. Returns how many were reopened.
   */
  rerunTainted(jobId: string): number { return this.control.rerunTainted(jobId); }

  /**
   * Records a replica's outputs and decides its task. Acknowledge the worker only after this returns:
   * the result is committed by then.
   */
  submitResult(workerId: string, replicaId: string, outputs: Tensor[], meta: ResultMeta): { accepted: boolean } {
    const { store, clock } = this.deps;
    const w = this.workers.get(workerId);
    if (!w) throw new AppError('UNAUTHORIZED', 'say worker:hello before sending results');
    const fx = noEffects();
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
      const task = store.getTask(replica.taskId)!;
      const job = store.getJob(replica.jobId)!;
      const wasActive = replica.status === 'leased' && task.status === 'pending';
      const problem = outputProblem(outputs, this.picker.model(task.model).outputs, task.itemEnd - task.itemStart);
      const returned = { backend: meta.backend, runMs: meta.runMs, returnedAt: clock.now(), workerClass: `${meta.backend}|${w.adapterClass}` };
      if (problem || task.status !== 'pending' || job.status !== 'running') store.updateReplica(replicaId, returned);
      if (problem) {
        this.settler.failReplica(replica, task, job, 'invalid', problem, wasActive, fx);
        this.settler.outcome(replica.volunteerId, 'invalid', 0, fx);
        fx.dispatch = true;
        return { problem };
      }
      if (task.status === 'done') {
        // A known-answer probe, or a late replica of a settled task: it counts for its volunteer only.
        this.settler.judgeSettled(replica, task, job, outputs, fx);
        return { accepted: true };
      }
      if (task.status !== 'pending' || job.status !== 'running') {
        store.updateReplica(replicaId, { status: 'cancelled' });
        return { accepted: false };
      }
      store.setReplicaOutputs(replicaId, packTensors(outputs));
      store.updateReplica(replicaId, { ...returned, status: 'returned' });
      this.stragglers.note(task.model, returned.returnedAt - replica.leasedAt);
      if (!wasActive) store.updateTask(task.id, { active: task.active + 1 });
      this.settler.verify(task, job, fx, { replicaId, outputs });
      return { accepted: true };
    });
    this.after(fx);
    if ('problem' in result) throw new ResultRefused(`result refused: ${result.problem}`);
    return result;
  }

  /** The worker could not run the task (the model failed in its runtime, out of memory...). */
  reportError(workerId: string, replicaId: string, message: string): void {
    const { store } = this.deps;
    const w = this.workers.get(workerId);
    if (!w) throw new AppError('UNAUTHORIZED', 'say worker:hello first');
    const fx = noEffects();
    store.transaction(() => {
      const replica = store.getReplica(replicaId);
      if (!replica || replica.volunteerId !== w.volunteerId || replica.status !== 'leased') {
        throw new AppError('LEASE_NOT_HELD', `replica ${replicaId} is not leased to you`);
      }
      const task = store.getTask(replica.taskId)!;
      const job = store.getJob(replica.jobId)!;
      this.settler.failReplica(replica, task, job, 'failed', `worker reported: ${message}`, task.status === 'pending', fx);
      this.settler.outcome(replica.volunteerId, 'error', 0, fx);
      fx.jobs.add(job.id);
      fx.dispatch = true;
    });
    this.after(fx);
  }

  /** Hands a worker's leases back at once (Stop, pause): the tasks go to someone else, with no failure counted. */
  release(workerId: string, replicaIds: string[]): number {
    const { store } = this.deps;
    let released = 0;
    store.transaction(() => {
      for (const id of replicaIds) {
        const r = store.getReplica(id);
        if (!r || r.workerId !== workerId || r.status !== 'leased') continue;
        this.settler.dropReplica(r, 'released', null, noEffects());
        released++;
      }
    });
    const w = this.workers.get(workerId);
    if (w) w.demand = 0;
    if (released) this.dispatch();
    return released;
  }

  /** Cancels a running job: its leases are withdrawn from the workers holding them. */
  cancelJob(jobId: string): void { this.control.cancelJob(jobId); }

  // Servers sharing one database (cluster/): slices taken over, jobs and volunteers that changed on another server.

  /** Open tasks with replicas back in a slice taken over: decided again, as after a restart. */
  decideAgain(tasks: TaskRow[]): void { this.control.decideAgain(tasks); }

  /** A job ended on another server: its leases here are withdrawn from the workers holding them. */
  withdrawJob(jobId: string): void { this.control.withdrawJob(jobId); }
  /** Leases out on a slice given up: withdrawn, and written so (a result that crosses is told it was withdrawn). */
  withdrawLeases(replicaIds: string[]): void { this.control.withdrawLeases(replicaIds); }

  /** Completes a running job whose tasks are all done (its last slice may have been finished by another server). */
  completeIfDone(jobId: string): void { this.control.completeIfDone(jobId); }

  /** A volunteer quarantined by another server: its leases here are withdrawn and what it did here decided again. */
  quarantinedElsewhere(volunteerId: string): void { this.control.quarantinedElsewhere(volunteerId); }

  /**
   * Leases up to `slots` tasks and leaves the rest as the worker's demand, to be filled when work appears. Demand
   * never exceeds what the worker's lease cap leaves room for: a capped worker waits for its results' acks to ask
   * again, and does not stand in every dispatch's way.
   */
  private lease(workerId: string, w: WorkerEntry, slots: number): TaskAssignment[] {
    if (slots <= 0 || this.draining) return [];
    const { tasks, jobs, room } = this.deps.store.transaction(() => this.leaser.lease(workerId, w, slots));
    w.demand = room - tasks.length;
    for (const id of jobs) this.events.jobChanged?.(id);
    return tasks;
  }

  /** Issues one backup replica for each lease held well past its model's usual time, while workers sit idle. */
  private backUpStragglers(): void {
    let idle = 0;
    for (const w of this.workers.values()) idle += Math.max(0, w.demand);
    const backups = this.stragglers.backUp(this.deps.store, this.deps.clock.now(), this.deps.config.leaseMs, idle);
    if (backups === 0) return;
    this.deps.log.info({ backups }, 'backup replicas issued for leases held past their usual time');
    this.dispatch();
  }

  /**
   * An open task that idle workers keep not getting (every volunteer left has run it, or none can hold it) would
   * wait for ever: once it has waited `stallMs` with workers idle, the server's own run decides it.
   */
  private decideStalled(): void {
    const idle = [...this.workers.values()].some((w) => w.demand > 0);
    const online = new Set([...this.workers.values()].map((w) => w.volunteerId));
    const fx = noEffects();
    fx.checks.push(...this.stragglers.stalled(this.deps.store, this.deps.clock.now(), this.deps.config.stallMs ?? 15_000, idle, online));
    if (fx.checks.length) this.deps.log.info({ tasks: fx.checks.length }, 'open tasks no idle worker may take: the server decides them');
    this.after(fx);
  }

  private after(fx: Effects): void {
    const byWorker = new Map<string, string[]>();
    for (const r of fx.cancels) byWorker.set(r.workerId, [...(byWorker.get(r.workerId) ?? []), r.id]);
    for (const [workerId, ids] of byWorker) this.events.cancel(workerId, ids);
    for (const v of fx.quarantined) {
      for (const w of this.workers.values()) if (w.volunteerId === v) w.demand = 0;
      this.events.volunteerQuarantined?.(v);
    }
    for (const task of fx.checks) {
      if (!this.serverRuns) this.deps.log.warn({ taskId: task.id }, 'a task needs the server\'s own run, and none is set up');
      else this.serverRuns.check(task);
    }
    if (this.serverRuns) {
      const rate = this.deps.config.auditRate ?? 0;
      for (const { task, young } of fx.accepted) if (this.random() < Math.min(1, young ? rate * 5 : rate)) this.serverRuns.audit(task);
    }
    for (const j of fx.jobs) this.events.jobChanged?.(j);
    if (fx.dispatch) this.dispatch();
  }
}
