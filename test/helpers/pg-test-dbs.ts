/**
 * Throwaway databases for the PostgreSQL store's tests: one cluster per test file, a database migrated once, and a
 * copy of it (or an empty one) for each test; what a test opens is closed after it. Call inside a describe.
 */
import { afterAll, afterEach, beforeAll } from 'vitest';
import { PgStore } from '../../server/store/pg/pg-store.js';
import { PgSync } from '../../server/store/pg/pg-sync.js';
import type { JobRow, TaskRow } from '../../server/store/store.js';
import { type PgCluster, startPgCluster } from './pg-cluster.js';

export interface PgTestDbs {
  /** A fresh, empty database's URL. */
  freshDb(): string;
  /** A fresh database with the schema in place: a copy of one migrated once (cheaper than migrating each). */
  migratedDb(): string;
  /** Closed after the test. */
  track<T extends { close(): void }>(s: T): T;
}

export function pgTestDbs(): PgTestDbs {
  let cluster: PgCluster;
  /** A connection to the cluster's `postgres` database, to create the others. */
  let admin: PgSync;
  let dbs = 0;
  const open: { close(): void }[] = [];
  beforeAll(async () => {
    cluster = await startPgCluster();
    admin = new PgSync(cluster.url);
    new PgStore(cluster.createDatabase('migrated')).close();
  });
  afterEach(() => { for (const s of open.splice(0)) s.close(); });
  afterAll(() => { admin?.close(); cluster?.stop(); });
  const create = (sql: string) => {
    admin.query(sql.replace('$db', `t${++dbs}`));
    return cluster.url.replace(/\/postgres$/, `/t${dbs}`);
  };
  return {
    freshDb: () => create('CREATE DATABASE $db'),
    migratedDb: () => create('CREATE DATABASE $db TEMPLATE migrated STRATEGY FILE_COPY'),
    track: (s) => { open.push(s); return s; },
  };
}

/** A running job of one stage, two replicas a task. */
export const testJob = (id: string, over: Partial<JobRow> = {}): JobRow => ({
  id, owner: 'k', name: null, model: 'm', stageModels: ['m'], inputs: [], items: 4, batchSize: 1, replicas: 2, maxReplicas: 3, rtol: 1e-3,
  atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null, ...over,
});

/** Pending tasks of `jobId` at `batches`, one item each. */
export const testTasks = (jobId: string, batches: number[], over: Partial<TaskRow> = {}): TaskRow[] => batches.map((b) => ({
  id: `${jobId}-s0-t${b}`, jobId, stage: 0, model: 'm', batch: b, itemStart: b, itemEnd: b + 1, status: 'pending', canary: false, ready: true,
  readyAt: 0, wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false, ...over,
}));

export const range = (n: number) => Array.from({ length: n }, (_, k) => k);
