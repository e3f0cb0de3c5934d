/**
 * What workers computed, in PostgreSQL: a replica's outputs (`replica_outputs`) and a task's accepted result
 * (`task_results`: the bytes of the server's own run, or the replica whose outputs were accepted). The writes as
 * statements for the store's transaction, and the reads.
 */
import type { Statement } from './pg-sync.js';

type Send = (statements: Statement[]) => Record<string, unknown>[][];

/** Results read per round trip when a stage's are read in order (they may be larger than memory together). */
const RESULTS_PAGE = 64;

export const setReplicaOutputs = (id: string, outputs: Uint8Array): Statement => ({
  text: 'INSERT INTO replica_outputs (replica_id, data) VALUES ($1, $2) ON CONFLICT (replica_id) DO UPDATE SET data = excluded.data',
  values: [id, outputs],
});

export const setTaskResult = (id: string, result: Uint8Array): Statement => ({
  text: `INSERT INTO task_results (task_id, replica_id, data) VALUES ($1, NULL, $2)
        ON CONFLICT (task_id) DO UPDATE SET replica_id = NULL, data = excluded.data`,
  values: [id, result],
});

export const setTaskResultOf = (id: string, replicaId: string): Statement => ({
  text: `INSERT INTO task_results (task_id, replica_id, data) VALUES ($1, $2, NULL)
        ON CONFLICT (task_id) DO UPDATE SET replica_id = excluded.replica_id, data = NULL`,
  values: [id, replicaId],
});

export const clearTaskResult = (id: string): Statement => ({ text: 'DELETE FROM task_results WHERE task_id = $1', values: [id] });

export function replicaOutputs(send: Send, id: string): Uint8Array | undefined {
  const [row] = send([{ text: 'SELECT data FROM replica_outputs WHERE replica_id = $1', values: [id] }])[0] as { data: Uint8Array }[];
  return row?.data;
}

export function taskResult(send: Send, id: string): Uint8Array | undefined {
  const [row] = send([{
    text: `SELECT COALESCE(tr.data, ro.data) AS data FROM task_results tr
      LEFT JOIN replica_outputs ro ON ro.replica_id = tr.replica_id WHERE tr.task_id = $1`,
    values: [id],
  }])[0] as { data: Uint8Array | null }[];
  return row?.data ?? undefined;
}

/** A stage's results in batch order, a page at a time. */
export function* taskResults(send: Send, jobId: string, stage: number): Iterable<{ batch: number; result: Uint8Array }> {
  for (let after = -1; ;) {
    const rows = send([{
      text: `SELECT t.batch, COALESCE(tr.data, ro.data) AS data FROM tasks t
        JOIN task_results tr ON tr.task_id = t.id LEFT JOIN replica_outputs ro ON ro.replica_id = tr.replica_id
        WHERE t.job_id = $1 AND t.stage = $2 AND t.status = 'done' AND t.batch > $3 ORDER BY t.batch LIMIT ${RESULTS_PAGE}`,
      values: [jobId, stage, after],
    }])[0] as { batch: number; data: Uint8Array }[];
    for (const r of rows) yield { batch: r.batch, result: r.data };
    if (rows.length < RESULTS_PAGE) return;
    after = rows[rows.length - 1]!.batch;
  }
}
