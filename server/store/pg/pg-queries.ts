/**
 * The reads that list tasks and replicas in PostgreSQL: recovery of a job's open work (all of it, or the batches of
 * one slice), a volunteer's tasks, stalled and tainted ones, the leases out. Each is one round trip.
 */
import type { Statement } from './pg-sync.js';
import { REPLICA, TASK } from './pg-columns.js';
import type { BatchRange, ReplicaRow, ReplicaStatus, TaskRow } from '../store.js';

type Send = (statements: Statement[], write?: boolean) => Record<string, unknown>[][];

/** Every batch of a job. */
const ALL_BATCHES: BatchRange = { from: 0, to: Number.MAX_SAFE_INTEGER };

const all = <T>(send: Send, text: string, values?: unknown[]): T[] => send([{ text, values }])[0] as unknown as T[];
const count = (send: Send, text: string, values?: unknown[]) => all<{ n: number }>(send, text, values)[0]!.n;

export function recoveryTasks(send: Send, jobId: string, range: BatchRange = ALL_BATCHES): TaskRow[] {
  // Open tasks through tasks_pick, done canaries through tasks_canary_pick: two index walks, one round trip.
  const values = [jobId, range.from, range.to];
  const [open, canaries] = send([
    { text: `SELECT ${TASK.select()} FROM tasks WHERE job_id = $1 AND status = 'pending' AND batch >= $2::int8 AND batch < $3::int8
        ORDER BY stage DESC, batch`, values },
    { text: `SELECT ${TASK.select()} FROM tasks WHERE job_id = $1 AND canary AND status = 'done' AND batch >= $2::int8 AND batch < $3::int8
        ORDER BY batch`, values },
  ]);
  return [...open!, ...canaries!] as unknown as TaskRow[];
}

export function recoveryReplicas(send: Send, jobId: string, range: BatchRange = ALL_BATCHES): ReplicaRow[] {
  // The slice's tasks through tasks_of_slice, then their replicas through replicas_of_task: as long as the slice is,
  // not the job (a join would scan the job's replicas once they outnumber the slice's tasks).
  return all(send, `SELECT ${REPLICA.select('r')} FROM replicas r WHERE r.task_id = ANY(ARRAY(SELECT t.id FROM tasks t
      WHERE t.job_id = $1 AND (t.status = 'pending' OR t.canary) AND t.batch >= $2::int8 AND t.batch < $3::int8)) ORDER BY r.leased_at, r.seq`,
  [jobId, range.from, range.to]);
}

export function failedTasks(send: Send, jobId: string): TaskRow[] {
  return all(send, `SELECT ${TASK.select()} FROM tasks WHERE job_id = $1 AND status = 'failed' ORDER BY batch`, [jobId]);
}

export function unreadyCanaries(send: Send): TaskRow[] {
  return all(send, `SELECT ${TASK.select('t')} FROM jobs j JOIN tasks t ON t.job_id = j.id AND t.canary AND NOT t.ready
      WHERE j.status = 'running' ORDER BY j.created_at, t.batch`);
}

export function pendingTasksReturnedBy(send: Send, volunteerId: string): TaskRow[] {
  return all(send, `SELECT DISTINCT ${TASK.select('t')} FROM replicas r JOIN tasks t ON t.id = r.task_id AND t.status = 'pending'
      WHERE r.volunteer_id = $1 AND r.status = 'returned'`, [volunteerId]);
}

export function acceptedTasksReturnedBy(send: Send, volunteerId: string): TaskRow[] {
  return all(send, `SELECT DISTINCT ${TASK.select('t')} FROM replicas r JOIN tasks t ON t.id = r.task_id AND t.status = 'done' AND NOT t.canary
      JOIN jobs j ON j.id = t.job_id AND j.status = 'running'
      WHERE r.volunteer_id = $1 AND r.status = 'returned' ORDER BY t.stage`, [volunteerId]);
}

export function endedTasksReturnedBy(send: Send, volunteerId: string): TaskRow[] {
  return all(send, `SELECT DISTINCT ${TASK.select('t')} FROM replicas r JOIN tasks t ON t.id = r.task_id AND t.status = 'done' AND NOT t.canary
      JOIN jobs j ON j.id = t.job_id AND j.status != 'running'
      WHERE r.volunteer_id = $1 AND r.status = 'returned' AND r.error IS NULL ORDER BY t.stage`, [volunteerId]);
}

export function openTasksWithReplicas(send: Send): TaskRow[] {
  return all(send, `SELECT ${TASK.select('t')} FROM jobs j JOIN tasks t ON t.job_id = j.id AND t.status = 'pending' AND t.active > 0
      WHERE j.status = 'running' ORDER BY j.created_at, t.stage, t.batch`);
}

export function stalledTasks(send: Send, limit: number): TaskRow[] {
  const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
  return all(send, `SELECT ${TASK.select('t')} FROM jobs j JOIN tasks t ON t.job_id = j.id
      WHERE j.status = 'running' AND t.status = 'pending' AND t.ready AND t.active < t.wanted AND t.active > 0
        AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND r.status = 'leased')
      LIMIT ${n}`);
}

export function taintedTasks(send: Send, jobId: string): TaskRow[] {
  return all(send, `SELECT ${TASK.select()} FROM tasks WHERE job_id = $1 AND tainted ORDER BY stage, batch`, [jobId]);
}

export function replicasOfTask(send: Send, taskId: string, status?: ReplicaStatus): ReplicaRow[] {
  return status === undefined
    ? all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE task_id = $1 ORDER BY leased_at, seq`, [taskId])
    : all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE task_id = $1 AND status = $2 ORDER BY leased_at, seq`, [taskId, status]);
}

export function leasedBefore(send: Send, now: number): ReplicaRow[] {
  return all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE status = 'leased' AND lease_expires <= $1`, [now]);
}

export function leasedByWorker(send: Send, workerId: string): ReplicaRow[] {
  return all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE worker_id = $1 AND status = 'leased'`, [workerId]);
}

export function leasedInJob(send: Send, jobId: string): ReplicaRow[] {
  return all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE job_id = $1 AND status = 'leased'`, [jobId]);
}

export function allLeased(send: Send ): ReplicaRow[] {
  return all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE status = 'leased'`);
}

export function leasedByVolunteer(send: Send, volunteerId: string): ReplicaRow[] {
  return all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE volunteer_id = $1 AND status = 'leased'`, [volunteerId]);
}

export function replicasOfJob(send: Send, jobId: string): ReplicaRow[] {
  return all(send, `SELECT ${REPLICA.select()} FROM replicas WHERE job_id = $1 ORDER BY leased_at, seq`, [jobId]);
}

export function newcomerLeasesByOrigin(send: Send, origin: string, vetted: { canaries: number; valid: number; createdBefore: number }): number {
  return count(send, `SELECT COUNT(*) AS n FROM replicas r JOIN volunteers v ON v.id = r.volunteer_id
      WHERE r.origin = $1 AND r.status = 'leased'
        AND (v.canary_passed < $2 OR v.valid < $3 OR v.canary_failed > 0 OR v.created_at > $4)`,
  [origin, vetted.canaries, vetted.valid, vetted.createdBefore]);
}
