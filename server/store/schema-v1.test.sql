-- The embedded store's schema 1 (TabGrid before the tensors moved to their own tables), for the migration test.
CREATE TABLE IF NOT EXISTS api_keys (id TEXT PRIMARY KEY, key_hash TEXT UNIQUE NOT NULL, name TEXT NOT NULL,
  admin INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS models (hash TEXT PRIMARY KEY, size INTEGER NOT NULL, inputs TEXT NOT NULL,
  outputs TEXT NOT NULL, opsets TEXT NOT NULL, weight_bytes INTEGER NOT NULL, largest_weight INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (hash TEXT PRIMARY KEY, dtype TEXT NOT NULL, shape TEXT NOT NULL,
  data_offset INTEGER NOT NULL, size INTEGER NOT NULL, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS volunteers (id TEXT PRIMARY KEY, token_hash TEXT UNIQUE NOT NULL, name TEXT, team TEXT,
  valid INTEGER NOT NULL DEFAULT 0, invalid INTEGER NOT NULL DEFAULT 0, errors INTEGER NOT NULL DEFAULT 0,
  streak INTEGER NOT NULL DEFAULT 0, canary_passed INTEGER NOT NULL DEFAULT 0, canary_failed INTEGER NOT NULL DEFAULT 0,
  credit REAL NOT NULL DEFAULT 0, quarantined_at INTEGER, created_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, owner TEXT NOT NULL, name TEXT, model TEXT NOT NULL,
  stage_models TEXT NOT NULL,
  inputs TEXT NOT NULL, items INTEGER NOT NULL, batch_size INTEGER NOT NULL, replicas INTEGER NOT NULL,
  max_replicas INTEGER NOT NULL, rtol REAL NOT NULL, atol REAL NOT NULL, priority INTEGER NOT NULL,
  adaptive INTEGER NOT NULL, canary_rate REAL NOT NULL, status TEXT NOT NULL, error TEXT, created_at INTEGER NOT NULL, finished_at INTEGER);
CREATE INDEX IF NOT EXISTS jobs_status ON jobs(status, priority, created_at);
CREATE TABLE IF NOT EXISTS tasks (id TEXT PRIMARY KEY, job_id TEXT NOT NULL, stage INTEGER NOT NULL,
  model TEXT NOT NULL, batch INTEGER NOT NULL,
  item_start INTEGER NOT NULL, item_end INTEGER NOT NULL, status TEXT NOT NULL, canary INTEGER NOT NULL,
  ready INTEGER NOT NULL, ready_at INTEGER, wanted INTEGER NOT NULL,
  active INTEGER NOT NULL DEFAULT 0, failures INTEGER NOT NULL DEFAULT 0, result BLOB, error TEXT, done_at INTEGER);
DROP INDEX IF EXISTS tasks_job;
CREATE INDEX IF NOT EXISTS tasks_pick ON tasks(job_id, status, stage DESC, batch);
CREATE INDEX IF NOT EXISTS tasks_canary ON tasks(job_id) WHERE canary = 1 AND status = 'done';
CREATE TABLE IF NOT EXISTS replicas (id TEXT PRIMARY KEY, task_id TEXT NOT NULL, job_id TEXT NOT NULL,
  worker_id TEXT NOT NULL, volunteer_id TEXT NOT NULL, status TEXT NOT NULL, worker_class TEXT NOT NULL,
  single INTEGER NOT NULL, site TEXT, leased_at INTEGER NOT NULL,
  lease_expires INTEGER NOT NULL, outputs BLOB, backend TEXT, run_ms REAL, error TEXT, returned_at INTEGER);
CREATE INDEX IF NOT EXISTS replicas_task ON replicas(task_id, status);
CREATE INDEX IF NOT EXISTS replicas_lease ON replicas(status, lease_expires);
CREATE INDEX IF NOT EXISTS replicas_worker ON replicas(worker_id, status);
CREATE INDEX IF NOT EXISTS replicas_job ON replicas(job_id, status);
CREATE INDEX IF NOT EXISTS replicas_volunteer ON replicas(volunteer_id, status);
CREATE INDEX IF NOT EXISTS volunteers_credit ON volunteers(credit DESC);
CREATE TABLE IF NOT EXISTS sites (origin TEXT PRIMARY KEY, credit REAL NOT NULL DEFAULT 0, tasks INTEGER NOT NULL DEFAULT 0,
  first_seen INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS class_pairs (a TEXT NOT NULL, b TEXT NOT NULL, agree INTEGER NOT NULL DEFAULT 0,
  disagree INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (a, b));
