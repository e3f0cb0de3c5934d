/**
 * The SQLite schema of the embedded store and the mapping between its rows and the Store's row types.
 */
import type { JobStatus } from '../../shared/protocol.js';
import type { ApiKeyRow, JobRow, ReplicaRow, ReplicaStatus, TaskRow, VolunteerRow } from './store.js';

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
  admin INTEGER NOT NULL, created_at INTEGER NOT NULL, revoked_at INTEGER,
  weight REAL NOT NULL DEFAULT 1);
CREATE TABLE IF NOT EXISTS models (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, inputs TEXT NOT NULL,
  outputs TEXT NOT NULL, opsets TEXT NOT NULL, weight_bytes INTEGER NOT NULL, largest_weight INTEGER NOT NULL, created_at INTEGER NOT NULL,
  unused_since INTEGER);
CREATE TABLE IF NOT EXISTS datasets (hash TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL,
  data_offset INTEGER NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL, unused_since INTEGER);
CREATE TABLE IF NOT EXISTS volunteers (id TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, name TEXT, team TEXT,
  valid INTEGER NOT NULL DEFAULT 0, invalid INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
  streak INTEGER NOT NULL DEFAULT 0, canary_passed INTEGER NOT NULL DEFAULT 0, canary_failed INTEGER NOT NULL DEFAULT 0,
  credit REAL NOT NULL DEFAULT 0, quarantined_at INTEGER, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT, model TEXT NOT NULL,
  stage_models TEXT NOT NULL,
  inputs TEXT NOT NULL, items INTEGER NOT NULL, batch_size INTEGER NOT NULL, replicas INTEGER NOT NULL,
  max_replicas INTEGER NOT NULL, rtol REAL NOT NULL, atol REAL NOT NULL, priority INTEGER NOT NULL,
  adaptive INTEGER NOT NULL, canary_rate REAL NOT NULL, status TEXT NOT NULL, error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER,
  keep_replica_outputs INTEGER NOT NULL DEFAULT 0, outputs_pruned INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, priority, created_at);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, stage INTEGER NOT NULL,
  model TEXT NOT NULL, batch INTEGER NOT NULL,
  item_start INTEGER NOT NULL, item_end INTEGER NOT NULL, status TEXT NOT NULL, canary INTEGER NOT NULL,
  ready INTEGER NOT NULL, ready_at INTEGER, wanted INTEGER NOT NULL,
  active INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, error TEXT, done_at INTEGER,
  tainted INTEGER NOT NULL DEFAULT 0);
DROP INDEX IF EXISTS tasks_job;
CREATE INDEX IF NOT EXISTS tasks_pick ON tasks(job_id, status, stage DESC, batch);
DROP INDEX IF EXISTS tasks_canary;
CREATE INDEX IF NOT EXISTS tasks_canary_pick ON tasks(job_id, batch) WHERE canary = 1 AND status = 'done';
CREATE INDEX IF NOT EXISTS tasks_open ON tasks(job_id, stage DESC, batch) WHERE status = 'pending' AND ready = 1 AND active < wanted;
CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, job_id TEXT NOT NULL,
  worker_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, status TEXT NOT NULL, worker_class TEXT NOT NULL,
  single INTEGER NOT NULL, site TEXT, leased_at INTEGER NOT NULL,
  lease_expires INTEGER NOT NULL, backend TEXT, run_ms REAL, error TEXT, returned_at INTEGER, origin TEXT);
-- Tensors live apart from the rows the scheduler reads and updates all the time, so those stay small (a row
-- with a 128 KiB blob in it spans 33 pages). A task's verified result names the replica whose outputs it is,
-- so they are stored once; only a result the server computed itself (a canary's answer) has bytes of its own.
CREATE TABLE IF NOT EXISTS replica_outputs (replica_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS task_results (task_id TEXT PRIMARY KEY, replica_id TEXT, data BLOB);
DROP INDEX IF EXISTS replicas_task;
CREATE INDEX IF NOT EXISTS replicas_of_task ON replicas(task_id, status, leased_at);
-- A replica changes status once or twice; only replicas_task has the status in full. Leases are found through
-- partial indexes that hold only the leased rows, jobs and volunteers through indexes a status change leaves alone.
DROP INDEX IF EXISTS replicas_lease;
DROP INDEX IF EXISTS replicas_worker;
DROP INDEX IF EXISTS replicas_job;
DROP INDEX IF EXISTS replicas_volunteer;
CREATE INDEX IF NOT EXISTS replicas_leased ON replicas(lease_expires) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS replicas_worker_leased ON replicas(worker_id) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS replicas_origin_leased ON replicas(origin) WHERE status = 'leased';
CREATE INDEX IF NOT EXISTS replicas_of_job ON replicas(job_id);
CREATE INDEX IF NOT EXISTS replicas_of_volunteer ON replicas(volunteer_id);
CREATE INDEX IF NOT EXISTS volunteers_credit ON volunteers(credit DESC);
CREATE TABLE IF NOT EXISTS sites (origin TEXT PRIMARY KEY, credit REAL NOT NULL DEFAULT 0, tasks INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS class_pairs (a TEXT NOT NULL, b TEXT NOT NULL, agree INTEGER NOT NULL DEFAULT 0,
  disagree INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
`;
/** Bumped with each schema change; a database from a newer TabGrid is refused rather than misread. */
export const SCHEMA_VERSION = 5;

/**
 * Upgrades a schema-1 database before SCHEMA runs: tensors move out of `replicas.outputs` and `tasks.result`
 * into their own tables. Runs in one transaction; a database already at 2 is left alone.
 */
export const MIGRATE_1_TO_2 = `
CREATE TABLE IF NOT EXISTS replica_outputs (replica_id TEXT PRIMARY KEY, data BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS task_results (task_id TEXT PRIMARY KEY, replica_id TEXT, data BLOB);
INSERT OR IGNORE INTO replica_outputs (replica_id, data) SELECT id, outputs FROM replicas WHERE outputs IS NOT NULL;
INSERT OR IGNORE INTO task_results (task_id, data) SELECT id, result FROM tasks WHERE result IS NOT NULL;
ALTER TABLE replicas DROP COLUMN outputs;
ALTER TABLE tasks DROP COLUMN result;
`;

/**
 * Upgrades a schema-2 database before SCHEMA runs: the network origin of each replica (quorums count origins),
 * a taint mark on tasks accepted with a volunteer later quarantined, and revocable API keys.
 */
export const MIGRATE_2_TO_3 = `
ALTER TABLE replicas ADD COLUMN origin TEXT;
ALTER TABLE tasks ADD COLUMN tainted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN revoked_at INTEGER;
`;

/** Upgrades a schema-3 database: each API key's weight in the fair share between researchers. */
export const MIGRATE_3_TO_4 = `
ALTER TABLE api_keys ADD COLUMN weight REAL NOT NULL DEFAULT 1;
`;

/**
 * Upgrades a schema-4 database: a job may keep its replicas' outputs (they are dropped once it ends otherwise), and
 * which ended jobs have had them dropped; models and data sets no job refers to carry the time they were first seen
 * so (removed after a grace period). Jobs that ended before the upgrade have their outputs dropped on the first sweep.
 */
export const MIGRATE_4_TO_5 = `
ALTER TABLE jobs ADD COLUMN keep_replica_outputs INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN outputs_pruned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE models ADD COLUMN unused_since INTEGER;
ALTER TABLE datasets ADD COLUMN unused_since INTEGER;
`;

export type Row = Record<string, unknown>;

export const apiKeyFromRow = (r: Row): ApiKeyRow => ({
  id: r.id as string, keyHash: r.key_hash as string, name: r.name as string, admin: r.admin === 1, createdAt: r.created_at as number,
  revokedAt: (r.revoked_at as number | null) ?? null,
  weight: r.weight as number,
});

export const jobFromRow = (r: Row): JobRow => ({
  id: r.id as string,
  owner: r.owner as string,
  name: (r.name as string | null) ?? null,
  model: r.model as string,
  stageModels: JSON.parse(r.stage_models as string),
  inputs: JSON.parse(r.inputs as string),
  items: r.items as number,
  batchSize: r.batch_size as number,
  replicas: r.replicas as number,
  maxReplicas: r.max_replicas as number,
  rtol: r.rtol as number,
  atol: r.atol as number,
  priority: r.priority as number,
  adaptive: r.adaptive === 1,
  canaryRate: r.canary_rate as number,
  status: r.status as JobStatus,
  error: (r.error as string | null) ?? null,
  createdAt: r.created_at as number,
  finishedAt: (r.finished_at as number | null) ?? null,
  keepReplicaOutputs: r.keep_replica_outputs === 1,
});

export const taskFromRow = (r: Row): TaskRow => ({
  id: r.id as string,
  jobId: r.job_id as string,
  stage: r.stage as number,
  model: r.model as string,
  batch: r.batch as number,
  itemStart: r.item_start as number,
  itemEnd: r.item_end as number,
  status: r.status as TaskRow['status'],
  canary: r.canary === 1,
  ready: r.ready === 1,
  readyAt: (r.ready_at as number | null) ?? null,
  wanted: r.wanted as number,
  active: r.active as number,
  failures: r.failures as number,
  error: (r.error as string | null) ?? null,
  doneAt: (r.done_at as number | null) ?? null,
  tainted: r.tainted === 1,
});

/** A task from a raw row (an array in TASK_COLS order): no intermediate object, for reading many at once. */
export const taskFromRaw = (r: unknown[]): TaskRow => ({
  id: r[0] as string, jobId: r[1] as string, stage: r[2] as number, model: r[3] as string, batch: r[4] as number, itemStart: r[5] as number,
  itemEnd: r[6] as number, status: r[7] as TaskRow['status'], canary: r[8] === 1, ready: r[9] === 1, readyAt: (r[10] as number | null) ?? null,
  wanted: r[11] as number, active: r[12] as number, failures: r[13] as number, error: (r[14] as string | null) ?? null, doneAt: (r[15] as number | null) ?? null,
  tainted: r[16] === 1,
});

export const replicaFromRow = (r: Row): ReplicaRow => ({
  id: r.id as string,
  taskId: r.task_id as string,
  jobId: r.job_id as string,
  workerId: r.worker_id as string,
  volunteerId: r.volunteer_id as string,
  status: r.status as ReplicaStatus,
  workerClass: r.worker_class as string,
  single: r.single === 1,
  site: (r.site as string | null) ?? null,
  leasedAt: r.leased_at as number,
  leaseExpires: r.lease_expires as number,
  backend: (r.backend as string | null) ?? null,
  runMs: (r.run_ms as number | null) ?? null,
  error: (r.error as string | null) ?? null,
  returnedAt: (r.returned_at as number | null) ?? null,
  origin: (r.origin as string | null) ?? null,
});

export const volunteerFromRow = (r: Row): VolunteerRow => ({
  id: r.id as string,
  name: (r.name as string | null) ?? null,
  team: (r.team as string | null) ?? null,
  valid: r.valid as number,
  invalid: r.invalid as number,
  errors: r.errors as number,
  streak: r.streak as number,
  canaryPassed: r.canary_passed as number,
  canaryFailed: r.canary_failed as number,
  credit: r.credit as number,
  quarantinedAt: (r.quarantined_at as number | null) ?? null,
  createdAt: r.created_at as number,
});

export const TASK_COLS = 'id, job_id, stage, model, batch, item_start, item_end, status, canary, ready, ready_at, wanted, active, failures, error, done_at, tainted';
export const REPLICA_COLS = 'id, task_id, job_id, worker_id, volunteer_id, status, worker_class, single, site, leased_at, lease_expires, backend, run_ms, error, returned_at, origin';
export const VOLUNTEER_COLS = 'id, name, team, valid, invalid, errors, streak, canary_passed, canary_failed, credit, quarantined_at, created_at';
/** Column list qualified with the tasks alias. */
export const t = (cols: string) => cols.split(', ').map((c) => `t.${c}`).join(', ');
/** Booleans as SQLite stores them. */
export const bool = (v: unknown) => (typeof v === 'boolean' ? (v ? 1 : 0) : v);

export const toSnake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
