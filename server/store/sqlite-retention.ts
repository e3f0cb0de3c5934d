/**
 * The SQL of retention: deleting a job with everything it holds, dropping the replica outputs no result needs once
 * a job has ended, what a job holds in bytes, and the models and data sets no job refers to any more (noted with
 * the time they were first seen unused, removed after a grace period). And giving freed pages back to the file
 * system: the database is in incremental auto-vacuum mode (set up in sqlite-store.ts), so deleted rows shrink the
 * file only when `PRAGMA incremental_vacuum` runs.
 */
import type Database from 'better-sqlite3';
import type { JobBytes, RemovedBlobs } from './store.js';

type Query = (sql: string) => Database.Statement;

/** The hashes of every model (whole or stage) and data set some job refers to. */
const USED_MODELS = `SELECT model AS hash FROM jobs UNION SELECT s.value FROM jobs, json_each(jobs.stage_models) s`;
const USED_DATASETS = `SELECT json_extract(i.value, '$.dataset') AS hash FROM jobs, json_each(jobs.inputs) i`;

/** Deletes a job's rows (the caller runs it in a transaction); false when there was no such job. */
export function deleteJob(q: Query, id: string): boolean {
  q('DELETE FROM replica_outputs WHERE replica_id IN (SELECT id FROM replicas WHERE job_id = ?)').run(id);
  q('DELETE FROM task_results WHERE task_id IN (SELECT id FROM tasks WHERE job_id = ?)').run(id);
  q('DELETE FROM replicas WHERE job_id = ?').run(id);
  q('DELETE FROM tasks WHERE job_id = ?').run(id);
  return q('DELETE FROM jobs WHERE id = ?').run(id).changes === 1;
}

export function jobsToPrune(q: Query): string[] {
  return (q(`SELECT id FROM jobs WHERE status != 'running' AND outputs_pruned = 0 AND keep_replica_outputs = 0
    ORDER BY finished_at, id`).all() as { id: string }[]).map((r) => r.id);
}

/**
 * Drops the outputs of an ended job's replicas that no result refers to. Not while the job runs: a task reopened
 * (a volunteer behind its result quarantined) is decided again from its other returned replicas' outputs.
 */
export function pruneReplicaOutputs(q: Query, jobId: string): number {
  const job = q('SELECT status FROM jobs WHERE id = ?').get(jobId) as { status: string } | undefined;
  if (!job || job.status === 'running') return 0;
  const dropped = q(`DELETE FROM replica_outputs WHERE replica_id IN (SELECT r.id FROM replicas r WHERE r.job_id = ?
    AND NOT EXISTS (SELECT 1 FROM task_results tr WHERE tr.task_id = r.task_id AND tr.replica_id = r.id))`).run(jobId).changes;
  q('UPDATE jobs SET outputs_pruned = 1 WHERE id = ?').run(jobId);
  return dropped;
}

export function jobsFinishedBefore(q: Query, at: number): string[] {
  return (q(`SELECT id FROM jobs WHERE status != 'running' AND finished_at IS NOT NULL AND finished_at <= ? ORDER BY finished_at, id`)
    .all(at) as { id: string }[]).map((r) => r.id);
}

export function jobBytes(q: Query, jobId: string): JobBytes {
  // length() of a BLOB reads its size from the record header, not the bytes.
  const outputs = (q(`SELECT COALESCE(SUM(length(ro.data)), 0) AS n FROM replicas r JOIN replica_outputs ro ON ro.replica_id = r.id
    WHERE r.job_id = ?`).get(jobId) as { n: number }).n;
  const results = (q(`SELECT COALESCE(SUM(length(tr.data)), 0) AS n FROM tasks t JOIN task_results tr ON tr.task_id = t.id
    WHERE t.job_id = ?`).get(jobId) as { n: number }).n;
  return { outputs, results };
}

export function blobUsers(q: Query, hashes: string[]): Map<string, number> {
  const out = new Map(hashes.map((h) => [h, 0]));
  if (hashes.length === 0) return out;
  const rows = q(`SELECT h.value AS hash, COUNT(DISTINCT j.id) AS n FROM json_each(?) h JOIN jobs j ON j.model = h.value
      OR EXISTS (SELECT 1 FROM json_each(j.stage_models) s WHERE s.value = h.value)
      OR EXISTS (SELECT 1 FROM json_each(j.inputs) i WHERE json_extract(i.value, '$.dataset') = h.value)
    GROUP BY h.value`).all(JSON.stringify(hashes)) as { hash: string; n: number }[];
  for (const r of rows) out.set(r.hash, r.n);
  return out;
}

export function markUnusedBlobs(q: Query, now: number): void {
  for (const [table, used] of [['models', USED_MODELS], ['datasets', USED_DATASETS]] as const) {
    q(`UPDATE ${table} SET unused_since = ? WHERE unused_since IS NULL AND hash NOT IN (${used})`).run(now);
    q(`UPDATE ${table} SET unused_since = NULL WHERE unused_since IS NOT NULL AND hash IN (${used})`).run();
  }
}

export function removeUnusedBlobs(q: Query, since: number): RemovedBlobs {
  const removed: RemovedBlobs = { models: [], datasets: [] };
  for (const [table, used, list] of [['models', USED_MODELS, removed.models], ['datasets', USED_DATASETS, removed.datasets]] as const) {
    // Looked at again here: a job made since the note refers to it once more.
    const rows = q(`SELECT hash FROM ${table} WHERE unused_since IS NOT NULL AND unused_since <= ? AND hash NOT IN (${used})`)
      .all(since) as { hash: string }[];
    const del = q(`DELETE FROM ${table} WHERE hash = ?`);
    for (const r of rows) { del.run(r.hash); list.push(r.hash); }
  }
  return removed;
}

/**
 * Puts a database in incremental auto-vacuum mode. The mode is written in the file's header, which journal_mode = WAL
 * has written already (as has any database made before schema 5, with SQLite's default NONE): VACUUM rewrites the
 * file once in the new mode. On a big old database that takes a while and as much free disk as the file, once.
 */
export function enableIncrementalVacuum(db: Database.Database): void {
  if (db.pragma('auto_vacuum', { simple: true }) === 2) return;
  db.pragma('auto_vacuum = INCREMENTAL');
  db.exec('VACUUM');
}

/**
 * Moves the free pages to the end of the file and cuts them off, then checkpoints the write-ahead log and truncates
 * it (the pages just moved went through it). Outside a transaction only; inside one it waits for the next call.
 */
export function compact(db: Database.Database): void {
  if (db.inTransaction || !db.open) return;
  db.pragma('incremental_vacuum');
  if (db.name !== ':memory:') db.pragma('wal_checkpoint(TRUNCATE)');
}
