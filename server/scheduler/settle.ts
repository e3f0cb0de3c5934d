/**
 * What happens when replicas come back: the verifier's decision applied to the store, reputations
 * updated from each outcome, and the knock-on effects of a volunteer being vetted (its pending work is
 * looked at again) or quarantined (its leases withdrawn, its replicas no longer counted).
 * Also what the server's own runs decide: a task the volunteers could not settle, and audits of accepted results
 * (a refuted one quarantines everyone who agreed with it and reopens or marks what they helped accept).
 * Runs inside the caller's transaction; collects the workers to notify for the caller to send after commit.
 * Reports each outcome to an optional observer (the metrics count them) as it is decided.
 */
import type { Logger } from 'pino';
import { compareOutputs } from '../../shared/compare.js';
import { packTensors, unpackTensors } from '../../shared/tensor-pack.js';
import { safeText } from '../../shared/safe-text.js';
import type { Tensor } from '../../shared/tensor.js';
import type { EventSink, SettleEventMap } from '../events.js';
import { type JobRow, type ReplicaRow, type Store, type TaskRow, type VolunteerRow, taskId } from '../store/store.js';
import { type Outcome, type ReputationPolicy, applyOutcome, isVetted, isYoung, undoInvalid } from '../verify/reputation.js';
import { decide } from '../verify/verifier.js';
import type { Clock } from './clock.js';

/** What a settle step leaves for after the commit. */
export interface Effects {
  jobs: Set<string>;
  cancels: ReplicaRow[];
  dispatch: boolean;
  quarantined: Set<string>;
  /** Tasks the volunteers could not settle: the server's own run decides them. */
  checks: TaskRow[];
  /** Tasks just accepted on volunteers' replicas (audit candidates), and whether a young volunteer stood behind one. */
  accepted: { task: TaskRow; young: boolean }[];
}

/** The mark on a returned replica that disagreed with its task's accepted result. */
const DISAGREED = 'disagreed with the accepted result';
/** The mark on a returned replica that the server's own run of its task refuted. */
const REFUTED = 'refuted by the server\'s own run';

/** A replica's outputs as it was returned. */
export interface FreshReplica { replicaId: string; outputs: Tensor[] }

export const noEffects = (): Effects => ({ jobs: new Set(), cancels: [], dispatch: false, quarantined: new Set(), checks: [], accepted: [] });

const FRESH: Omit<VolunteerRow, 'id' | 'createdAt'> = {
  name: null, team: null, valid: 0, invalid: 0, errors: 0, streak: 0, canaryPassed: 0, canaryFailed: 0, credit: 0, quarantinedAt: null,
};

export class Settler {
  constructor(private readonly deps: {
    store: Store; clock: Clock; log: Logger; reputation: ReputationPolicy; maxFailures: number;
    /** Whether a vetted volunteer is connected (one who could vouch for newcomers' replicas). */
    vouchersOnline?: () => boolean;
    /** Told of each outcome as it is decided (server/events.ts SettleEventMap). */
    observer?: EventSink<SettleEventMap>;
  }) {}

  private report<K extends keyof SettleEventMap>(event: K, ...args: SettleEventMap[K]): void {
    this.deps.observer?.emit(event, ...args);
  }

  volunteer(id: string): VolunteerRow {
    return this.deps.store.getVolunteer(id) ?? { id, createdAt: 0, ...FRESH };
  }

  vetted(id: string): boolean {
    return isVetted(this.volunteer(id), this.deps.clock.now(), this.deps.reputation);
  }

  /** Records an outcome for a volunteer and follows up a change in its standing. */
  outcome(volunteerId: string, outcome: Outcome, credit: number, fx: Effects, site: string | null = null): void {
    const { store, clock, reputation, log } = this.deps;
    const before = store.getVolunteer(volunteerId);
    if (!before) return; // unknown volunteers (tests without hello) keep no record
    const patch = applyOutcome(before, outcome, credit, clock.now(), reputation);
    store.updateVolunteer(volunteerId, patch);
    if (site && patch.credit !== undefined) store.creditSite(site, credit, clock.now());
    const after = { ...before, ...patch };
    if (before.quarantinedAt === null && after.quarantinedAt !== null) {
      log.warn({ volunteerId, valid: after.valid, invalid: after.invalid, canaryFailed: after.canaryFailed }, 'volunteer quarantined');
      this.quarantine(volunteerId, fx);
    } else if (!isVetted(before, clock.now(), reputation) && isVetted(after, clock.now(), reputation)) {
      for (const task of store.pendingTasksReturnedBy(volunteerId)) this.verify(task, store.getJob(task.jobId)!, fx);
    }
  }

  /** Withdraws a quarantined volunteer's leases and re-decides the tasks its replicas were counted in. */
  quarantine(volunteerId: string, fx: Effects): void {
    const { store } = this.deps;
    fx.quarantined.add(volunteerId);
    for (const r of store.leasedByVolunteer(volunteerId)) {
      store.updateReplica(r.id, { status: 'cancelled', error: 'volunteer quarantined' });
      fx.cancels.push(r);
      const task = store.getTask(r.taskId);
      const job = store.getJob(r.jobId);
      if (task && job && task.status === 'pending') {
        store.updateTask(task.id, { active: task.active - 1, wanted: Math.max(task.wanted, job.replicas) });
      }
    }
    // Results it helped accept in jobs still running are no longer trusted: reopen those tasks. In jobs that have
    // ended they are marked tainted, for the researcher to see and rerun.
    for (const task of store.acceptedTasksReturnedBy(volunteerId)) this.reopen(task, fx);
    for (const task of store.endedTasksReturnedBy(volunteerId)) {
      if (!task.tainted) store.updateTask(task.id, { tainted: true });
      fx.jobs.add(task.jobId);
    }
    // Its returned replicas of unsettled tasks no longer count: discard them and decide those tasks again.
    for (const task of store.pendingTasksReturnedBy(volunteerId)) {
      const mine = store.replicasOfTask(task.id, 'returned').filter((r) => r.volunteerId === volunteerId);
      for (const r of mine) store.updateReplica(r.id, { status: 'invalid', error: 'volunteer quarantined' });
      const job = store.getJob(task.jobId)!;
      // The disagreements its replicas caused asked for more replicas; those asks go with them.
      store.updateTask(task.id, { active: task.active - mine.length, wanted: Math.max(job.replicas, task.wanted - mine.length) });
      this.verify(task, job, fx);
    }
    fx.dispatch = true;
  }

  /**
   * Takes back a task's accepted result (one of its replicas came from a volunteer now quarantined, or the
   * researcher reruns a tainted task): the task is open again, and later stages of its batch start over. A rerun
   * drops the task's returned replicas too, so it is computed afresh.
   */
  reopen(task: TaskRow, fx: Effects, rerun = false): void {
    const { store, log } = this.deps;
    const job = store.getJob(task.jobId)!;
    const current = store.getTask(task.id)!;
    if (current.status !== 'done') return;
    for (let stage = job.stageModels.length - 1; stage > task.stage; stage--) {
      const id = taskId(job.id, stage, task.batch);
      for (const r of store.replicasOfTask(id)) {
        if (r.status === 'leased') fx.cancels.push(r);
        if (r.status === 'leased' || r.status === 'returned') store.updateReplica(r.id, { status: 'cancelled', error: 'an earlier stage was reopened' });
      }
      store.clearTaskResult(id);
      store.updateTask(id, { status: 'pending', ready: false, readyAt: null, active: 0, wanted: job.replicas, failures: 0, doneAt: null, tainted: false });
    }
    // Those who disagreed with the result taken back were not wrong after all.
    for (const r of store.replicasOfTask(task.id, 'returned')) {
      if (rerun) store.updateReplica(r.id, { status: 'cancelled', error: 'rerun: the result was tainted' });
      // Outputs no result referred to were dropped when the job ended (retention): such a replica cannot count again.
      else if (!store.replicaOutputs(r.id)) store.updateReplica(r.id, { status: 'cancelled', error: 'its outputs were dropped when the job ended' });
      if (r.error !== DISAGREED) continue;
      store.updateReplica(r.id, { error: null });
      const v = this.volunteer(r.volunteerId);
      if (store.getVolunteer(r.volunteerId)) store.updateVolunteer(r.volunteerId, undoInvalid(v, this.deps.reputation));
    }
    const alive = store.replicasOfTask(task.id).filter((r) => r.status === 'returned' || r.status === 'leased').length;
    store.clearTaskResult(task.id);
    store.updateTask(task.id, {
      status: 'pending', active: alive, wanted: Math.max(current.wanted, job.replicas), doneAt: null, tainted: false, ...(rerun ? { failures: 0 } : {}),
    });
    log.warn({ taskId: task.id, rerun }, rerun ? 'tainted result rerun' : 'accepted result taken back: a volunteer behind it was quarantined');
    fx.jobs.add(job.id);
  }

  /**
   * The server's own run decided a task: its outputs become the result. Replicas that agree with them are valid;
   * those that do not were refuted (as a wrong known answer is), and errors it did not reproduce count against
   * their reporters, not the task.
   */
  serverDecided(taskRow: TaskRow, outputs: Tensor[], fx: Effects): void {
    const { store, clock } = this.deps;
    const task = store.getTask(taskRow.id);
    const job = store.getJob(taskRow.jobId);
    if (!task || !job || task.status !== 'pending' || job.status !== 'running') return;
    // Read while the task is open (its replicas are in memory then).
    const replicas = store.replicasOfTask(task.id);
    const inStatus = (status: string) => replicas.filter((r) => r.status === status);
    store.setTaskResult(task.id, packTensors(outputs));
    store.updateTask(task.id, { status: 'done', doneAt: clock.now() });
    if (this.taskDone(task)) fx.dispatch = true;
    this.withdraw(inStatus('leased'), fx);
    const items = task.itemEnd - task.itemStart;
    // Refuted replicas leave the result's replicas first, so a quarantine they cause does not reopen this task.
    const returned = inStatus('returned').map((r) => ({
      r, ok: compareOutputs(unpackTensors(store.replicaOutputs(r.id)!), outputs, job).verdict === 'agree',
    }));
    for (const { r, ok } of returned) {
      if (!ok) store.updateReplica(r.id, { status: 'invalid', error: REFUTED });
      else if (r.error === DISAGREED) store.updateReplica(r.id, { error: null });
    }
    this.report('task:accepted', returned.length, 'server');
    for (const { r, ok } of returned) {
      this.report('result:judged', ok ? 'accepted' : 'disagreed', 1);
      if (ok) this.outcome(r.volunteerId, 'valid', items, fx, r.site);
      else this.outcome(r.volunteerId, 'canary-fail', 0, fx);
    }
    for (const r of inStatus('failed')) this.outcome(r.volunteerId, 'invalid', 0, fx);
    fx.jobs.add(job.id);
  }

  /** The server could not run the task either: now, and only now, it fails, with the server's own reason. */
  serverFailed(taskRow: TaskRow, error: string, fx: Effects): void {
    const { store, clock, log } = this.deps;
    const task = store.getTask(taskRow.id);
    const job = store.getJob(taskRow.jobId);
    if (!task || !job || task.status !== 'pending' || job.status !== 'running') return;
    const reason = `the server's own run failed too: ${safeText(error.trim(), 500)}`;
    store.updateTask(task.id, { status: 'failed', error: reason });
    this.report('task:settled', 'failed', task.canary);
    store.setJobStatus(job.id, 'failed', clock.now(), `batch ${task.batch}: ${reason}`);
    this.withdraw(store.leasedInJob(job.id), fx);
    log.warn({ jobId: job.id, taskId: task.id, reason }, 'task failed on the server too; job failed');
    fx.jobs.add(job.id);
  }

  /**
   * The server recomputed an accepted result as an audit. On a mismatch everyone who agreed with the wrong
   * answer is quarantined for good, what they helped accept is reopened (running jobs) or marked tainted
   * (ended ones), and this task takes the server's answer. Returns whether the result stood.
   */
  audited(taskRow: TaskRow, outputs: Tensor[], fx: Effects): boolean {
    const { store, clock, log } = this.deps;
    const task = store.getTask(taskRow.id);
    const job = store.getJob(taskRow.jobId);
    const expected = task?.status === 'done' ? store.taskResult(task.id) : undefined;
    if (!task || !job || !expected) return true;
    const verdict = compareOutputs(outputs, unpackTensors(expected), job);
    this.report('audit:judged', verdict.verdict !== 'agree');
    if (verdict.verdict === 'agree') return true;
    const behind = store.replicasOfTask(task.id, 'returned').filter((r) => r.error === null);
    log.warn({ taskId: task.id, volunteers: behind.map((r) => r.volunteerId), detail: verdict.detail }, 'audit refuted an accepted result');
    for (const v of new Set(behind.map((r) => r.volunteerId))) this.condemn(v, fx);
    for (const r of behind) store.updateReplica(r.id, { status: 'invalid', error: 'refuted by an audit' });
    const now = store.getTask(task.id)!;
    store.setTaskResult(task.id, packTensors(outputs));
    if (now.status === 'pending') {
      this.withdraw(store.replicasOfTask(task.id, 'leased'), fx);
      store.updateTask(task.id, { status: 'done', doneAt: clock.now(), tainted: false });
      if (job.status === 'running' && this.taskDone(now)) fx.dispatch = true;
    } else {
      store.updateTask(task.id, { tainted: false });
    }
    fx.jobs.add(job.id);
    return false;
  }

  /** A volunteer caught by the server's own run: quarantined, and never lifted (it counts as a failed known answer). */
  condemn(volunteerId: string, fx: Effects): void {
    const { store, clock, reputation } = this.deps;
    const v = store.getVolunteer(volunteerId);
    if (!v) return;
    const already = v.quarantinedAt !== null;
    store.updateVolunteer(volunteerId, {
      quarantinedAt: v.quarantinedAt ?? clock.now(), canaryFailed: v.canaryFailed + 1, invalid: v.invalid + reputation.canaryPenalty, streak: 0,
    });
    if (!already) this.quarantine(volunteerId, fx);
  }

  /** A replica of a task that is already settled (a canary, or a late result): judged against its result. */
  judgeSettled(replica: ReplicaRow, task: TaskRow, job: JobRow, outputs: Tensor[], fx: Effects): boolean {
    const { store } = this.deps;
    const expected = store.taskResult(task.id);
    if (!expected) return false;
    const verdict = compareOutputs(outputs, unpackTensors(expected), job);
    const ok = verdict.verdict === 'agree';
    this.report('result:judged', ok ? 'accepted' : 'disagreed', 1);
    store.updateReplica(replica.id, { status: 'returned', error: ok ? null : `wrong answer: ${verdict.verdict === 'disagree' ? verdict.detail : ''}` });
    const items = task.itemEnd - task.itemStart;
    this.outcome(replica.volunteerId, task.canary ? (ok ? 'canary-pass' : 'canary-fail') : ok ? 'valid' : 'invalid', items, fx, replica.site);
    return ok;
  }

  /**
   * Runs the verifier on a pending task's returned replicas and applies its decision. `fresh` is the replica
   * just returned, whose outputs need not be read back from the store.
   */
  verify(task: TaskRow, job: JobRow, fx: Effects, fresh?: FreshReplica): void {
    const { store, clock, log } = this.deps;
    const current = store.getTask(task.id)!;
    if (current.status !== 'pending') return;
    // The replica just returned, alone on its task (nothing else leased or returned), needs no look-up.
    const counted = fresh && current.active === 1 ? [store.getReplica(fresh.replicaId)!] : store.replicasOfTask(task.id, 'returned');
    const requireVetted = job.canaryRate > 0;
    const returned = counted.map((r) => ({
      id: r.id,
      outputs: r.id === fresh?.replicaId ? fresh.outputs : unpackTensors(store.replicaOutputs(r.id)!),
      vouches: !requireVetted || this.vetted(r.volunteerId),
      origin: r.origin,
    }));
    const inFlight = current.active - counted.length;
    const quorum = Math.min(job.replicas, current.wanted);
    const checkUnvouched = requireVetted && !(this.deps.vouchersOnline?.() ?? true);
    const d = decide(returned, current.wanted, inFlight, { quorum, maxReplicas: job.maxReplicas, rtol: job.rtol, atol: job.atol, checkUnvouched });
    fx.jobs.add(job.id);
    const byId = new Map(counted.map((r) => [r.id, r]));
    const recordPairs = () => {
      for (const p of d.pairs) store.recordClassPair(byId.get(p.a)!.workerClass, byId.get(p.b)!.workerClass, p.agree);
    };
    switch (d.verdict) {
      case 'wait':
        return;
      case 'more':
        store.updateTask(task.id, { wanted: current.wanted + 1 });
        log.info({ taskId: task.id, detail: d.detail }, 'no accepted quorum yet; one more replica wanted');
        fx.dispatch = true;
        return;
      case 'check':
        recordPairs();
        log.info({ taskId: task.id, detail: d.detail }, 'the server\'s own run decides the task');
        fx.checks.push(current);
        return;
      case 'accept': {
        recordPairs();
        store.setTaskResultOf(task.id, d.replicaId);
        store.updateTask(task.id, { status: 'done', doneAt: clock.now() });
        if (this.taskDone(current)) fx.dispatch = true;
        // Replicas still out on this task are no longer needed (`inFlight` counts them; usually there are none).
        if (inFlight > 0) this.withdraw(store.replicasOfTask(task.id, 'leased'), fx);
        const items = task.itemEnd - task.itemStart;
        const now = clock.now();
        this.report('task:accepted', counted.length, 'quorum');
        this.report('result:judged', 'accepted', d.agreeing.length);
        if (d.disagreeing.length > 0) this.report('result:judged', 'disagreed', d.disagreeing.length);
        fx.accepted.push({ task: current, young: d.agreeing.some((id) => isYoung(this.volunteer(byId.get(id)!.volunteerId), now, this.deps.reputation)) });
        for (const id of d.agreeing) this.outcome(byId.get(id)!.volunteerId, 'valid', items, fx, byId.get(id)!.site);
        for (const id of d.disagreeing) {
          store.updateReplica(id, { error: DISAGREED });
          this.outcome(byId.get(id)!.volunteerId, 'invalid', 0, fx);
        }
      }
    }
  }

  /** Takes a leased replica out of play; `reason` non-null counts it as a failure of its task. */
  dropReplica(r: ReplicaRow, status: 'expired' | 'released', reason: string | null, fx: Effects): void {
    const { store } = this.deps;
    if (status === 'expired') this.report('lease:expired');
    const task = store.getTask(r.taskId);
    const job = store.getJob(r.jobId);
    if (!task || !job || task.status !== 'pending') {
      store.updateReplica(r.id, { status, error: reason });
      return;
    }
    if (task.wanted < job.replicas) store.updateTask(task.id, { wanted: job.replicas }); // a lone trusted replica lapsed
    if (reason) {
      this.failReplica(r, store.getTask(r.taskId)!, job, 'expired', reason, true, fx);
      fx.jobs.add(job.id);
    } else {
      store.updateReplica(r.id, { status });
      store.updateTask(task.id, { active: task.active - 1 });
    }
    // The replicas already back may decide the task now that this one is out of play.
    const now = store.getTask(task.id)!;
    if (now.status === 'pending' && now.active > 0) this.verify(now, job, fx);
  }

  /**
   * Counts a replica's failure against its task. At the cap the task is not failed on volunteers' word (a crowd
   * of free identities could fail any job so): the server runs it itself, and fails it only if it fails there too.
   */
  failReplica(r: ReplicaRow, task: TaskRow, job: JobRow, status: 'failed' | 'invalid' | 'expired', reason: string, wasActive: boolean, fx: Effects): void {
    const { store, maxFailures } = this.deps;
    // Reasons carry strangers' text (an error report, an output's name): escaped before anyone reads them.
    reason = safeText(reason, 600);
    store.updateReplica(r.id, { status, error: reason });
    if (status === 'invalid') this.report('result:judged', 'refused', 1);
    else if (status === 'failed') this.report('replica:errored');
    if (task.status !== 'pending') return;
    const failures = task.failures + 1;
    const active = task.active - (wasActive ? 1 : 0);
    store.updateTask(task.id, { failures, active, wanted: Math.max(task.wanted, job.replicas), error: `failed on ${failures} workers; last: ${reason}` });
    if (failures >= maxFailures) {
      this.deps.log.warn({ jobId: job.id, taskId: task.id, failures, reason }, 'task failed on volunteers; the server runs it itself');
      fx.checks.push(store.getTask(task.id)!);
    }
  }

  /** A task is verified: the next stage of its batch becomes ready, or the job may be complete. Returns whether new work appeared. */
  taskDone(task: TaskRow): boolean {
    const { store, clock } = this.deps;
    this.report('task:settled', 'done', task.canary);
    const job = store.getJob(task.jobId)!;
    if (task.stage < job.stageModels.length - 1) {
      store.updateTask(taskId(job.id, task.stage + 1, task.batch), { ready: true, readyAt: clock.now() });
      return true;
    }
    this.completeIfDone(job.id);
    return false;
  }

  completeIfDone(jobId: string): void {
    const { store, clock } = this.deps;
    if (store.hasUnfinishedTasks(jobId)) return;
    if (store.getJob(jobId)?.status === 'running') store.setJobStatus(jobId, 'completed', clock.now());
  }

  private withdraw(leased: ReplicaRow[], fx: Effects): void {
    for (const r of leased) this.deps.store.updateReplica(r.id, { status: 'cancelled' });
    fx.cancels.push(...leased);
  }
}
