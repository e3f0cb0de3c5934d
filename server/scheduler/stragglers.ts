/**
 * Liveness while workers sit idle. Straggler backups: how long a model's tasks usually take (from the replicas
 * that came back), and which leases are held well past that, so the scheduler can issue one backup replica for
 * each (the first good answer wins; the straggler's lease is withdrawn when its task settles). Stalled tasks:
 * open tasks that no idle worker may take, for long enough that the server's own run should decide them.
 */
import type { ReplicaRow, Store, TaskRow } from '../store/store.js';

export interface StragglerPolicy {
  /** A lease is a straggler after this many times its model's usual time... */
  factor: number;
  /** ...and never before this many milliseconds. */
  minMs: number;
}

export const DEFAULT_STRAGGLERS: StragglerPolicy = { factor: 4, minMs: 2_000 };

/** Tasks remembered as backed up at most; older marks are forgotten (a task gets at most one backup while remembered). */
const MAX_MARKED = 10_000;

export class Stragglers {
  /** Per model: a moving average of lease-to-result time (ms). */
  private readonly usual = new Map<string, number>();
  private readonly backedUp = new Set<string>();
  /** Open tasks seen waiting with idle workers about, and since when. */
  private stalledSince = new Map<string, number>();

  constructor(private readonly policy: StragglerPolicy = DEFAULT_STRAGGLERS) {}

  /** A replica of `model` came back `ms` after it was leased. */
  note(model: string, ms: number): void {
    const prev = this.usual.get(model);
    this.usual.set(model, prev === undefined ? ms : prev * 0.9 + ms * 0.1);
  }

  /** How long a lease of this model may run before it counts as a straggler. */
  threshold(model: string): number {
    const usual = this.usual.get(model);
    return usual === undefined ? Infinity : Math.max(this.policy.minMs, usual * this.policy.factor);
  }

  /** The oldest a lease can be and not be a straggler of any model (for the store's look-up). */
  get youngest(): number {
    let min = Infinity;
    for (const m of this.usual.keys()) min = Math.min(min, this.threshold(m));
    return min;
  }

  /**
   * Of these leases, the pending tasks that want a backup now: held past their model's threshold, not backed
   * up before. Marks them.
   */
  pick(leases: readonly ReplicaRow[], taskOf: (id: string) => TaskRow | undefined, now: number, limit: number): TaskRow[] {
    const out: TaskRow[] = [];
    for (const r of leases) {
      if (out.length >= limit) break;
      const task = taskOf(r.taskId);
      if (!task || task.status !== 'pending' || task.canary || this.backedUp.has(task.id)) continue;
      if (now - r.leasedAt < this.threshold(task.model)) continue;
      if (this.backedUp.size >= MAX_MARKED) this.backedUp.clear();
      this.backedUp.add(task.id);
      out.push(task);
    }
    return out;
  }

  /** Raises `wanted` on each task a straggler holds (at most `idle` of them); returns how many. Runs its own transaction. */
  backUp(store: Store, now: number, leaseMs: number, idle: number): number {
    const youngest = this.youngest;
    if (idle <= 0 || youngest === Infinity) return 0;
    // A lease's expiry is its start plus leaseMs: the leases older than `youngest` through the expiry index.
    const old = store.leasedBefore(now - youngest + leaseMs);
    if (old.length === 0) return 0;
    return store.transaction(() => {
      const picked = this.pick(old, (id) => store.getTask(id), now, idle);
      // One replica more, and at least a full quorum besides the straggler's (a task leased alone wanted just one).
      for (const task of picked) store.updateTask(task.id, { wanted: Math.max(task.wanted + 1, (store.getJob(task.jobId)?.replicas ?? 1) + 1) });
      return picked.length;
    });
  }

  /**
   * Open tasks that have waited `stallMs` while workers were `idle`, and at once those that no volunteer online
   * may take (each has run it: a newcomer alone with the page, say), since waiting would only delay the answer.
   */
  stalled(store: Store, now: number, stallMs: number, idle: boolean, online: ReadonlySet<string>): TaskRow[] {
    const seen = new Map<string, number>();
    const out: TaskRow[] = [];
    for (const task of store.stalledTasks(100)) {
      const ran = new Set(store.replicasOfTask(task.id).map((r) => r.volunteerId));
      if ([...online].every((v) => ran.has(v))) { out.push(task); continue; }
      if (!idle) continue;
      const since = this.stalledSince.get(task.id) ?? now;
      seen.set(task.id, since);
      if (now - since >= stallMs) out.push(task);
    }
    this.stalledSince = seen;
    return out;
  }
}
