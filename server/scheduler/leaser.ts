/**
 * Leasing: which tasks a worker gets for its free slots, and the replicas that record them. A newcomer holds
 * few leases (and the newcomers of one network origin few together) and is tested on known answers first; a
 * vetted volunteer holds more, gets a known answer now and then as a spot check, and may have a task accepted on
 * its replica alone (adaptive replication). Researchers' jobs get slots by fair share. Runs inside the caller's
 * transaction.
 */
import { randomBytes } from 'node:crypto';
import { MAX_SLOTS, type TaskAssignment } from '../../shared/protocol.js';
import { DEFAULT_REPUTATION, leaseCap, singleReplicaChance } from '../verify/reputation.js';
import type { FairShare } from './fair-share.js';
import type { SchedulerDeps } from './scheduler-types.js';
import type { Settler } from './settle.js';
import type { TaskPicker, WorkerEntry } from './task-picker.js';

/** Replica ids: a random part per process (unique across restarts) and a counter (cheap, unique within one). */
const ID_BASE = randomBytes(6).toString('hex');
let idSeq = 0;
const newId = (prefix: string) => `${prefix}-${ID_BASE}${(++idSeq).toString(36)}`;

export interface LeaserDeps extends Pick<SchedulerDeps, 'store' | 'clock' | 'config' | 'taskInputs' | 'origins'> {
  settler: Settler;
  picker: TaskPicker;
  fairShare: FairShare;
  random: () => number;
  /** Whether a vetted volunteer is connected (one who could vouch for a newcomer's replica). */
  vouchersOnline(): boolean;
}

export class Leaser {
  constructor(private readonly deps: LeaserDeps) {}

  /** Leases held now by newcomers (volunteers not vetted yet) of one network origin. */
  newcomerLeases(origin: string): number {
    const policy = this.deps.config.reputation ?? DEFAULT_REPUTATION;
    const createdBefore = this.deps.clock.now() - policy.tenureMs;
    return this.deps.store.newcomerLeasesByOrigin(origin, { canaries: policy.canariesToVet, valid: policy.validToVet, createdBefore });
  }

  /**
   * Leases up to `slots` tasks to worker `workerId`; returns them, the jobs they belong to, and `room`: how many
   * of the slots its lease cap allowed.
   */
  lease(workerId: string, w: WorkerEntry, slots: number): { tasks: TaskAssignment[]; jobs: Set<string>; room: number } {
    const { store, clock, config, settler, picker, random } = this.deps;
    const jobs = new Set<string>();
    const volunteer = settler.volunteer(w.volunteerId);
    if (volunteer.quarantinedAt !== null) return { tasks: [], jobs, room: 0 };
    const policy = config.reputation ?? DEFAULT_REPUTATION;
    // A newcomer holds few leases at once, a trusted volunteer more: a hoarder's free identities hold little each.
    const now = clock.now();
    const cap = leaseCap(volunteer, now, config.newcomerLeases ?? 2, MAX_SLOTS * 2, policy);
    slots = Math.max(0, Math.min(slots, cap - store.leasedCountByWorker(workerId)));
    if (slots === 0) return { tasks: [], jobs, room: 0 };
    const vetted = settler.vetted(w.volunteerId);
    // Fresh identities are free: behind one origin, newcomers together hold no more than the origin's share
    // (vetted volunteers behind the same address, a campus NAT say, do not use it up).
    if (!vetted && w.origin !== null) {
      // Counted over the whole network where servers share a database (what the others said at their last tick).
      const held = this.newcomerLeases(w.origin) + (this.deps.origins?.newcomerLeasesElsewhere(w.origin) ?? 0);
      slots = Math.min(slots, (config.newcomerLeasesPerOrigin ?? 32) - held);
      if (slots <= 0) return { tasks: [], jobs, room: 0 };
    }
    // Newcomers are tested on known answers first, until they have passed enough to be vetted; vetted volunteers
    // now and then, as a spot check.
    const spotCheck = () => Array.from({ length: slots }, () => random() < (config.spotCheckRate ?? 0.02)).filter(Boolean).length;
    const probeCount = vetted || volunteer.canaryPassed >= policy.canariesToVet
      ? spotCheck()
      : store.leasedByVolunteer(w.volunteerId).some((r) => store.getTask(r.taskId)?.canary) ? 0 : 1;
    const probes = probeCount > 0 ? store.probeTasks(w.volunteerId, probeCount) : [];
    // Fair share: the slots go to the least-served researcher's jobs first.
    const running = store.runningJobs();
    const byId = new Map(running.map((j) => [j.id, j]));
    const tasks = [...probes, ...picker.candidates(w, slots - probes.length, this.deps.fairShare.order(running))];
    const out: TaskAssignment[] = [];
    const single = singleReplicaChance(volunteer, now, policy);
    for (const task of tasks) {
      const job = store.getJob(task.jobId)!;
      const replicaId = newId('r');
      const isProbe = task.status === 'done';
      const fresh = !isProbe && job.replicas > 1 && task.active === 0 && task.wanted === job.replicas;
      // Adaptive replication: a trusted volunteer's replica may stand alone, if the job allows it. And while no
      // vetted volunteer is online, a newcomer's replica could not be vouched for by a second newcomer either: the
      // server's own run will settle the task, so a second replica would be work for nothing.
      const alone = fresh && ((job.adaptive && random() < single) || (!vetted && job.canaryRate > 0 && !this.deps.vouchersOnline()));
      store.insertReplica({
        id: replicaId, taskId: task.id, jobId: job.id, workerId, volunteerId: w.volunteerId, status: 'leased',
        workerClass: `-|${w.adapterClass}`, single: alone, site: w.site, leasedAt: now, leaseExpires: now + config.leaseMs,
        backend: null, runMs: null, error: null, returnedAt: null, origin: w.origin,
      });
      if (!isProbe) {
        store.updateTask(task.id, { active: task.active + 1, ...(alone ? { wanted: 1 } : {}) });
        this.deps.fairShare.charge(job.owner, byId.get(job.id)?.weight ?? 1);
      }
      picker.hold(w, task.model);
      jobs.add(job.id);
      out.push({
        replicaId, taskId: task.id, jobId: job.id, modelHash: task.model, modelUrl: `/models/${task.model}`,
        inputs: this.deps.taskInputs(job, task), leaseMs: config.leaseMs,
      });
    }
    return { tasks: out, jobs, room: slots };
  }
}
