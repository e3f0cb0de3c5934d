/**
 * The statements that create a job: its row, its tasks in chunks through unnest() (one statement per chunk rather
 * than one per task: 200,000 tasks go in a few seconds), and its slices, the runs of SLICE_BATCHES batches that
 * servers sharing the database claim one at a time.
 */
import type { Statement } from './pg-sync.js';
import { JOB, TASK, TASK_ARRAY_TYPES } from './pg-columns.js';
import { type JobRow, SLICE_BATCHES, type TaskRow } from '../store.js';

/** Tasks per INSERT: each is 17 arrays of this many values, serialized as array literals. */
const CHUNK = 10_000;

export function createJobStatements(job: JobRow, tasks: TaskRow[]): Statement[] {
  const out: Statement[] = [JOB.insert({ ...job, keepReplicaOutputs: job.keepReplicaOutputs ?? false })];
  const casts = TASK.fields.map((f, k) => `$${k + 1}::${TASK_ARRAY_TYPES[f]}[]`).join(', ');
  for (let at = 0; at < tasks.length; at += CHUNK) {
    const chunk = tasks.slice(at, at + CHUNK);
    out.push({
      text: `INSERT INTO tasks (${TASK.names}) SELECT * FROM unnest(${casts})`,
      values: TASK.fields.map((f) => chunk.map((t) => t[f] ?? null)),
    });
  }
  // A slice is done from the start when none of its tasks is pending (a job created with its work already done).
  const slices = new Map<number, boolean>();
  for (const t of tasks) {
    const k = Math.floor(t.batch / SLICE_BATCHES);
    slices.set(k, (slices.get(k) ?? true) && t.status !== 'pending');
  }
  if (slices.size > 0) {
    out.push({
      text: 'INSERT INTO slices (job_id, slice, done) SELECT $1, * FROM unnest($2::int4[], $3::bool[])',
      values: [job.id, [...slices.keys()], [...slices.values()]],
    });
  }
  return out;
}
