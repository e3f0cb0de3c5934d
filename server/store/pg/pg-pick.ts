/**
 * The SQL that picks tasks for a worker (for a Store used without the in-memory state of server/state/, which
 * answers these from memory), as sqlite-pick.ts does it but in one statement rather than one per job: a round trip
 * to PostgreSQL costs more than a query.
 */
import type { Statement } from './pg-sync.js';
import { TASK } from './pg-columns.js';
import type { TaskFilter, TaskRow } from '../store.js';

type Read = (statements: Statement[]) => Record<string, unknown>[][];

const clampLimit = (limit: number) => Math.max(0, Math.min(1_000, Math.floor(limit)));

export function assignableTasks(read: Read, volunteerId: string, limit: number, filter: TaskFilter = {}): TaskRow[] {
  const n = clampLimit(limit);
  if (n === 0 || filter.models?.length === 0) return [];
  const values: unknown[] = [volunteerId];
  const param = (v: unknown) => `$${values.push(v)}`;
  const conds: string[] = [];
  if (filter.models) conds.push(`t.model = ANY(${param(filter.models)}::text[])`);
  if (filter.excludeModels?.length) conds.push(`NOT (t.model = ANY(${param(filter.excludeModels)}::text[]))`);
  if (filter.deferModels?.length) {
    conds.push(`(NOT (t.model = ANY(${param(filter.deferModels)}::text[])) OR t.ready_at <= ${param(filter.readySince ?? 0)}::bigint)`);
  }
  // The jobs to look in, in order: those given, or the running ones by priority and age. In each, the open-task
  // index gives the tasks that want a replica in order and the scan stops at the limit.
  const jobs = filter.jobs
    ? `SELECT id, ord FROM unnest(${param(filter.jobs)}::text[]) WITH ORDINALITY AS j(id, ord)`
    : `SELECT id, row_number() OVER (ORDER BY priority DESC, created_at, id) AS ord FROM jobs WHERE status = 'running'`;
  const [rows] = read([{
    text: `SELECT ${TASK.select('p')} FROM (${jobs}) j CROSS JOIN LATERAL (
      SELECT t.* FROM tasks t
      WHERE t.job_id = j.id AND t.status = 'pending' AND t.ready AND t.active < t.wanted
        ${conds.map((c) => `AND ${c}`).join(' ')}
        AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND r.volunteer_id = $1
                        AND r.status IN ('leased', 'returned', 'failed', 'invalid'))
      ORDER BY t.stage DESC, t.batch LIMIT ${n}) p
    ORDER BY j.ord, p.stage DESC, p.batch LIMIT ${n}`,
    values,
  }]);
  return rows as unknown as TaskRow[];
}

export function probeTasks(read: Read, volunteerId: string, limit: number): TaskRow[] {
  // Running jobs in random order, and in each the canaries from a random batch on (wrapping around): two round
  // trips, the jobs and then every job's picks together.
  const n = clampLimit(limit);
  if (n === 0) return [];
  const [jobs] = read([{ text: `SELECT id, items, batch_size AS "batchSize" FROM jobs WHERE status = 'running'` }]) as
    [{ id: string; items: number; batchSize: number }[]];
  if (jobs.length === 0) return [];
  for (let i = jobs.length - 1; i > 0; i--) {
    const k = Math.floor(Math.random() * (i + 1));
    [jobs[i], jobs[k]] = [jobs[k]!, jobs[i]!];
  }
  const pick = (from: string, job: string, start: number): Statement => ({
    text: `SELECT ${TASK.select('t')} FROM tasks t
      WHERE t.job_id = $1 AND t.canary AND t.status = 'done' AND t.batch ${from} $2
        AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND r.volunteer_id = $3)
      ORDER BY t.batch LIMIT ${n}`,
    values: [job, start, volunteerId],
  });
  const statements = jobs.flatMap((job) => {
    const start = Math.floor(Math.random() * Math.ceil(job.items / job.batchSize));
    return [pick('>=', job.id, start), pick('<', job.id, start)];
  });
  return (read(statements).flat() as unknown as TaskRow[]).slice(0, n);
}
