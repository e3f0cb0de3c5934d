/**
 * The PostgreSQL schema, as versioned migrations: each step is applied once, recorded in `schema_version`, under a
 * transaction-scoped advisory lock so several servers starting on one database do not both migrate. The tables
 * mirror SQLite's (sqlite-schema.ts): times in ms as bigint, flags as boolean, JSON as jsonb, tensors as bytea, plus
 * what servers sharing one database need (servers, slices of a job's batches, blobs in chunks, the fence).
 */
import type { PgSync } from './pg-sync.js';

/**
 * The steps, in order; step k brings a database to version k + 1. Append, never edit a step that has shipped.
 * Ids and other keys sort bytewise (COLLATE "C") as SQLite's do, whatever the database's locale.
 */
export const MIGRATIONS: readonly string[] = [
  `
CREATE TABLE api_keys (id text COLLATE "C" PRIMARY KEY, key_hash text UNIQUE NOT NULL, name text NOT NULL, admin boolean NOT NULL,
  created_at bigint NOT NULL, revoked_at bigint, weight double precision NOT NULL DEFAULT 1);
CREATE TABLE models (hash text COLLATE "C" PRIMARY KEY, size bigint NOT NULL, inputs jsonb NOT NULL, outputs jsonb NOT NULL,
  opsets jsonb NOT NULL, weight_bytes bigint NOT NULL, largest_weight bigint NOT NULL, created_at bigint NOT NULL, unused_since bigint);
CREATE TABLE datasets (hash text COLLATE "C" PRIMARY KEY, dtype text NOT NULL, shape jsonb NOT NULL, data_offset bigint NOT NULL,
  size bigint NOT NULL, created_at bigint NOT NULL, unused_since bigint);
CREATE TABLE volunteers (id text COLLATE "C" PRIMARY KEY, token_hash text UNIQUE NOT NULL, name text, team text COLLATE "C",
  valid integer NOT NULL DEFAULT 0, invalid integer NOT NULL DEFAULT 0, errors integer NOT NULL DEFAULT 0,
  streak integer NOT NULL DEFAULT 0, canary_passed integer NOT NULL DEFAULT 0, canary_failed integer NOT NULL DEFAULT 0,
  credit double precision NOT NULL DEFAULT 0, quarantined_at bigint, created_at bigint NOT NULL);
CREATE INDEX volunteers_credit ON volunteers (credit DESC);
CREATE TABLE jobs (id text COLLATE "C" PRIMARY KEY, owner text COLLATE "C" NOT NULL, name text, model text COLLATE "C" NOT NULL,
  stage_models jsonb NOT NULL, inputs jsonb NOT NULL, items bigint NOT NULL, batch_size integer NOT NULL, replicas integer NOT NULL,
  max_replicas integer NOT NULL, rtol double precision NOT NULL, atol double precision NOT NULL, priority integer NOT NULL,
  adaptive boolean NOT NULL, canary_rate double precision NOT NULL, status text NOT NULL, error text, created_at bigint NOT NULL,
  finished_at bigint, keep_replica_outputs boolean NOT NULL DEFAULT false, outputs_pruned boolean NOT NULL DEFAULT false);
CREATE INDEX jobs_status ON jobs (status, priority, created_at);
-- No foreign keys on tasks and replicas, as in SQLite: deleteJob removes them itself (retention).
CREATE TABLE tasks (id text COLLATE "C" PRIMARY KEY, job_id text COLLATE "C" NOT NULL, stage integer NOT NULL, model text COLLATE "C" NOT NULL,
  batch integer NOT NULL, item_start bigint NOT NULL, item_end bigint NOT NULL, status text NOT NULL, canary boolean NOT NULL,
  ready boolean NOT NULL, ready_at bigint, wanted integer NOT NULL, active integer NOT NULL DEFAULT 0,
  failures integer NOT NULL DEFAULT 0, error text, done_at bigint, tainted boolean NOT NULL DEFAULT false);
CREATE INDEX tasks_pick ON tasks (job_id, status, stage DESC, batch);
CREATE INDEX tasks_canary_pick ON tasks (job_id, batch) WHERE canary AND status = 'done';
CREATE INDEX tasks_open ON tasks (job_id, stage DESC, batch) WHERE status = 'pending' AND ready AND active < wanted;
-- seq orders replicas leased in the same millisecond as they were inserted (SQLite's rowid).
CREATE TABLE replicas (id text COLLATE "C" PRIMARY KEY, seq bigint GENERATED ALWAYS AS IDENTITY, task_id text COLLATE "C" NOT NULL,
  job_id text COLLATE "C" NOT NULL, worker_id text NOT NULL, volunteer_id text COLLATE "C" NOT NULL, status text NOT NULL,
  worker_class text NOT NULL, single boolean NOT NULL, site text, leased_at bigint NOT NULL, lease_expires bigint NOT NULL,
  backend text, run_ms double precision, error text, returned_at bigint, origin text);
CREATE INDEX replicas_of_task ON replicas (task_id, status, leased_at);
CREATE INDEX replicas_leased ON replicas (lease_expires) WHERE status = 'leased';
CREATE INDEX replicas_worker_leased ON replicas (worker_id) WHERE status = 'leased';
CREATE INDEX replicas_origin_leased ON replicas (origin) WHERE status = 'leased';
CREATE INDEX replicas_of_job ON replicas (job_id);
CREATE INDEX replicas_of_volunteer ON replicas (volunteer_id);
-- Tensors apart from the rows the scheduler updates all the time; a result names the replica whose outputs it is.
CREATE TABLE replica_outputs (replica_id text COLLATE "C" PRIMARY KEY, data bytea NOT NULL);
CREATE TABLE task_results (task_id text COLLATE "C" PRIMARY KEY, replica_id text COLLATE "C", data bytea);
CREATE TABLE sites (origin text COLLATE "C" PRIMARY KEY, credit double precision NOT NULL DEFAULT 0, tasks integer NOT NULL DEFAULT 0,
  first_seen bigint NOT NULL);
CREATE TABLE class_pairs (a text COLLATE "C" NOT NULL, b text COLLATE "C" NOT NULL, agree integer NOT NULL DEFAULT 0,
  disagree integer NOT NULL DEFAULT 0, PRIMARY KEY (a, b));

-- Several servers on one database: who is alive, which server holds which slice of a job, blobs in the database.
CREATE TABLE servers (id text PRIMARY KEY, url text, started_at bigint NOT NULL, seen_at bigint NOT NULL, alive boolean NOT NULL DEFAULT true);
CREATE TABLE slices (job_id text NOT NULL REFERENCES jobs(id) ON DELETE CASCADE, slice integer NOT NULL, server_id text, done boolean NOT NULL DEFAULT false, PRIMARY KEY (job_id, slice));
CREATE INDEX slices_open ON slices (job_id, slice) WHERE NOT done;
CREATE TABLE blobs (hash text PRIMARY KEY, size bigint NOT NULL, chunks integer NOT NULL, created_at bigint NOT NULL);
CREATE TABLE blob_chunks (hash text NOT NULL, idx integer NOT NULL, data bytea NOT NULL, PRIMARY KEY (hash, idx));
-- A server's writes begin with this: one that the others declared dead (alive = false) can no longer commit.
CREATE FUNCTION tabgrid_fence(sid text) RETURNS void AS $$ BEGIN UPDATE servers SET seen_at = (extract(epoch from clock_timestamp()) * 1000)::bigint WHERE id = sid AND alive; IF NOT FOUND THEN RAISE EXCEPTION 'server % has lost its claims', sid USING ERRCODE = 'TG001'; END IF; END $$ LANGUAGE plpgsql;
`,
  // 2: what each network origin holds on each server (connections, newcomers' leases): per-origin caps are the network's.
  `CREATE TABLE origin_use (server_id text NOT NULL, origin text NOT NULL, connections integer NOT NULL, newcomer_leases integer NOT NULL,
  PRIMARY KEY (server_id, origin));`,
  // 3: a slice's tasks by batch (a server taking a slice over reads its tasks' replicas through them, not the job's).
  `CREATE INDEX tasks_of_slice ON tasks (job_id, batch);`,
];

/** The version this TabGrid writes: a database at a higher one is refused. */
export const PG_SCHEMA_VERSION = MIGRATIONS.length;

/** Any constant: servers of one database take this advisory lock while they migrate, so one migrates, the rest wait. */
const MIGRATION_LOCK = 0x7461_6267; // 'tabg'

/**
 * Brings the database to PG_SCHEMA_VERSION: the pending steps and their version rows in one transaction (all or
 * none), holding the migration lock. Throws, changing nothing, on a database from a newer TabGrid.
 */
export function migrate(db: PgSync, migrations: readonly string[] = MIGRATIONS): { from: number; to: number } {
  try {
    const replies = db.run([
      { text: 'BEGIN' },
      { text: 'SELECT pg_advisory_xact_lock($1)', values: [MIGRATION_LOCK] },
      { text: 'CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at bigint NOT NULL)' },
      { text: 'SELECT COALESCE(MAX(version), 0) AS v FROM schema_version' },
    ]);
    const from = (replies[3]![0] as { v: number }).v;
    if (from > migrations.length) {
      throw new Error(`the PostgreSQL database is from a newer TabGrid (schema ${from}, this one knows ${migrations.length}); upgrade TabGrid`);
    }
    const steps = migrations.slice(from).flatMap((sql, k) => [
      { text: sql },
      { text: 'INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)', values: [from + k + 1, Date.now()] },
    ]);
    db.run([...steps, { text: 'COMMIT' }]);
    return { from, to: migrations.length };
  } catch (err) {
    // Whatever failed, the connection is left with no transaction open (a ROLLBACK with none open only warns).
    try { db.run([{ text: 'ROLLBACK' }]); } catch { /* the connection is gone: nothing is open on it */ }
    throw err;
  }
}
