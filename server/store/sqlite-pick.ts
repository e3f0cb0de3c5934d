/**
 * The SQL that picks tasks for a worker (kept for a Store used without the in-memory state of server/state/,
 * which answers these from memory): assignable tasks job by job through the open-task index, and known-answer
 * probes from a random batch on.
 */
import type Database from 'better-sqlite3';
import { type Row, TASK_COLS, t, taskFromRow } from './sqlite-schema.js';
import type { TaskFilter, TaskRow } from './store.js';

type Query = (sql: string) => Database.Statement;

export function assignableTasks(q: Query, volunteerId: string, limit: number, filter: TaskFilter = {}): TaskRow[] {
  // One running job at a time, in priority order: within a job the tasks_open index gives the tasks that
  // want a replica in order, so the query stops at `limit`. Model filters are written into the statement
  // only when present (one prepared statement per shape): an empty filter costs nothing.
  const list = (ms: string[]) => ms.map(() => '?').join(', ');
  const conds: string[] = [];
  const args: unknown[] = [];
  if (filter.models) { conds.push(`t.model IN (${list(filter.models)})`); args.push(...filter.models); }
  if (filter.excludeModels?.length) { conds.push(`t.model NOT IN (${list(filter.excludeModels)})`); args.push(...filter.excludeModels); }
  if (filter.deferModels?.length) {
    conds.push(`(t.model NOT IN (${list(filter.deferModels)}) OR t.ready_at <= ?)`);
    args.push(...filter.deferModels, filter.readySince ?? 0);
  }
  if (filter.models?.length === 0) return [];
  // The limit is written into the statement: SQLite stops at a literal LIMIT several times sooner than at a bound one.
  const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
  if (n === 0) return [];
  const pick = q(`SELECT ${t(TASK_COLS)} FROM tasks t INDEXED BY tasks_open
    WHERE t.job_id = ? AND t.status = 'pending' AND t.ready = 1 AND t.active < t.wanted
      ${conds.map((c) => `AND ${c}`).join(' ')}
      AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND +r.volunteer_id = ?
                      AND r.status IN ('leased', 'returned', 'failed', 'invalid'))
    ORDER BY t.stage DESC, t.batch LIMIT ${n}`);
  const out: TaskRow[] = [];
  const jobs = filter.jobs ?? (q(`SELECT id FROM jobs WHERE status = 'running' ORDER BY priority DESC, created_at, id`).all() as { id: string }[]).map((j) => j.id);
  for (const id of jobs) {
    for (const r of pick.all(id, ...args, volunteerId) as Row[]) {
      out.push(taskFromRow(r));
      if (out.length >= n) return out;
    }
  }
  return out;
}

export function probeTasks(q: Query, volunteerId: string, limit: number): TaskRow[] {
  // Running jobs in random order, and in each the canaries from a random batch on (wrapping around), through
  // the canaries' own index: a random pick without reading and sorting every canary of every job.
  const n = Math.max(0, Math.min(1_000, Math.floor(limit)));
  if (n === 0) return [];
  const jobs = q(`SELECT id, items, batch_size FROM jobs WHERE status = 'running'`).all() as { id: string; items: number; batch_size: number }[];
  for (let i = jobs.length - 1; i > 0; i--) {
    const k = Math.floor(Math.random() * (i + 1));
    [jobs[i], jobs[k]] = [jobs[k]!, jobs[i]!];
  }
  const pick = (from: string) => q(`SELECT ${t(TASK_COLS)} FROM tasks t INDEXED BY tasks_canary_pick
    WHERE t.job_id = ? AND t.canary = 1 AND t.status = 'done' AND t.batch ${from} ?
      AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND +r.volunteer_id = ?)
    ORDER BY t.batch LIMIT ${n}`);
  const out: TaskRow[] = [];
  for (const job of jobs) {
    const start = Math.floor(Math.random() * Math.ceil(job.items / job.batch_size));
    for (const rows of [pick('>='), pick('<')]) {
      for (const r of rows.all(job.id, start, volunteerId) as Row[]) {
        out.push(taskFromRow(r));
        if (out.length >= n) return out;
      }
    }
  }
  return out;
}
