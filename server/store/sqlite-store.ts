/**
 * The embedded store: SQLite through better-sqlite3 in WAL mode, one file in the data folder (sqlite-open.ts).
 * Statements are prepared once; JSON columns hold small structured values (specs, shapes).
 */
import type Database from 'better-sqlite3';
import type {
  ApiKeyRow, ClassPairRow, DatasetRow, JobBytes, JobRow, ModelRow, RemovedBlobs, ReplicaPatch, ReplicaRow, ReplicaStatus, Store, TaskPatch, TaskCounts, TaskRow,
  BatchRange, RunningJobRow, Savepoint, SiteRow, StageCounts, TaskFilter, TeamRow, VolunteerCounts, VolunteerPatch, VolunteerRow,
} from './store.js';
import type { JobStatus } from '../../shared/protocol.js';
import {
  REPLICA_COLS, type Row, TASK_COLS, VOLUNTEER_COLS, apiKeyFromRow, bool, jobFromRow,
  replicaFromRow, taskFromRow, toSnake, volunteerFromRow,
} from './sqlite-schema.js';
import { RowCache } from './row-cache.js';
import { WalCheckpointer } from './sqlite-checkpointer.js';
import { openDatabase } from './sqlite-open.js';
import { assignableTasks, probeTasks } from './sqlite-pick.js';
import * as q from './sqlite-queries.js';
import * as results from './sqlite-results.js';
import * as retention from './sqlite-retention.js';

/** Commits after which a database file gets its checkpoints on a thread of their own (a short-lived store never does). */
const CHECKPOINTER_AFTER_COMMITS = 64;

/** SQLite implementation of Store; `path` ':memory:' gives a private in-memory database. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();
  /** The rows every worker event reads, kept as written (cleared when a transaction rolls back). */
  private readonly jobs = new RowCache<JobRow>(1_000);
  private readonly tasks = new RowCache<TaskRow>(100_000);
  private readonly replicas = new RowCache<ReplicaRow>(100_000);
  private readonly volunteers = new RowCache<VolunteerRow>(50_000);
  private savepoints = 0;
  private commits = 0;
  private checkpointer: WalCheckpointer | null = null;

  constructor(private readonly path: string) {
    this.db = openDatabase(path);
  }

  /** The prepared-statement cache, for the SQL kept in other files. */
  private readonly sql = (text: string) => this.q(text);

  private q(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) { s = this.db.prepare(sql); this.stmts.set(sql, s); }
    return s;
  }

  private patch(table: string, id: string, patch: Record<string, unknown>): void {
    const keys = Object.keys(patch).filter((k) => patch[k] !== undefined);
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${toSnake(k)} = @${k}`).join(', ');
    const params: Record<string, unknown> = { id };
    for (const k of keys) params[k] = bool(patch[k]);
    this.q(`UPDATE ${table} SET ${sets} WHERE id = @id`).run(params);
  }

  transaction<T>(fn: () => T): T {
    // Nested units are savepoints: one that fails is undone alone, and its caller may go on.
    const outermost = !this.db.inTransaction;
    try {
      const out = this.db.transaction(fn)();
      if (outermost && ++this.commits === CHECKPOINTER_AFTER_COMMITS && this.path !== ':memory:') this.checkpointer = new WalCheckpointer(this.db, this.path);
      return out;
    } catch (err) {
      // The rows written inside were rolled back: so are the cached copies.
      this.clearCaches();
      throw err;
    }
  }

  savepoint(): Savepoint {
    const name = `live_${++this.savepoints}`;
    this.db.exec(`SAVEPOINT ${name}`);
    return {
      release: () => this.db.exec(`RELEASE ${name}`),
      rollback: () => {
        this.db.exec(`ROLLBACK TO ${name}`);
        this.db.exec(`RELEASE ${name}`);
        this.clearCaches();
      },
    };
  }

  private clearCaches(): void {
    this.jobs.clear();
    this.tasks.clear();
    this.replicas.clear();
    this.volunteers.clear();
  }

  close(): void {
    this.checkpointer?.close();
    if (this.db.open) this.db.close();
  }

  insertApiKey(row: ApiKeyRow): void {
    this.q('INSERT INTO api_keys (id, key_hash, name, admin, created_at, weight) VALUES (?, ?, ?, ?, ?, ?)')
      .run(row.id, row.keyHash, row.name, row.admin ? 1 : 0, row.createdAt, row.weight);
  }

  findApiKey(keyHash: string): ApiKeyRow | undefined {
    const r = this.q('SELECT * FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL').get(keyHash) as Row | undefined;
    return r && apiKeyFromRow(r);
  }

  listApiKeys(): ApiKeyRow[] {
    return (this.q('SELECT * FROM api_keys ORDER BY created_at, id').all() as Row[]).map(apiKeyFromRow);
  }

  setApiKeyWeight(id: string, weight: number): boolean {
    return this.q('UPDATE api_keys SET weight = ? WHERE id = ?').run(weight, id).changes === 1;
  }

  revokeApiKey(id: string, at: number): boolean {
    return this.q('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(at, id).changes === 1;
  }

  countApiKeys(): number {
    return (this.q('SELECT COUNT(*) AS n FROM api_keys WHERE revoked_at IS NULL').get() as { n: number }).n;
  }

  putModel(row: ModelRow): void {
    this.q(`INSERT OR IGNORE INTO models (hash, size, inputs, outputs, opsets, weight_bytes, largest_weight, created_at)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?)`).run(row.hash, row.size, JSON.stringify(row.inputs), JSON.stringify(row.outputs),
      JSON.stringify(row.opsets), row.weightBytes, row.largestWeight, row.createdAt);
  }

  getModel(hash: string): ModelRow | undefined {
    const r = this.q('SELECT * FROM models WHERE hash = ?').get(hash) as Row | undefined;
    return r && {
      hash: r.hash as string, size: r.size as number, inputs: JSON.parse(r.inputs as string),
      outputs: JSON.parse(r.outputs as string), opsets: JSON.parse(r.opsets as string), weightBytes: r.weight_bytes as number,
      largestWeight: r.largest_weight as number,
      createdAt: r.created_at as number,
    };
  }

  putDataset(row: DatasetRow): void {
    this.q('INSERT OR IGNORE INTO datasets (hash, dtype, shape, data_offset, size, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(row.hash, row.dtype, JSON.stringify(row.shape), row.dataOffset, row.size, row.createdAt);
  }

  getDataset(hash: string): DatasetRow | undefined {
    const r = this.q('SELECT * FROM datasets WHERE hash = ?').get(hash) as Row | undefined;
    return r && {
      hash: r.hash as string, dtype: r.dtype as DatasetRow['dtype'], shape: JSON.parse(r.shape as string),
      dataOffset: r.data_offset as number, size: r.size as number, createdAt: r.created_at as number,
    };
  }

  volunteerFor(tokenHash: string, newId: string, now: number): { id: string; created: boolean } {
    const r = this.q('SELECT id FROM volunteers WHERE token_hash = ?').get(tokenHash) as { id: string } | undefined;
    if (r) return { id: r.id, created: false };
    this.q('INSERT INTO volunteers (id, token_hash, created_at) VALUES (?, ?, ?)').run(newId, tokenHash, now);
    return { id: newId, created: true };
  }

  getVolunteer(id: string): VolunteerRow | undefined {
    return this.volunteers.read(id, () => this.q(`SELECT ${VOLUNTEER_COLS} FROM volunteers WHERE id = ?`).get(id) as Row | undefined, volunteerFromRow);
  }

  updateVolunteer(id: string, patch: VolunteerPatch): void {
    this.patch('volunteers', id, patch);
    this.volunteers.patch(id, patch);
  }

  addToVolunteer(id: string, counts: VolunteerCounts, patch: VolunteerPatch = {}): void {
    // One statement for both: a result changes a counter and the streak of the same row.
    const params: Record<string, unknown> = { id };
    const sets: string[] = [];
    for (const k of Object.keys(counts) as (keyof VolunteerCounts)[]) {
      if (!counts[k]) continue;
      sets.push(`${toSnake(k)} = ${toSnake(k)} + @c_${k}`);
      params[`c_${k}`] = counts[k];
    }
    for (const k of Object.keys(patch) as (keyof VolunteerPatch)[]) {
      if (patch[k] === undefined) continue;
      sets.push(`${toSnake(k)} = @${k}`);
      params[k] = bool(patch[k]);
    }
    if (sets.length > 0) this.q(`UPDATE volunteers SET ${sets.join(', ')} WHERE id = @id`).run(params);
    this.volunteers.delete(id);
  }

  listVolunteers(): VolunteerRow[] {
    return (this.q(`SELECT ${VOLUNTEER_COLS} FROM volunteers ORDER BY credit DESC, created_at`).all() as Row[]).map(volunteerFromRow);
  }

  topVolunteers(limit: number): VolunteerRow[] {
    return (this.q(`SELECT ${VOLUNTEER_COLS} FROM volunteers WHERE quarantined_at IS NULL ORDER BY credit DESC, created_at LIMIT ?`)
      .all(limit) as Row[]).map(volunteerFromRow);
  }

  volunteerRank(id: string): number {
    const r = this.q(`SELECT 1 + (SELECT COUNT(*) FROM volunteers o WHERE o.credit > v.credit AND o.quarantined_at IS NULL) AS rank
      FROM volunteers v WHERE v.id = ?`).get(id) as { rank: number } | undefined;
    return r?.rank ?? 0;
  }

  topTeams(limit: number): TeamRow[] {
    return this.q(`SELECT team, SUM(credit) AS credit, COUNT(*) AS volunteers FROM volunteers
      WHERE team IS NOT NULL AND team != '' AND quarantined_at IS NULL GROUP BY team ORDER BY credit DESC LIMIT ?`).all(limit) as TeamRow[];
  }

  creditSite(origin: string, credit: number, now: number): void {
    this.q(`INSERT INTO sites (origin, credit, tasks, first_seen) VALUES (?, ?, 1, ?)
      ON CONFLICT (origin) DO UPDATE SET credit = credit + excluded.credit, tasks = tasks + 1`).run(origin, credit, now);
  }

  topSites(limit: number): SiteRow[] {
    return (this.q('SELECT origin, credit, tasks, first_seen FROM sites ORDER BY credit DESC LIMIT ?').all(limit) as Row[])
      .map((r) => ({ origin: r.origin as string, credit: r.credit as number, tasks: r.tasks as number, firstSeen: r.first_seen as number }));
  }

  createJob(job: JobRow, tasks: TaskRow[]): void {
    this.transaction(() => {
      this.q(`INSERT INTO jobs (id, owner, name, model, stage_models, inputs, items, batch_size, replicas, max_replicas, rtol, atol,
        priority, adaptive, canary_rate, status, error, created_at, finished_at, keep_replica_outputs) VALUES (@id, @owner, @name, @model,
        @stageModels, @inputs, @items, @batchSize, @replicas, @maxReplicas, @rtol, @atol, @priority, @adaptive, @canaryRate, @status, @error,
        @createdAt, @finishedAt, @keep)`)
        .run({
          ...job, inputs: JSON.stringify(job.inputs), stageModels: JSON.stringify(job.stageModels), adaptive: job.adaptive ? 1 : 0,
          keepReplicaOutputs: undefined, keep: job.keepReplicaOutputs ? 1 : 0,
        });
      const ins = this.q(`INSERT INTO tasks (${TASK_COLS}) VALUES (@id, @jobId, @stage, @model, @batch, @itemStart, @itemEnd, @status,
        @canary, @ready, @readyAt, @wanted, @active, @failures, @error, @doneAt, @tainted)`);
      for (const task of tasks) ins.run({ ...task, canary: task.canary ? 1 : 0, ready: task.ready ? 1 : 0, tainted: task.tainted ? 1 : 0 });
    });
  }

  getJob(id: string): JobRow | undefined {
    return this.jobs.read(id, () => this.q('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined, jobFromRow);
  }

  listJobs(owner?: string): JobRow[] {
    const rows = owner === undefined
      ? this.q('SELECT * FROM jobs ORDER BY created_at DESC').all()
      : this.q('SELECT * FROM jobs WHERE owner = ? ORDER BY created_at DESC').all(owner);
    return (rows as Row[]).map(jobFromRow);
  }

  runningJobs(): RunningJobRow[] {
    return (this.q(`SELECT j.id, j.owner, j.priority, j.created_at, COALESCE(k.weight, 1) AS weight FROM jobs j
      LEFT JOIN api_keys k ON k.id = j.owner WHERE j.status = 'running'`).all() as Row[])
      .map((r) => ({ id: r.id as string, owner: r.owner as string, priority: r.priority as number, createdAt: r.created_at as number, weight: r.weight as number }));
  }

  setJobStatus(id: string, status: JobStatus, at: number, error: string | null = null): void {
    const finishedAt = status === 'running' ? null : at;
    // A job that ends (again, after a rerun) has outputs to prune again.
    this.q('UPDATE jobs SET status = ?, finished_at = ?, error = ?, outputs_pruned = 0 WHERE id = ?').run(status, finishedAt, error, id);
    this.jobs.patch(id, { status, finishedAt, error });
  }

  taskCounts(jobId: string): TaskCounts {
    const rows = this.q(`SELECT status, COUNT(*) AS n, SUM(CASE WHEN active > 0 THEN 1 ELSE 0 END) AS busy
      FROM tasks WHERE job_id = ? GROUP BY status`).all(jobId) as { status: string; n: number; busy: number }[];
    const c: TaskCounts = { total: 0, done: 0, failed: 0, pending: 0, running: 0 };
    for (const r of rows) {
      c.total += r.n;
      if (r.status === 'done') c.done = r.n;
      else if (r.status === 'failed') c.failed = r.n;
      else { c.running = r.busy; c.pending = r.n - r.busy; }
    }
    return c;
  }

  stageCounts(jobId: string): StageCounts[] {
    const rows = this.q(`SELECT stage, status, COUNT(*) AS n, SUM(CASE WHEN active > 0 THEN 1 ELSE 0 END) AS busy
      FROM tasks WHERE job_id = ? GROUP BY stage, status ORDER BY stage`).all(jobId) as { stage: number; status: string; n: number; busy: number }[];
    const byStage = new Map<number, StageCounts>();
    for (const r of rows) {
      const c = byStage.get(r.stage) ?? { stage: r.stage, total: 0, done: 0, failed: 0, pending: 0, running: 0 };
      c.total += r.n;
      if (r.status === 'done') c.done = r.n;
      else if (r.status === 'failed') c.failed = r.n;
      else { c.running = r.busy; c.pending = r.n - r.busy; }
      byStage.set(r.stage, c);
    }
    return [...byStage.values()];
  }

  replicaCount(jobId: string): number {
    return (this.q('SELECT COUNT(*) AS n FROM replicas WHERE job_id = ?').get(jobId) as { n: number }).n;
  }

  canaryCount(jobId: string): number {
    return (this.q('SELECT COUNT(*) AS n FROM tasks WHERE job_id = ? AND canary = 1').get(jobId) as { n: number }).n;
  }

  taintedCount(jobId: string): number {
    return (this.q('SELECT COUNT(*) AS n FROM tasks WHERE job_id = ? AND tainted = 1').get(jobId) as { n: number }).n;
  }

  recoveryTasks(jobId: string, range?: BatchRange): TaskRow[] { return q.recoveryTasks(this.sql, jobId, range); }
  recoveryReplicas(jobId: string, range?: BatchRange): ReplicaRow[] { return q.recoveryReplicas(this.sql, jobId, range); }
  failedTasks(jobId: string): TaskRow[] { return q.failedTasks(this.sql, jobId); }

  assignableTasks(volunteerId: string, limit: number, filter: TaskFilter = {}): TaskRow[] {
    return assignableTasks(this.sql, volunteerId, limit, filter).map((r) => this.tasks.set(r.id, r));
  }

  hasUnfinishedTasks(jobId: string): boolean {
    return (this.q(`SELECT EXISTS (SELECT 1 FROM tasks WHERE job_id = ? AND status IN ('pending', 'failed')) AS x`).get(jobId) as { x: number }).x === 1;
  }

  probeTasks(volunteerId: string, limit: number): TaskRow[] {
    return probeTasks(this.sql, volunteerId, limit);
  }

  unreadyCanaries(): TaskRow[] { return q.unreadyCanaries(this.sql); }
  pendingTasksReturnedBy(volunteerId: string): TaskRow[] { return q.pendingTasksReturnedBy(this.sql, volunteerId); }
  acceptedTasksReturnedBy(volunteerId: string): TaskRow[] { return q.acceptedTasksReturnedBy(this.sql, volunteerId); }
  endedTasksReturnedBy(volunteerId: string): TaskRow[] { return q.endedTasksReturnedBy(this.sql, volunteerId); }
  openTasksWithReplicas(): TaskRow[] { return q.openTasksWithReplicas(this.sql); }
  stalledTasks(limit: number): TaskRow[] { return q.stalledTasks(this.sql, limit); }
  taintedTasks(jobId: string): TaskRow[] { return q.taintedTasks(this.sql, jobId); }

  // What workers computed (sqlite-results.ts).
  clearTaskResult(id: string): void { results.clearTaskResult(this.sql, id); }
  taskResult(id: string): Uint8Array | undefined { return results.taskResult(this.sql, id); }
  setTaskResult(id: string, result: Uint8Array): void { results.setTaskResult(this.sql, id, result); }
  setTaskResultOf(id: string, replicaId: string): void { results.setTaskResultOf(this.sql, id, replicaId); }
  taskResults(jobId: string, stage: number): Iterable<{ batch: number; result: Uint8Array }> { return results.taskResults(this.sql, jobId, stage); }
  setReplicaOutputs(id: string, outputs: Uint8Array): void { results.setReplicaOutputs(this.sql, id, outputs); }
  replicaOutputs(id: string): Uint8Array | undefined { return results.replicaOutputs(this.sql, id); }

  getTask(id: string): TaskRow | undefined {
    return this.tasks.read(id, () => this.q(`SELECT ${TASK_COLS} FROM tasks WHERE id = ?`).get(id) as Row | undefined, taskFromRow);
  }

  updateTask(id: string, patch: TaskPatch): void {
    this.patch('tasks', id, patch);
    this.tasks.patch(id, patch);
  }

  insertReplica(row: ReplicaRow): void {
    this.q(`INSERT INTO replicas (${REPLICA_COLS}) VALUES (@id, @taskId, @jobId, @workerId, @volunteerId, @status,
      @workerClass, @single, @site, @leasedAt, @leaseExpires, @backend, @runMs, @error, @returnedAt, @origin)`).run({ ...row, single: row.single ? 1 : 0 });
    this.replicas.set(row.id, { ...row });
  }

  getReplica(id: string): ReplicaRow | undefined {
    return this.replicas.read(id, () => this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE id = ?`).get(id) as Row | undefined, replicaFromRow);
  }

  updateReplica(id: string, patch: ReplicaPatch): void {
    this.patch('replicas', id, patch);
    this.replicas.patch(id, patch);
  }

  replicasOfTask(taskId: string, status?: ReplicaStatus): ReplicaRow[] { return q.replicasOfTask(this.sql, taskId, status); }
  leasedBefore(now: number): ReplicaRow[] { return q.leasedBefore(this.sql, now); }
  leasedByWorker(workerId: string): ReplicaRow[] { return q.leasedByWorker(this.sql, workerId); }
  leasedCountByWorker(workerId: string): number { return q.leasedCountByWorker(this.sql, workerId); }
  newcomerLeasesByOrigin(origin: string, vetted: { canaries: number; valid: number; createdBefore: number }): number { return q.newcomerLeasesByOrigin(this.sql, origin, vetted); }
  leasedInJob(jobId: string): ReplicaRow[] { return q.leasedInJob(this.sql, jobId); }
  allLeased(): ReplicaRow[] { return q.allLeased(this.sql); }
  leasedByVolunteer(volunteerId: string): ReplicaRow[] { return q.leasedByVolunteer(this.sql, volunteerId); }
  replicasOfJob(jobId: string): ReplicaRow[] { return q.replicasOfJob(this.sql, jobId); }

  deleteJob(id: string): boolean {
    const deleted = this.transaction(() => retention.deleteJob(this.sql, id));
    // Its tasks and replicas may be cached under ids not known here: a delete is rare, the caches refill.
    this.clearCaches();
    return deleted;
  }

  jobsToPrune(): string[] { return retention.jobsToPrune(this.sql); }
  pruneReplicaOutputs(jobId: string): number { return retention.pruneReplicaOutputs(this.sql, jobId); }
  jobsFinishedBefore(at: number): string[] { return retention.jobsFinishedBefore(this.sql, at); }
  jobBytes(jobId: string): JobBytes { return retention.jobBytes(this.sql, jobId); }
  blobUsers(hashes: string[]): Map<string, number> { return retention.blobUsers(this.sql, hashes); }
  markUnusedBlobs(now: number): void { retention.markUnusedBlobs(this.sql, now); }
  removeUnusedBlobs(since: number): RemovedBlobs { return retention.removeUnusedBlobs(this.sql, since); }
  compact(): void { retention.compact(this.db); }

  recordClassPair(a: string, b: string, agree: boolean): void {
    const [x, y] = a <= b ? [a, b] : [b, a];
    this.q(`INSERT INTO class_pairs (a, b, agree, disagree) VALUES (?, ?, ?, ?)
      ON CONFLICT (a, b) DO UPDATE SET agree = agree + excluded.agree, disagree = disagree + excluded.disagree`)
      .run(x, y, agree ? 1 : 0, agree ? 0 : 1);
  }

  classPairs(): ClassPairRow[] {
    return this.q('SELECT a, b, agree, disagree FROM class_pairs ORDER BY a, b').all() as ClassPairRow[];
  }
}
