/**
 * The SQL of retention for PostgreSQL, as sqlite-retention.ts: deleting a job with everything it holds, dropping
 * the replica outputs no result needs once a job has ended, what a job holds in bytes, and the models and data sets
 * no job refers to (noted with the time first seen unused, removed after a grace period). Each operation is one
 * round trip; space is given back by autovacuum.
 */
import type { Statement } from './pg-sync.js';
import type { JobBytes, RemovedBlobs } from '../store.js';

/** Sends statements now (after what a transaction has queued); `write` when they change rows. */
type Send = (statements: Statement[], write?: boolean) => Record<string, unknown>[][];

/** The hashes of every model (whole or stage) and data set some job refers to. */
const USED_MODELS = `SELECT model FROM jobs UNION SELECT jsonb_array_elements_text(stage_models) FROM jobs`;
const USED_DATASETS = `SELECT i->>'dataset' FROM jobs, jsonb_array_elements(inputs) i WHERE i->>'dataset' IS NOT NULL`;
const BLOBS = [['models', USED_MODELS], ['datasets', USED_DATASETS]] as const;

/** Deletes a job's rows (slices go with it: ON DELETE CASCADE); false when there was no such job. */
export function deleteJob(send: Send, id: string): boolean {
  const rows = send([
    { text: 'DELETE FROM replica_outputs WHERE replica_id IN (SELECT id FROM replicas WHERE job_id = $1)', values: [id] },
    { text: 'DELETE FROM task_results WHERE task_id IN (SELECT id FROM tasks WHERE job_id = $1)', values: [id] },
    { text: 'DELETE FROM replicas WHERE job_id = $1', values: [id] },
    { text: 'DELETE FROM tasks WHERE job_id = $1', values: [id] },
    { text: 'DELETE FROM jobs WHERE id = $1 RETURNING id', values: [id] },
  ], true);
  return rows[4]!.length === 1;
}

export function jobsToPrune(send: Send): string[] {
  const [rows] = send([{ text: `SELECT id FROM jobs WHERE status != 'running' AND NOT outputs_pruned AND NOT keep_replica_outputs
    ORDER BY finished_at, id` }]);
  return rows!.map((r) => r.id as string);
}

/**
 * Drops the outputs of an ended job's replicas that no result refers to. Not while the job runs: a task reopened
 * (a volunteer behind its result quarantined) is decided again from its other returned replicas' outputs.
 */
export function pruneReplicaOutputs(send: Send, jobId: string): number {
  const [dropped] = send([
    {
      text: `WITH d AS (DELETE FROM replica_outputs WHERE replica_id IN (SELECT r.id FROM replicas r WHERE r.job_id = $1
          AND EXISTS (SELECT 1 FROM jobs j WHERE j.id = $1 AND j.status != 'running')
          AND NOT EXISTS (SELECT 1 FROM task_results tr WHERE tr.task_id = r.task_id AND tr.replica_id = r.id)) RETURNING 1)
        SELECT COUNT(*) AS n FROM d`,
      values: [jobId],
    },
    { text: `UPDATE jobs SET outputs_pruned = true WHERE id = $1 AND status != 'running'`, values: [jobId] },
  ], true);
  return dropped![0]!.n as number;
}

export function jobsFinishedBefore(send: Send, at: number): string[] {
  const [rows] = send([{
    text: `SELECT id FROM jobs WHERE status != 'running' AND finished_at IS NOT NULL AND finished_at <= $1 ORDER BY finished_at, id`,
    values: [at],
  }]);
  return rows!.map((r) => r.id as string);
}

export function jobBytes(send: Send, jobId: string): JobBytes {
  const [[row]] = send([{
    text: `SELECT
      (SELECT COALESCE(SUM(octet_length(ro.data)), 0) FROM replicas r JOIN replica_outputs ro ON ro.replica_id = r.id WHERE r.job_id = $1) AS outputs,
      (SELECT COALESCE(SUM(octet_length(tr.data)), 0) FROM tasks t JOIN task_results tr ON tr.task_id = t.id WHERE t.job_id = $1) AS results`,
    values: [jobId],
  }]) as unknown as [[JobBytes]];
  return { outputs: row.outputs, results: row.results };
}

export function blobUsers(send: Send, hashes: string[]): Map<string, number> {
  const out = new Map(hashes.map((h) => [h, 0]));
  if (hashes.length === 0) return out;
  const [rows] = send([{
    text: `SELECT h AS hash, COUNT(DISTINCT j.id) AS n FROM unnest($1::text[]) h JOIN jobs j ON j.model = h OR j.stage_models ? h
      OR EXISTS (SELECT 1 FROM jsonb_array_elements(j.inputs) i WHERE i->>'dataset' = h)
    GROUP BY h`,
    values: [hashes],
  }]);
  for (const r of rows!) out.set(r.hash as string, r.n as number);
  return out;
}

/** The statements that note unused models and data sets (a void write: the caller queues them). */
export function markUnusedBlobs(now: number): Statement[] {
  return BLOBS.flatMap(([table, used]) => [
    { text: `UPDATE ${table} SET unused_since = $1 WHERE unused_since IS NULL AND hash NOT IN (${used})`, values: [now] },
    { text: `UPDATE ${table} SET unused_since = NULL WHERE unused_since IS NOT NULL AND hash IN (${used})` },
  ]);
}

export function removeUnusedBlobs(send: Send, since: number): RemovedBlobs {
  // Looked at again here: a job made since the note refers to it once more.
  const [models, datasets] = send(BLOBS.map(([table, used]) => ({
    text: `DELETE FROM ${table} WHERE unused_since IS NOT NULL AND unused_since <= $1 AND hash NOT IN (${used}) RETURNING hash`,
    values: [since],
  })), true);
  const hashes = (rows: Record<string, unknown>[]) => rows.map((r) => r.hash as string).sort();
  return { models: hashes(models!), datasets: hashes(datasets!) };
}
