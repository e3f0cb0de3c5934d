/**
 * The embedded store: SQLite through better-sqlite3 in WAL mode, one file in the data folder.
 * Statements are prepared once; JSON columns hold small structured values (specs, shapes).
 */
import Database from 'better-sqlite3';
import type {
  ApiKeyRow, DatasetRow, JobRow, ModelRow, ReplicaRow, ReplicaStatus, Store, TaskCounts, TaskRow,
} from './store.js';
import type { JobStatus } from '../../shared/protocol.js';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
  admin INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, inputs TEXT NOT NULL,
  outputs TEXT NOT NULL, opsets TEXT NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (hash TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL,
  data_offset INTEGER NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS volunteers (id TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT, model TEXT NOT NULL,
  inputs TEXT NOT NULL, items INTEGER NOT NULL, batch_size INTEGER NOT NULL, replicas INTEGER NOT NULL,
  max_replicas INTEGER NOT NULL, rtol REAL NOT NULL, atol REAL NOT NULL, priority INTEGER NOT NULL,
  status TEXT NOT NULL, error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, priority, created_at);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, batch INTEGER NOT NULL,
  item_start INTEGER NOT NULL, item_end INTEGER NOT NULL, status TEXT NOT NULL, wanted INTEGER NOT NULL,
  active INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, result BLOB, error TEXT, done_at INTEGER);
CREATE INDEX IF NOT EXISTS tasks_job ON tasks(job_id, status, batch);
CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, job_id TEXT NOT NULL,
  worker_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, status TEXT NOT NULL, leased_at INTEGER NOT NULL,
  lease_expires INTEGER NOT NULL, outputs BLOB, backend TEXT, run_ms REAL, error TEXT, returned_at INTEGER);
CREATE INDEX IF NOT EXISTS replicas_task ON replicas(task_id, status);
CREATE INDEX IF NOT EXISTS replicas_lease ON replicas(status, lease_expires);
CREATE INDEX IF NOT EXISTS replicas_worker ON replicas(worker_id, status);
CREATE INDEX IF NOT EXISTS replicas_job ON replicas(job_id, status);
`;

type Row = Record<string, unknown>;

const jobFromRow = (r: Row): JobRow => ({
  id: r.id as string,
  owner: r.owner as string,
  name: (r.name as string | null) ?? null,
  model: r.model as string,
  inputs: JSON.parse(r.inputs as string),
  items: r.items as number,
  batchSize: r.batch_size as number,
  replicas: r.replicas as number,
  maxReplicas: r.max_replicas as number,
  rtol: r.rtol as number,
  atol: r.atol as number,
  priority: r.priority as number,
  status: r.status as JobStatus,
  error: (r.error as string | null) ?? null,
  createdAt: r.created_at as number,
  finishedAt: (r.finished_at as number | null) ?? null,
});

const taskFromRow = (r: Row): TaskRow => ({
  id: r.id as string,
  jobId: r.job_id as string,
  batch: r.batch as number,
  itemStart: r.item_start as number,
  itemEnd: r.item_end as number,
  status: r.status as TaskRow['status'],
  wanted: r.wanted as number,
  active: r.active as number,
  failures: r.failures as number,
  error: (r.error as string | null) ?? null,
  doneAt: (r.done_at as number | null) ?? null,
});

const replicaFromRow = (r: Row): ReplicaRow => ({
  id: r.id as string,
  taskId: r.task_id as string,
  jobId: r.job_id as string,
  workerId: r.worker_id as string,
  volunteerId: r.volunteer_id as string,
  status: r.status as ReplicaStatus,
  leasedAt: r.leased_at as number,
  leaseExpires: r.lease_expires as number,
  backend: (r.backend as string | null) ?? null,
  runMs: (r.run_ms as number | null) ?? null,
  error: (r.error as string | null) ?? null,
  returnedAt: (r.returned_at as number | null) ?? null,
});

const TASK_COLS = 'id, job_id, batch, item_start, item_end, status, wanted, active, failures, error, done_at';
const REPLICA_COLS = 'id, task_id, job_id, worker_id, volunteer_id, status, leased_at, lease_expires, backend, run_ms, error, returned_at';

const toSnake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** SQLite implementation of Store; `path` ':memory:' gives a private in-memory database. */
export class SqliteStore implements Store {
  private readonly db: Database.Database;
  private readonly stmts = new Map<string, Database.Statement>();

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('busy_timeout = 5000');
    this.db.exec(SCHEMA);
  }

  private q(sql: string): Database.Statement {
    let s = this.stmts.get(sql);
    if (!s) { s = this.db.prepare(sql); this.stmts.set(sql, s); }
    return s;
  }

  private patch(table: string, id: string, patch: Record<string, unknown>): void {
    const keys = Object.keys(patch).filter((k) => patch[k] !== undefined);
    if (keys.length === 0) return;
    const sets = keys.map((k) => `${toSnake(k)} = @${k}`).join(', ');
    this.q(`UPDATE ${table} SET ${sets} WHERE id = @id`).run({ ...patch, id });
  }

  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  insertApiKey(row: ApiKeyRow): void {
    this.q('INSERT INTO api_keys (id, key_hash, name, admin, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(row.id, row.keyHash, row.name, row.admin ? 1 : 0, row.createdAt);
  }

  findApiKey(keyHash: string): ApiKeyRow | undefined {
    const r = this.q('SELECT * FROM api_keys WHERE key_hash = ?').get(keyHash) as Row | undefined;
    return r && { id: r.id as string, keyHash: r.key_hash as string, name: r.name as string, admin: r.admin === 1, createdAt: r.created_at as number };
  }

  countApiKeys(): number {
    return (this.q('SELECT COUNT(*) AS n FROM api_keys').get() as { n: number }).n;
  }

  putModel(row: ModelRow): void {
    this.q('INSERT OR IGNORE INTO models (hash, size, inputs, outputs, opsets, created_at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(row.hash, row.size, JSON.stringify(row.inputs), JSON.stringify(row.outputs), JSON.stringify(row.opsets), row.createdAt);
  }

  getModel(hash: string): ModelRow | undefined {
    const r = this.q('SELECT * FROM models WHERE hash = ?').get(hash) as Row | undefined;
    return r && {
      hash: r.hash as string, size: r.size as number, inputs: JSON.parse(r.inputs as string),
      outputs: JSON.parse(r.outputs as string), opsets: JSON.parse(r.opsets as string), createdAt: r.created_at as number,
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

  createJob(job: JobRow, tasks: TaskRow[]): void {
    this.transaction(() => {
      this.q(`INSERT INTO jobs (id, owner, name, model, inputs, items, batch_size, replicas, max_replicas, rtol, atol,
        priority, status, error, created_at, finished_at) VALUES (@id, @owner, @name, @model, @inputs, @items, @batchSize,
        @replicas, @maxReplicas, @rtol, @atol, @priority, @status, @error, @createdAt, @finishedAt)`)
        .run({ ...job, inputs: JSON.stringify(job.inputs) });
      const ins = this.q(`INSERT INTO tasks (${TASK_COLS}) VALUES (@id, @jobId, @batch, @itemStart, @itemEnd, @status,
        @wanted, @active, @failures, @error, @doneAt)`);
      for (const t of tasks) ins.run(t);
    });
  }

  getJob(id: string): JobRow | undefined {
    const r = this.q('SELECT * FROM jobs WHERE id = ?').get(id) as Row | undefined;
    return r && jobFromRow(r);
  }

  listJobs(owner?: string): JobRow[] {
    const rows = owner === undefined
      ? this.q('SELECT * FROM jobs ORDER BY created_at DESC').all()
      : this.q('SELECT * FROM jobs WHERE owner = ? ORDER BY created_at DESC').all(owner);
    return (rows as Row[]).map(jobFromRow);
  }

  setJobStatus(id: string, status: JobStatus, at: number, error: string | null = null): void {
    this.q('UPDATE jobs SET status = ?, finished_at = ?, error = ? WHERE id = ?')
      .run(status, status === 'running' ? null : at, error, id);
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

  replicaCount(jobId: string): number {
    return (this.q('SELECT COUNT(*) AS n FROM replicas WHERE job_id = ?').get(jobId) as { n: number }).n;
  }

  failedTasks(jobId: string): TaskRow[] {
    return (this.q(`SELECT ${TASK_COLS} FROM tasks WHERE job_id = ? AND status = 'failed' ORDER BY batch`).all(jobId) as Row[]).map(taskFromRow);
  }

  assignableTasks(volunteerId: string, limit: number): TaskRow[] {
    const rows = this.q(`SELECT ${TASK_COLS.split(', ').map((c) => `t.${c}`).join(', ')}
      FROM jobs j JOIN tasks t ON t.job_id = j.id AND t.status = 'pending'
      WHERE j.status = 'running' AND t.active < t.wanted
        AND NOT EXISTS (SELECT 1 FROM replicas r WHERE r.task_id = t.id AND r.volunteer_id = ?
                        AND r.status IN ('leased', 'returned', 'failed', 'invalid'))
      ORDER BY j.priority DESC, j.created_at, t.batch LIMIT ?`).all(volunteerId, limit) as Row[];
    return rows.map(taskFromRow);
  }

  getTask(id: string): TaskRow | undefined {
    const r = this.q(`SELECT ${TASK_COLS} FROM tasks WHERE id = ?`).get(id) as Row | undefined;
    return r && taskFromRow(r);
  }

  updateTask(id: string, patch: Parameters<Store['updateTask']>[1]): void {
    this.patch('tasks', id, patch);
  }

  setTaskResult(id: string, result: Uint8Array): void {
    this.q('UPDATE tasks SET result = ? WHERE id = ?').run(Buffer.from(result.buffer, result.byteOffset, result.byteLength), id);
  }

  *taskResults(jobId: string): Iterable<{ batch: number; result: Uint8Array }> {
    const it = this.q(`SELECT batch, result FROM tasks WHERE job_id = ? AND status = 'done' ORDER BY batch`).iterate(jobId) as Iterable<{ batch: number; result: Buffer }>;
    for (const r of it) yield { batch: r.batch, result: new Uint8Array(r.result) };
  }

  insertReplica(row: ReplicaRow): void {
    this.q(`INSERT INTO replicas (${REPLICA_COLS}) VALUES (@id, @taskId, @jobId, @workerId, @volunteerId, @status,
      @leasedAt, @leaseExpires, @backend, @runMs, @error, @returnedAt)`).run(row);
  }

  getReplica(id: string): ReplicaRow | undefined {
    const r = this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE id = ?`).get(id) as Row | undefined;
    return r && replicaFromRow(r);
  }

  updateReplica(id: string, patch: Parameters<Store['updateReplica']>[1]): void {
    this.patch('replicas', id, patch);
  }

  setReplicaOutputs(id: string, outputs: Uint8Array): void {
    this.q('UPDATE replicas SET outputs = ? WHERE id = ?').run(Buffer.from(outputs.buffer, outputs.byteOffset, outputs.byteLength), id);
  }

  replicaOutputs(id: string): Uint8Array | undefined {
    const r = this.q('SELECT outputs FROM replicas WHERE id = ?').get(id) as { outputs: Buffer | null } | undefined;
    return r?.outputs ? new Uint8Array(r.outputs) : undefined;
  }

  replicasOfTask(taskId: string, status?: ReplicaStatus): ReplicaRow[] {
    const rows = status === undefined
      ? this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE task_id = ? ORDER BY leased_at, rowid`).all(taskId)
      : this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE task_id = ? AND status = ? ORDER BY leased_at, rowid`).all(taskId, status);
    return (rows as Row[]).map(replicaFromRow);
  }

  leasedBefore(now: number): ReplicaRow[] {
    return (this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE status = 'leased' AND lease_expires <= ?`).all(now) as Row[]).map(replicaFromRow);
  }

  leasedByWorker(workerId: string): ReplicaRow[] {
    return (this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE worker_id = ? AND status = 'leased'`).all(workerId) as Row[]).map(replicaFromRow);
  }

  leasedInJob(jobId: string): ReplicaRow[] {
    return (this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE job_id = ? AND status = 'leased'`).all(jobId) as Row[]).map(replicaFromRow);
  }

  allLeased(): ReplicaRow[] {
    return (this.q(`SELECT ${REPLICA_COLS} FROM replicas WHERE status = 'leased'`).all() as Row[]).map(replicaFromRow);
  }
}
