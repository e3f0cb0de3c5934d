/**
 * Replicas in memory: every lease (leases are never written to the store: they lapse on a restart anyway), and
 * the replicas of the open tasks of running jobs with the outputs they returned, looked up by task, worker,
 * volunteer, job and network origin. Replicas of settled tasks leave memory once the store has them.
 */
import type { ReplicaRow } from '../store/store.js';

const add = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => {
  let s = m.get(k);
  if (!s) { s = new Set(); m.set(k, s); }
  s.add(v);
};
const remove = <K, V>(m: Map<K, Set<V>>, k: K, v: V) => {
  const s = m.get(k);
  if (!s) return;
  s.delete(v);
  if (s.size === 0) m.delete(k);
};

export class LiveReplicas {
  private readonly rows = new Map<string, ReplicaRow>();
  private readonly byTask = new Map<string, Set<string>>();
  private readonly outputs = new Map<string, Uint8Array>();
  /** Leased replicas only. */
  private readonly leases = new Map<string, ReplicaRow>();
  private readonly leasesByWorker = new Map<string, Set<string>>();
  private readonly leasesByVolunteer = new Map<string, Set<string>>();
  private readonly leasesByJob = new Map<string, Set<string>>();
  private readonly leasesByOrigin = new Map<string, Set<string>>();

  get size(): number {
    return this.rows.size;
  }

  get(id: string): ReplicaRow | undefined {
    return this.rows.get(id);
  }

  /** Replaces (or adds, or with `next` undefined removes) a replica's row, keeping the indexes in step. */
  set(id: string, next: ReplicaRow | undefined): void {
    const prev = this.rows.get(id);
    if (prev) {
      remove(this.byTask, prev.taskId, id);
      if (prev.status === 'leased') this.unlease(prev);
    }
    if (!next) {
      this.rows.delete(id);
      this.outputs.delete(id);
      return;
    }
    this.rows.set(id, next);
    add(this.byTask, next.taskId, id);
    if (next.status === 'leased') {
      this.leases.set(id, next);
      add(this.leasesByWorker, next.workerId, id);
      add(this.leasesByVolunteer, next.volunteerId, id);
      add(this.leasesByJob, next.jobId, id);
      if (next.origin !== null) add(this.leasesByOrigin, next.origin, id);
    }
  }

  private unlease(r: ReplicaRow): void {
    this.leases.delete(r.id);
    remove(this.leasesByWorker, r.workerId, r.id);
    remove(this.leasesByVolunteer, r.volunteerId, r.id);
    remove(this.leasesByJob, r.jobId, r.id);
    if (r.origin !== null) remove(this.leasesByOrigin, r.origin, r.id);
  }

  /** Whether memory holds every replica of this task (it does for open tasks of running jobs). */
  hasTask(taskId: string): boolean {
    return this.byTask.has(taskId);
  }

  ofTask(taskId: string): ReplicaRow[] {
    const ids = this.byTask.get(taskId);
    if (!ids) return [];
    return [...ids].map((id) => this.rows.get(id)!).sort((a, b) => a.leasedAt - b.leasedAt);
  }

  /** Whether this volunteer has a replica of the task that counts (leased, returned, failed or invalid). */
  touched(taskId: string, volunteerId: string): boolean {
    const ids = this.byTask.get(taskId);
    if (!ids) return false;
    for (const id of ids) {
      const r = this.rows.get(id)!;
      if (r.volunteerId === volunteerId && r.status !== 'expired' && r.status !== 'released' && r.status !== 'cancelled') return true;
    }
    return false;
  }

  /** Whether this volunteer has any replica of the task. */
  ranTask(taskId: string, volunteerId: string): boolean {
    const ids = this.byTask.get(taskId);
    if (!ids) return false;
    for (const id of ids) if (this.rows.get(id)!.volunteerId === volunteerId) return true;
    return false;
  }

  setOutputs(id: string, data: Uint8Array | undefined): void {
    if (data) this.outputs.set(id, data); else this.outputs.delete(id);
  }

  outputsOf(id: string): Uint8Array | undefined {
    return this.outputs.get(id);
  }

  allLeased(): ReplicaRow[] {
    return [...this.leases.values()];
  }

  leasedBefore(now: number): ReplicaRow[] {
    const out: ReplicaRow[] = [];
    for (const r of this.leases.values()) if (r.leaseExpires <= now) out.push(r);
    return out;
  }

  private leasedIn(index: Map<string, Set<string>>, key: string): ReplicaRow[] {
    return [...(index.get(key) ?? [])].map((id) => this.leases.get(id)!);
  }

  leasedByWorker(workerId: string): ReplicaRow[] {
    return this.leasedIn(this.leasesByWorker, workerId);
  }

  leasedCountByWorker(workerId: string): number {
    return this.leasesByWorker.get(workerId)?.size ?? 0;
  }

  leasedByVolunteer(volunteerId: string): ReplicaRow[] {
    return this.leasedIn(this.leasesByVolunteer, volunteerId);
  }

  leasedInJob(jobId: string): ReplicaRow[] {
    return this.leasedIn(this.leasesByJob, jobId);
  }

  leasedByOrigin(origin: string): ReplicaRow[] {
    return this.leasedIn(this.leasesByOrigin, origin);
  }

  /** Every replica of a job in memory (a scan: for a job's deletion, which is rare). */
  ofJob(jobId: string): ReplicaRow[] {
    const out: ReplicaRow[] = [];
    for (const r of this.rows.values()) if (r.jobId === jobId) out.push(r);
    return out;
  }

  /** Task ids with replicas in memory. */
  taskIds(): IterableIterator<string> {
    return this.byTask.keys();
  }
}
