/**
 * The reads that list tasks and replicas in SQLite (as pg-queries.ts does for PostgreSQL): recovery of a job's open
 * work (all of it, or the batches of one slice), a volunteer's tasks, stalled and tainted ones, the leases out.
 */
import type Database from 'better-sqlite3';
import { REPLICA_COLS, type Row, TASK_COLS, replicaFromRow, t, taskFromRaw, taskFromRow } from './sqlite-schema.js';
import type { BatchRange, ReplicaRow, ReplicaStatus, TaskRow } from './store.js';

type Query = (sql: string) => Database.Statement;

const tasks = (q: Query, sql: string, ...args: unknown[]) => (q(sql).all(...args) as Row[]).map(taskFromRow);
const replicas = (q: Query, sql: string, ...args: unknown[]) => (q(sql).all(...args) as Row[]).map(replicaFromRow);

/** Every batch of a job. */
const ALL_BATCHES: BatchRange = { from: 0, to: Number.MAX_SAFE_INTEGER };

export function recoveryTasks(q: Query, jobId: string, range: BatchRange = ALL_BATCHES): TaskRow[] {
  // Two index walks (open tasks, done canaries) rather than one scan of every task of the job and a sort; rows
  // as arrays, made into tasks one at a time (a million open tasks make no million intermediate objects).
  const out: TaskRow[] = [];
  for (const sql of [
    `SELECT ${TASK_COLS} FROM tasks INDEXED BY tasks_pick WHERE job_id = ? AND status = 'pending' AND batch >= ? AND batch < ? ORDER BY stage DESC, batch`,
    `SELECT ${TASK_COLS} FROM tasks INDEXED BY tasks_canary_pick WHERE job_id = ? AND canary = 1 AND status = 'done' AND batch >= ? AND batch < ? ORDER BY batch`,
  ]) {
    for (const r of q(sql).raw(true).iterate(jobId, range.from, range.to) as Iterable<unknown[]>) out.push(taskFromRaw(r));
  }
  return out;
}

export function recoveryReplicas(q: Query, jobId: string, range: BatchRange = ALL_BATCHES): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS.split(', ').map((c) => `r.${c}`).join(', ')} FROM replicas r JOIN tasks t ON t.id = r.task_id
    WHERE r.job_id = ? AND (t.status = 'pending' OR t.canary = 1) AND t.batch >= ? AND t.batch < ? ORDER BY r.leased_at, r.rowid`,
  jobId, range.from, range.to);
}

export function failedTasks(q: Query, jobId: string): TaskRow[] {
  return tasks(q, `SELECT ${TASK_COLS} FROM tasks WHERE job_id = ? AND status = 'failed' ORDER BY batch`, jobId);
}

export function unreadyCanaries(q: Query): TaskRow[] {
  return tasks(q, `SELECT ${t(TASK_COLS)} FROM jobs j JOIN tasks t ON t.job_id = j.id AND t.canary = 1 AND t.ready = 0
    WHERE j.status = 'running' ORDER BY j.created_at, t.batch`);
}

export function pendingTasksReturnedBy(q: Query, volunteerId: string): TaskRow[] {
  return tasks(q, `SELECT DISTINCT ${t(TASK_COLS)} FROM replicas r JOIN tasks t ON t.id = r.task_id AND t.status = 'pending'
    WHERE r.volunteer_id = ? AND r.status = 'returned'`, volunteerId);
}

export function acceptedTasksReturnedBy(q: Query, volunteerId: string): TaskRow[] {
  return tasks(q, `SELECT DISTINCT ${t(TASK_COLS)} FROM replicas r JOIN tasks t ON t.id = r.task_id AND t.status = 'done' AND t.canary = 0
    JOIN jobs j ON j.id = t.job_id AND j.status = 'running'
    WHERE r.volunteer_id = ? AND r.status = 'returned' ORDER BY t.stage`, volunteerId);
}

export function endedTasksReturnedBy(q: Query, volunteerId: string): TaskRow[] {
  return tasks(q, `SELECT DISTINCT ${t(TASK_COLS)} FROM replicas r JOIN tasks t ON t.id = r.task_id AND t.status = 'done' AND t.canary = 0
    JOIN jobs j ON j.id = t.job_id AND j.status != 'running'
    WHERE r.volunteer_id = ? AND r.status = 'returned' AND r.error IS NULL ORDER BY t.stage`, volunteerId);
}

export function openTasksWithReplicas(q: Query): TaskRow[] {
  return tasks(q, `SELECT ${t(TASK_COLS)} FROM jobs j JOIN tasks t ON t.job_id = j.id AND t.status = 'pending' AND t.active > 0
    WHERE j.status = 'running' ORDER BY j.created_at, t.stage, t.batch`);
}

export function stalledTasks(q: Query, limit: number): TaskRow[] {
  const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
  return tasks(q, `SELECT ${t(TASK_COLS)} FROM jobs j JOIN tasks t INDEXED BY tasks_open ON t.job_id = j.id
    WHERE j.status = 'running' AND t.status = 'pending' AND t.ready = 1 AND t.active < t.wanted AND t.active > 0
      AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND r.status = 'leased')
    LIMIT ${n}`);
}

export function taintedTasks(q: Query, jobId: string): TaskRow[] {
  return tasks(q, `SELECT ${TASK_COLS} FROM tasks WHERE job_id = ? AND tainted = 1 ORDER BY stage, batch`, jobId);
}

export function replicasOfTask(q: Query, taskId: string, status?: ReplicaStatus): ReplicaRow[] {
  return status === undefined
    ? replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE task_id = ? ORDER BY leased_at, rowid`, taskId)
    : replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE task_id = ? AND status = ? ORDER BY leased_at, rowid`, taskId, status);
}

export function leasedBefore(q: Query, now: number): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE status = 'leased' AND lease_expires <= ?`, now);
}

export function leasedByWorker(q: Query, workerId: string): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE worker_id = ? AND status = 'leased'`, workerId);
}

export function leasedCountByWorker(q: Query, workerId: string): number {
  return (q(`SELECT COUNT(*) AS n FROM replicas WHERE worker_id = ? AND status = 'leased'`).get(workerId) as { n: number }).n;
}

export function newcomerLeasesByOrigin(q: Query, origin: string, vetted: { canaries: number; valid: number; createdBefore: number }): number {
  return (q(`SELECT COUNT(*) AS n FROM replicas r JOIN volunteers v ON v.id = r.volunteer_id
    WHERE r.origin = ? AND r.status = 'leased'
      AND (v.canary_passed < ? OR v.valid < ? OR v.canary_failed > 0 OR v.created_at > ?)`)
    .get(origin, vetted.canaries, vetted.valid, vetted.createdBefore) as { n: number }).n;
}

export function leasedInJob(q: Query, jobId: string): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE job_id = ? AND status = 'leased'`, jobId);
}

export function allLeased(q: Query): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE status = 'leased'`);
}

export function leasedByVolunteer(q: Query, volunteerId: string): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE volunteer_id = ? AND status = 'leased'`, volunteerId);
}

export function replicasOfJob(q: Query, jobId: string): ReplicaRow[] {
  return replicas(q, `SELECT ${REPLICA_COLS} FROM replicas WHERE job_id = ? ORDER BY leased_at, rowid`, jobId);
}
