/**
 * What workers computed, in SQLite (as pg-results.ts for PostgreSQL): a replica's outputs (`replica_outputs`) and a
 * task's accepted result (`task_results`: the bytes of the server's own run, or the replica whose outputs were
 * accepted).
 */
import type Database from 'better-sqlite3';

type Query = (sql: string) => Database.Statement;

/** Bytes as better-sqlite3 binds a BLOB (a Buffer over the same memory, no copy). */
const blob = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

export function setReplicaOutputs(q: Query, id: string, outputs: Uint8Array): void {
  q('INSERT OR REPLACE INTO replica_outputs (replica_id, data) VALUES (?, ?)').run(id, blob(outputs));
}

export function replicaOutputs(q: Query, id: string): Uint8Array | undefined {
  const r = q('SELECT data FROM replica_outputs WHERE replica_id = ?').get(id) as { data: Buffer } | undefined;
  return r ? new Uint8Array(r.data) : undefined;
}

export function setTaskResult(q: Query, id: string, result: Uint8Array): void {
  q('INSERT OR REPLACE INTO task_results (task_id, replica_id, data) VALUES (?, NULL, ?)').run(id, blob(result));
}

export function setTaskResultOf(q: Query, id: string, replicaId: string): void {
  q('INSERT OR REPLACE INTO task_results (task_id, replica_id, data) VALUES (?, ?, NULL)').run(id, replicaId);
}

export function clearTaskResult(q: Query, id: string): void {
  q('DELETE FROM task_results WHERE task_id = ?').run(id);
}

export function taskResult(q: Query, id: string): Uint8Array | undefined {
  const r = q(`SELECT COALESCE(tr.data, ro.data) AS data FROM task_results tr
    LEFT JOIN replica_outputs ro ON ro.replica_id = tr.replica_id WHERE tr.task_id = ?`).get(id) as { data: Buffer | null } | undefined;
  return r?.data ? new Uint8Array(r.data) : undefined;
}

/** A stage's results in batch order, read as they are used. */
export function* taskResults(q: Query, jobId: string, stage: number): Iterable<{ batch: number; result: Uint8Array }> {
  const it = q(`SELECT t.batch, COALESCE(tr.data, ro.data) AS data FROM tasks t
    JOIN task_results tr ON tr.task_id = t.id LEFT JOIN replica_outputs ro ON ro.replica_id = tr.replica_id
    WHERE t.job_id = ? AND t.stage = ? AND t.status = 'done' ORDER BY t.batch`)
    .iterate(jobId, stage) as Iterable<{ batch: number; data: Buffer }>;
  for (const r of it) yield { batch: r.batch, result: new Uint8Array(r.data) };
}
