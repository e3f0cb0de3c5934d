/**
 * The PostgreSQL store, for several servers sharing one database. Calls are synchronous as the Store interface is
 * (pg-sync.ts: a `pg` client in a worker thread), and round trips are few (pg-session.ts): inside a transaction the
 * writes that return nothing are queued and sent with the next read or with the COMMIT. Nothing mutable is cached:
 * other servers write the same rows; models and data sets, immutable once put, are.
 */
import { SLICE_BATCHES } from '../store.js';
import type {
  ApiKeyRow, BatchRange, ClassPairRow, DatasetRow, JobBytes, JobRow, ModelRow, RemovedBlobs, ReplicaPatch, ReplicaRow, ReplicaStatus,
  RunningJobRow, Savepoint, SiteRow, StageCounts, Store, TaskCounts, TaskFilter, TaskPatch, TaskRow, TeamRow, VolunteerCounts, VolunteerPatch,
  VolunteerRow, ViewCounts,
} from '../store.js';
import type { JobStatus } from '../../../shared/protocol.js';
import { PgSync, type Statement } from './pg-sync.js';
import { PgJobCounts } from './pg-counts.js';
import { PgSession } from './pg-session.js';
import { migrate } from './pg-schema.js';
import { API_KEY, DATASET, JOB, MODEL, REPLICA, TASK, VOLUNTEER, patchStatement, snake } from './pg-columns.js';
import { createJobStatements } from './pg-create-job.js';
import { assignableTasks, probeTasks } from './pg-pick.js';
import * as retention from './pg-retention.js';
import * as q from './pg-queries.js';
import * as results from './pg-results.js';

export interface PgStoreOptions {
  /** This server's id in `servers`: every transaction that writes checks that it is still alive there (the fence). */
  fence?: string;
}

/** Models and data sets kept in memory, by hash. */
const BLOB_ROWS = 1_000;

type Row = Record<string, unknown>;

/** PostgreSQL implementation of Store; opening one brings the database's schema up to date. */
export class PgStore implements Store {
  private readonly session: PgSession;
  private readonly models = new Map<string, ModelRow>();
  private readonly datasets = new Map<string, DatasetRow>();
  private readonly send = (statements: Statement[], write = false) => this.session.read(statements, write);
  private readonly counts = new PgJobCounts((statements) => this.session.read(statements), () => {
    const background = (this.background ??= new PgSync(this.url));
    return (statements) => background.ask(statements);
  });

  /** The connection jobs are created on (made on first use): creating a big job holds up nothing else. */
  private background: PgSync | null = null;

  constructor(private readonly url: string, private readonly options: PgStoreOptions = {}) {
    const db = new PgSync(url);
    try {
      migrate(db);
    } catch (err) {
      db.close();
      throw err;
    }
    this.session = new PgSession(db, options.fence);
    // A model put in a transaction that rolled back may have been read (and kept) inside it.
    this.session.onRollback = () => { this.models.clear(); this.datasets.clear(); };
  }

  static open(url: string, options?: PgStoreOptions): PgStore {
    return new PgStore(url, options);
  }

  /** The connection, for counting round trips. */
  get db(): PgSync {
    return this.session.db;
  }

  private all<T = Row>(text: string, values?: unknown[]): T[] {
    return this.session.read([{ text, values }])[0] as T[];
  }

  private one<T = Row>(text: string, values?: unknown[]): T | undefined {
    return this.all<T>(text, values)[0];
  }

  private count(text: string, values?: unknown[]): number {
    return this.one<{ n: number }>(text, values)!.n;
  }

  /** Writes that return nothing (null entries skipped): queued in a transaction. */
  private write(...statements: (Statement | null)[]): void {
    const list = statements.filter((s): s is Statement => s !== null);
    if (list.length > 0) this.session.write(list);
  }

  /** A write whose result is needed now: sent at once (fenced, in the transaction if one is open). */
  private change(text: string, values?: unknown[]): Row[] {
    return this.session.read([{ text, values }], true)[0]!;
  }

  transaction<T>(fn: () => T): T {
    return this.session.transaction(fn);
  }

  transactionThen<T>(fn: () => T, done: (err: Error | null) => void): T {
    return this.session.transactionThen(fn, done);
  }

  settle(): void {
    this.session.settle();
  }

  savepoint(): Savepoint {
    return this.session.savepoint();
  }

  close(): void {
    this.session.settle();
    this.session.db.close();
    this.background?.settle();
    this.background?.close();
  }

  insertApiKey(row: ApiKeyRow): void {
    this.write(API_KEY.insert(row));
  }

  findApiKey(keyHash: string): ApiKeyRow | undefined {
    return this.one(`SELECT ${API_KEY.select()} FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL`, [keyHash]);
  }

  listApiKeys(): ApiKeyRow[] {
    return this.all(`SELECT ${API_KEY.select()} FROM api_keys ORDER BY created_at, id`);
  }

  setApiKeyWeight(id: string, weight: number): boolean {
    return this.change('UPDATE api_keys SET weight = $2 WHERE id = $1 RETURNING id', [id, weight]).length === 1;
  }

  revokeApiKey(id: string, at: number): boolean {
    return this.change('UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL RETURNING id', [id, at]).length === 1;
  }

  countApiKeys(): number {
    return this.count('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL');
  }

  putModel(row: ModelRow): void {
    this.write(MODEL.insert(row, 'ON CONFLICT (hash) DO NOTHING'));
  }

  getModel(hash: string): ModelRow | undefined {
    return this.cached(this.models, hash, () => this.one<ModelRow>(`SELECT ${MODEL.select()} FROM models WHERE hash = $1`, [hash]));
  }

  putDataset(row: DatasetRow): void {
    this.write(DATASET.insert(row, 'ON CONFLICT (hash) DO NOTHING'));
  }

  getDataset(hash: string): DatasetRow | undefined {
    return this.cached(this.datasets, hash, () => this.one<DatasetRow>(`SELECT ${DATASET.select()} FROM datasets WHERE hash = $1`, [hash]));
  }

  private cached<T>(rows: Map<string, T>, hash: string, load: () => T | undefined): T | undefined {
    const hit = rows.get(hash);
    if (hit) return structuredClone(hit);
    const row = load();
    if (row) {
      if (rows.size >= BLOB_ROWS) rows.clear();
      rows.set(hash, structuredClone(row));
    }
    return row;
  }

  volunteerFor(tokenHash: string, newId: string, now: number): { id: string; created: boolean } {
    // One statement: the insert when the token is new, else the existing row. A volunteer another server inserted
    // since this statement's snapshot is in neither half: read again.
    const [r] = this.change(`WITH ins AS (INSERT INTO volunteers (id, token_hash, created_at) VALUES ($2, $1, $3)
        ON CONFLICT (token_hash) DO NOTHING RETURNING id)
      SELECT id, true AS created FROM ins UNION ALL SELECT id, false FROM volunteers WHERE token_hash = $1`, [tokenHash, newId, now]);
    if (r) return { id: r.id as string, created: r.created as boolean };
    return { id: this.one<{ id: string }>('SELECT id FROM volunteers WHERE token_hash = $1', [tokenHash])!.id, created: false };
  }

  getVolunteer(id: string): VolunteerRow | undefined {
    return this.one(`SELECT ${VOLUNTEER.select()} FROM volunteers WHERE id = $1`, [id]);
  }

  updateVolunteer(id: string, patch: VolunteerPatch): void {
    this.write(patchStatement('volunteers', id, patch));
  }

  addToVolunteer(id: string, counts: VolunteerCounts, patch: VolunteerPatch = {}): void {
    // Deltas added in the UPDATE itself: servers adding to one volunteer at once each get the row lock in turn.
    const values: unknown[] = [id];
    const sets: string[] = [];
    for (const [k, v] of Object.entries(counts)) if (v) sets.push(`${snake(k)} = ${snake(k)} + $${values.push(v)}`);
    for (const [k, v] of Object.entries(patch)) if (v !== undefined) sets.push(`${snake(k)} = $${values.push(v)}`);
    if (sets.length > 0) this.write({ text: `UPDATE volunteers SET ${sets.join(', ')} WHERE id = $1`, values });
  }

  listVolunteers(): VolunteerRow[] {
    return this.all(`SELECT ${VOLUNTEER.select()} FROM volunteers ORDER BY credit DESC, created_at`);
  }

  topVolunteers(limit: number): VolunteerRow[] {
    return this.all(`SELECT ${VOLUNTEER.select()} FROM volunteers WHERE quarantined_at IS NULL ORDER BY credit DESC, created_at LIMIT $1`, [limit]);
  }

  volunteerRank(id: string): number {
    return this.one<{ rank: number }>(`SELECT 1 + (SELECT COUNT(*) FROM volunteers o WHERE o.credit > v.credit AND o.quarantined_at IS NULL) AS rank
      FROM volunteers v WHERE v.id = $1`, [id])?.rank ?? 0;
  }

  topTeams(limit: number): TeamRow[] {
    return this.all(`SELECT team, SUM(credit) AS credit, COUNT(*) AS volunteers FROM volunteers
      WHERE team IS NOT NULL AND team != '' AND quarantined_at IS NULL GROUP BY team ORDER BY credit DESC LIMIT $1`, [limit]);
  }

  creditSite(origin: string, credit: number, now: number): void {
    this.write({
      text: `INSERT INTO sites (origin, credit, tasks, first_seen) VALUES ($1, $2, 1, $3)
        ON CONFLICT (origin) DO UPDATE SET credit = sites.credit + excluded.credit, tasks = sites.tasks + 1`,
      values: [origin, credit, now],
    });
  }

  topSites(limit: number): SiteRow[] {
    return this.all('SELECT origin, credit, tasks, first_seen AS "firstSeen" FROM sites ORDER BY credit DESC LIMIT $1', [limit]);
  }

  createJobAsync(job: JobRow, tasks: TaskRow[]): Promise<void> {
    this.background ??= new PgSync(this.url);
    const fence = this.options.fence;
    // The fence last, just before the commit: the server's row is locked from there to the commit only, not for the
    // whole insert (a large job takes a while), during which this server's other commits would wait on it.
    const statements: Statement[] = [
      { text: 'BEGIN' }, ...createJobStatements(job, tasks), ...(fence ? [{ text: 'SELECT tabgrid_fence($1)', values: [fence] }] : []), { text: 'COMMIT' },
    ];
    return new Promise((resolve, reject) => this.background!.post(statements, (err) => (err ? reject(err) : resolve())));
  }

  createJob(job: JobRow, tasks: TaskRow[]): void {
    this.transaction(() => this.write(...createJobStatements(job, tasks)));
  }

  getJob(id: string): JobRow | undefined {
    return this.one(`SELECT ${JOB.select()} FROM jobs WHERE id = $1`, [id]);
  }

  listJobs(owner?: string): JobRow[] {
    return owner === undefined
      ? this.all(`SELECT ${JOB.select()} FROM jobs ORDER BY created_at DESC`)
      : this.all(`SELECT ${JOB.select()} FROM jobs WHERE owner = $1 ORDER BY created_at DESC`, [owner]);
  }

  runningJobs(): RunningJobRow[] {
    return this.all(`SELECT j.id, j.owner, j.priority, j.created_at AS "createdAt", COALESCE(k.weight, 1) AS weight FROM jobs j
      LEFT JOIN api_keys k ON k.id = j.owner WHERE j.status = 'running'`);
  }

  setJobStatus(id: string, status: JobStatus, at: number, error: string | null = null): void {
    // A job that ends (again, after a rerun) has outputs to prune again.
    this.write({
      text: 'UPDATE jobs SET status = $2, finished_at = $3, error = $4, outputs_pruned = false WHERE id = $1',
      values: [id, status, status === 'running' ? null : at, error],
    });
    // Slices of an ended job are no server's; a job running again (a rerun) has all of them looked at again (a
    // server that claims one with nothing open finishes it at once).
    this.write(status === 'running'
      ? { text: 'UPDATE slices SET done = false WHERE job_id = $1', values: [id] }
      : { text: 'UPDATE slices SET done = true, server_id = NULL WHERE job_id = $1', values: [id] });
  }

  // A job's counts, each a scan of its tasks; a view's, paced (pg-counts.ts).
  taskCounts(jobId: string): TaskCounts { return this.counts.taskCounts(jobId); }
  stageCounts(jobId: string): StageCounts[] { return this.counts.stageCounts(jobId); }
  canaryCount(jobId: string): number { return this.counts.canaryCount(jobId); }
  taintedCount(jobId: string): number { return this.counts.taintedCount(jobId); }
  viewCounts(jobId: string, ended: boolean): ViewCounts { return this.counts.viewCounts(jobId, ended); }

  replicaCount(jobId: string): number {
    return this.count('SELECT COUNT(*) AS n FROM replicas WHERE job_id = $1', [jobId]);
  }

  recoveryTasks(jobId: string, range?: BatchRange): TaskRow[] { return q.recoveryTasks(this.send, jobId, range); }
  recoveryReplicas(jobId: string, range?: BatchRange): ReplicaRow[] { return q.recoveryReplicas(this.send, jobId, range); }
  failedTasks(jobId: string): TaskRow[] { return q.failedTasks(this.send, jobId); }

  assignableTasks(volunteerId: string, limit: number, filter: TaskFilter = {}): TaskRow[] {
    return assignableTasks(this.send, volunteerId, limit, filter);
  }

  hasUnfinishedTasks(jobId: string): boolean {
    return this.one<{ x: boolean }>(`SELECT EXISTS (SELECT 1 FROM tasks WHERE job_id = $1 AND status IN ('pending', 'failed')) AS x`, [jobId])!.x;
  }

  probeTasks(volunteerId: string, limit: number): TaskRow[] {
    return probeTasks(this.send, volunteerId, limit);
  }

  unreadyCanaries(): TaskRow[] { return q.unreadyCanaries(this.send); }
  pendingTasksReturnedBy(volunteerId: string): TaskRow[] { return q.pendingTasksReturnedBy(this.send, volunteerId); }
  acceptedTasksReturnedBy(volunteerId: string): TaskRow[] { return q.acceptedTasksReturnedBy(this.send, volunteerId); }
  endedTasksReturnedBy(volunteerId: string): TaskRow[] { return q.endedTasksReturnedBy(this.send, volunteerId); }
  openTasksWithReplicas(): TaskRow[] { return q.openTasksWithReplicas(this.send); }
  stalledTasks(limit: number): TaskRow[] { return q.stalledTasks(this.send, limit); }
  taintedTasks(jobId: string): TaskRow[] { return q.taintedTasks(this.send, jobId); }

  // What workers computed (pg-results.ts).
  clearTaskResult(id: string): void { this.write(results.clearTaskResult(id)); }
  taskResult(id: string): Uint8Array | undefined { return results.taskResult(this.send, id); }
  setTaskResult(id: string, result: Uint8Array): void { this.write(results.setTaskResult(id, result)); }
  setTaskResultOf(id: string, replicaId: string): void { this.write(results.setTaskResultOf(id, replicaId)); }
  taskResults(jobId: string, stage: number): Iterable<{ batch: number; result: Uint8Array }> { return results.taskResults(this.send, jobId, stage); }
  setReplicaOutputs(id: string, outputs: Uint8Array): void { this.write(results.setReplicaOutputs(id, outputs)); }
  replicaOutputs(id: string): Uint8Array | undefined { return results.replicaOutputs(this.send, id); }

  getTask(id: string): TaskRow | undefined {
    return this.one(`SELECT ${TASK.select()} FROM tasks WHERE id = $1`, [id]);
  }

  updateTask(id: string, patch: TaskPatch): void {
    this.write(patchStatement('tasks', id, patch));
    // A task opened again opens its slice again, for a server to claim (the one holding it already has it in memory).
    if (patch.status === 'pending') {
      this.write({
        text: `UPDATE slices s SET done = false FROM tasks t WHERE t.id = $1 AND s.job_id = t.job_id AND s.slice = t.batch / ${SLICE_BATCHES} AND s.done`,
        values: [id],
      });
    }
  }

  insertReplica(row: ReplicaRow): void {
    this.write(REPLICA.insert(row));
  }

  getReplica(id: string): ReplicaRow | undefined {
    return this.one(`SELECT ${REPLICA.select()} FROM replicas WHERE id = $1`, [id]);
  }

  updateReplica(id: string, patch: ReplicaPatch): void {
    this.write(patchStatement('replicas', id, patch));
  }

  replicasOfTask(taskId: string, status?: ReplicaStatus): ReplicaRow[] { return q.replicasOfTask(this.send, taskId, status); }
  leasedBefore(now: number): ReplicaRow[] { return q.leasedBefore(this.send, now); }
  leasedByWorker(workerId: string): ReplicaRow[] { return q.leasedByWorker(this.send, workerId); }

  leasedCountByWorker(workerId: string): number {
    return this.count(`SELECT COUNT(*) AS n FROM replicas WHERE worker_id = $1 AND status = 'leased'`, [workerId]);
  }

  newcomerLeasesByOrigin(origin: string, vetted: { canaries: number; valid: number; createdBefore: number }): number {
    return q.newcomerLeasesByOrigin(this.send, origin, vetted);
  }

  leasedInJob(jobId: string): ReplicaRow[] { return q.leasedInJob(this.send, jobId); }
  allLeased(): ReplicaRow[] { return q.allLeased(this.send); }
  leasedByVolunteer(volunteerId: string): ReplicaRow[] { return q.leasedByVolunteer(this.send, volunteerId); }
  replicasOfJob(jobId: string): ReplicaRow[] { return q.replicasOfJob(this.send, jobId); }

  deleteJob(id: string): boolean {
    this.counts.drop(id);
    return retention.deleteJob(this.send, id);
  }
  jobsToPrune(): string[] { return retention.jobsToPrune(this.send); }
  pruneReplicaOutputs(jobId: string): number { return retention.pruneReplicaOutputs(this.send, jobId); }
  jobsFinishedBefore(at: number): string[] { return retention.jobsFinishedBefore(this.send, at); }
  jobBytes(jobId: string): JobBytes { return retention.jobBytes(this.send, jobId); }
  blobUsers(hashes: string[]): Map<string, number> { return retention.blobUsers(this.send, hashes); }
  markUnusedBlobs(now: number): void { this.write(...retention.markUnusedBlobs(now)); }

  removeUnusedBlobs(since: number): RemovedBlobs {
    const removed = retention.removeUnusedBlobs(this.send, since);
    for (const h of removed.models) this.models.delete(h);
    for (const h of removed.datasets) this.datasets.delete(h);
    return removed;
  }

  /** Autovacuum gives deleted rows' space back. */
  compact(): void {}

  recordClassPair(a: string, b: string, agree: boolean): void {
    const [x, y] = a <= b ? [a, b] : [b, a];
    this.write({
      text: `INSERT INTO class_pairs (a, b, agree, disagree) VALUES ($1, $2, $3, $4)
        ON CONFLICT (a, b) DO UPDATE SET agree = class_pairs.agree + excluded.agree, disagree = class_pairs.disagree + excluded.disagree`,
      values: [x, y, agree ? 1 : 0, agree ? 0 : 1],
    });
  }

  classPairs(): ClassPairRow[] {
    return this.all('SELECT a, b, agree, disagree FROM class_pairs ORDER BY a, b');
  }
}
