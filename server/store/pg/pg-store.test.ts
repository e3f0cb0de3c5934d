import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type PgCluster, havePostgres, startPgCluster } from '../../../test/helpers/pg-cluster.js';
import { storeContract } from '../store-contract.js';
import { type JobRow, SLICE_BATCHES, type Store, type TaskRow } from '../store.js';
import { MIGRATIONS, migrate } from './pg-schema.js';
import { PgClaims } from './pg-claims.js';
import { PgStore } from './pg-store.js';
import { PgError, PgSync } from './pg-sync.js';

const here = path.dirname(fileURLToPath(import.meta.url));
let cluster: PgCluster;
/** A connection to the cluster's `postgres` database, to create the others. */
let admin: PgSync;
let dbs = 0;
const open: { close(): void }[] = [];
/** A fresh, empty database's URL. */
const freshDb = () => {
  admin.query(`CREATE DATABASE t${++dbs}`);
  return cluster.url.replace(/\/postgres$/, `/t${dbs}`);
};
/** A fresh database with the schema in place: a copy of one migrated once (cheaper than migrating each). */
const migratedDb = () => {
  admin.query(`CREATE DATABASE t${++dbs} TEMPLATE migrated STRATEGY FILE_COPY`);
  return cluster.url.replace(/\/postgres$/, `/t${dbs}`);
};
const track = <T extends { close(): void }>(s: T): T => { open.push(s); return s; };

if (!havePostgres()) console.warn('PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin): the PostgreSQL store tests are skipped');

describe.skipIf(!havePostgres())('PostgreSQL store', () => {
  beforeAll(async () => {
    cluster = await startPgCluster();
    admin = new PgSync(cluster.url);
    new PgStore(cluster.createDatabase('migrated')).close();
  });
  afterEach(() => { for (const s of open.splice(0)) s.close(); });
  afterAll(() => { admin?.close(); cluster?.stop(); });

  const urls = new Map<Store, string>();
  storeContract('PostgreSQL', () => {
    const url = migratedDb();
    const s = track(new PgStore(url));
    urls.set(s, url);
    return s;
  }, (s) => {
    s.close();
    return track(new PgStore(urls.get(s)!));
  });

  const job = (id: string, over: Partial<JobRow> = {}): JobRow => ({
    id, owner: 'k', name: null, model: 'm', stageModels: ['m'], inputs: [], items: 4, batchSize: 1, replicas: 2, maxReplicas: 3, rtol: 1e-3,
    atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null, ...over,
  });
  const tasks = (jobId: string, batches: number[], over: Partial<TaskRow> = {}): TaskRow[] => batches.map((b) => ({
    id: `${jobId}-s0-t${b}`, jobId, stage: 0, model: 'm', batch: b, itemStart: b, itemEnd: b + 1, status: 'pending', canary: false, ready: true,
    readyAt: 0, wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false, ...over,
  }));
  const range = (n: number) => Array.from({ length: n }, (_, k) => k);

  describe('migrations', () => {
    it('applies each step once, and refuses a database from a newer TabGrid without changing it', () => {
      const url = freshDb();
      track(new PgStore(url)).close();
      track(new PgStore(url));
      const db = track(new PgSync(url));
      const n = MIGRATIONS.length;
      const versions = (k: number) => Array.from({ length: k }, (_, i) => ({ version: i + 1 }));
      expect(db.query('SELECT version FROM schema_version ORDER BY version')).toEqual(versions(n));
      // A later TabGrid adds a step: applied once, on top of what is there.
      expect(migrate(db, [...MIGRATIONS, 'CREATE TABLE later (x integer)'])).toEqual({ from: n, to: n + 1 });
      expect(migrate(db, [...MIGRATIONS, 'CREATE TABLE later (x integer)'])).toEqual({ from: n + 1, to: n + 1 });
      expect(() => new PgStore(url)).toThrow(new RegExp(`newer TabGrid \\(schema ${n + 1}`));
      expect(db.query('SELECT version FROM schema_version ORDER BY version')).toEqual(versions(n + 1));
      // The refusal left no transaction open on its connection: a failed step does not either.
      expect(() => migrate(db, [...MIGRATIONS, 'CREATE TABLE later (x integer)', 'CREATE TABLE broken ('])).toThrow();
      expect(db.query(`SELECT to_regclass('broken') AS t`)).toEqual([{ t: null }]);
      expect(db.query('SELECT MAX(version) AS v FROM schema_version')).toEqual([{ v: n + 1 }]);
    });
  });

  describe('several servers', () => {
    it('lose nothing when two connections add to one volunteer at once, and migrate a fresh database once between them', async () => {
      const url = freshDb();
      const script = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-pg-')), 'adds.mts');
      // Each process opens the store (both migrate the fresh database at once), then adds in transactions that hold
      // the row across a round trip (the read), so the two interleave.
      fs.writeFileSync(script, `
        const { PgStore } = await import(${JSON.stringify(path.join(here, 'pg-store.ts'))});
        const s = new PgStore(process.argv[2]);
        s.volunteerFor('token', 'v1', 1);
        for (let i = 0; i < 150; i++) s.transaction(() => { s.addToVolunteer('v1', { valid: 1, credit: 0.5 }); s.getVolunteer('v1'); s.addToVolunteer('v1', { errors: 1 }); });
        s.close();
      `);
      const run = () => promisify(execFile)(process.execPath, ['--import', 'tsx', script, url], { cwd: path.resolve(here, '../../..') });
      await Promise.all([run(), run()]);
      const s = track(new PgStore(url));
      expect(s.getVolunteer('v1')).toMatchObject({ valid: 300, errors: 300, credit: 150 });
      expect(track(new PgSync(url)).query('SELECT COUNT(*) AS n FROM schema_version')).toEqual([{ n: MIGRATIONS.length }]);
      fs.rmSync(path.dirname(script), { recursive: true, force: true });
    });

    it('share what each network origin holds on each server: a server learns the sums on the others alive', async () => {
      const url = migratedDb();
      const db = track(new PgStore(url)).db;
      const a = new PgClaims(db, 'A');
      const b = new PgClaims(db, 'B');
      a.register(null);
      b.register(null);
      expect(await a.shareOrigins([{ origin: 'o1', connections: 3, newcomerLeases: 1 }])).toEqual([]);
      expect(await b.shareOrigins([{ origin: 'o1', connections: 2, newcomerLeases: 0 }, { origin: 'o2', connections: 1, newcomerLeases: 4 }]))
        .toEqual([{ origin: 'o1', connections: 3, newcomerLeases: 1 }]);
      const seen = await a.shareOrigins([{ origin: 'o1', connections: 1, newcomerLeases: 0 }]);
      expect(seen.sort((x, y) => x.origin.localeCompare(y.origin))).toEqual([
        { origin: 'o1', connections: 2, newcomerLeases: 0 }, { origin: 'o2', connections: 1, newcomerLeases: 4 },
      ]);
      // What a server said replaces what it said before; a server that left counts no more.
      expect(await b.shareOrigins([])).toEqual([{ origin: 'o1', connections: 1, newcomerLeases: 0 }]);
      b.leave();
      expect(await a.shareOrigins([])).toEqual([]);
      // Declared dead (TG001 on its heartbeat), while the calls are answered on a later turn.
      await a.heartbeat();
      db.query('UPDATE servers SET alive = false WHERE id = $1', ['A']);
      await expect(a.heartbeat()).rejects.toMatchObject({ code: 'TG001' });
    });

    it('fences a server\'s writes: they commit while its row is alive, and throw TG001 once others declared it dead', () => {
      const url = migratedDb();
      const other = track(new PgSync(url));
      const s = track(new PgStore(url, { fence: 's1' }));
      // No row for s1 yet: it holds no claims.
      expect(() => s.createJob(job('j0'), [])).toThrow(expect.objectContaining({ code: 'TG001' }));
      other.query('INSERT INTO servers (id, started_at, seen_at) VALUES ($1, 0, 0)', ['s1']);
      s.createJob(job('j1'), tasks('j1', [0, 1]));
      s.transaction(() => { s.updateTask('j1-s0-t0', { active: 1 }); });
      expect(other.query('SELECT seen_at > 0 AS seen FROM servers')).toEqual([{ seen: true }]);
      expect(other.query('SELECT active FROM tasks WHERE id = $1', ['j1-s0-t0'])).toEqual([{ active: 1 }]);
      other.query('UPDATE servers SET alive = false WHERE id = $1', ['s1']);
      let caught: unknown;
      try {
        s.transaction(() => { s.updateTask('j1-s0-t0', { active: 2 }); s.getTask('j1-s0-t0'); });
      } catch (err) { caught = err; }
      expect(caught).toBeInstanceOf(PgError);
      expect((caught as PgError).code).toBe('TG001');
      expect(() => s.updateTask('j1-s0-t1', { active: 2 })).toThrow(/lost its claims/);
      expect(() => s.volunteerFor('t', 'v', 1)).toThrow(/lost its claims/);
      expect(other.query('SELECT id, active FROM tasks ORDER BY id')).toEqual([{ id: 'j1-s0-t0', active: 1 }, { id: 'j1-s0-t1', active: 0 }]);
      // Reads still work (no transaction was left open), and a transaction that only reads is not fenced.
      expect(s.transaction(() => s.getTask('j1-s0-t0')!.active)).toBe(1);
      // Brought back to life, it writes again.
      other.query('UPDATE servers SET alive = true WHERE id = $1', ['s1']);
      s.updateTask('j1-s0-t1', { active: 3 });
      expect(s.getTask('j1-s0-t1')!.active).toBe(3);
    });
  });

  describe('round trips', () => {
    it('sends a transaction\'s writes in one round trip, and a read with the writes queued before it', () => {
      const s = track(new PgStore(migratedDb()));
      s.createJob(job('j1'), tasks('j1', range(100)));
      const before = s.db.roundTrips;
      s.transaction(() => {
        for (let b = 0; b < 100; b++) s.updateTask(`j1-s0-t${b}`, { active: 1, readyAt: b });
        s.setJobStatus('j1', 'running', 5);
        s.recordClassPair('a', 'b', true);
      });
      expect(s.db.roundTrips - before).toBe(1);
      expect(s.taskCounts('j1')).toMatchObject({ running: 100 });

      const mark = s.db.roundTrips;
      s.transaction(() => {
        s.updateTask('j1-s0-t0', { status: 'done' });
        s.updateTask('j1-s0-t1', { status: 'done' });
        // Read-your-writes: the read goes with the two updates.
        expect(s.taskCounts('j1')).toMatchObject({ done: 2 });
        expect(s.db.roundTrips - mark).toBe(1);
        s.updateTask('j1-s0-t2', { status: 'done' });
        // A nested unit and a savepoint that never had to go out cost nothing.
        s.transaction(() => s.updateTask('j1-s0-t3', { status: 'done' }));
        expect(() => s.transaction(() => { s.updateTask('j1-s0-t4', { status: 'done' }); throw new Error('undone'); })).toThrow('undone');
      });
      expect(s.db.roundTrips - mark).toBe(2);
      expect(s.taskCounts('j1')).toMatchObject({ done: 4 });
      expect(s.getTask('j1-s0-t4')!.status).toBe('pending');

      // Outside a transaction a write is one round trip of its own; a transaction with nothing in it costs none.
      const idle = s.db.roundTrips;
      s.updateTask('j1-s0-t5', { failures: 1 });
      s.transaction(() => {});
      expect(s.db.roundTrips - idle).toBe(1);
    });
    it('reads a view\'s counts of a job with one scan, and reads them again after a write', () => {
      const s = track(new PgStore(migratedDb()));
      s.createJob(job('c'), [...tasks('c', range(3)), ...tasks('c', [3], { canary: true, tainted: true, status: 'done' })]);
      const trips = s.db.roundTrips;
      expect(s.taskCounts('c')).toEqual({ total: 4, done: 1, failed: 0, pending: 3, running: 0 });
      expect(s.stageCounts('c')).toEqual([{ stage: 0, total: 4, done: 1, failed: 0, pending: 3, running: 0 }]);
      expect([s.canaryCount('c'), s.taintedCount('c')]).toEqual([1, 1]);
      expect(s.db.roundTrips - trips).toBe(1);
      s.updateTask('c-s0-t0', { status: 'failed' });
      expect(s.taskCounts('c')).toMatchObject({ failed: 1, pending: 2 });
      s.transaction(() => s.updateTask('c-s0-t1', { tainted: true }));
      expect(s.taintedCount('c')).toBe(2);
      // A view's counts, all at once, the replicas issued with them.
      expect(s.viewCounts('c', true)).toEqual({ stages: [{ stage: 0, total: 4, done: 1, failed: 1, pending: 2, running: 0 }], canaries: 1, tainted: 2, replicas: 0 });
    });
  });

  describe('savepoints and failures', () => {
    it('undoes a nested unit alone after its writes went out, and lets the outer one commit', () => {
      const s = track(new PgStore(migratedDb()));
      s.createJob(job('j1'), tasks('j1', [0, 1]));
      s.transaction(() => {
        s.updateTask('j1-s0-t0', { active: 1 });
        expect(() => s.transaction(() => {
          s.updateTask('j1-s0-t1', { active: 1 });
          s.setJobStatus('j1', 'completed', 9);
          expect(s.getJob('j1')!.status).toBe('completed'); // the savepoint went out with this read
          throw new Error('refused');
        })).toThrow('refused');
        expect(s.getTask('j1-s0-t1')!.active).toBe(0);
        s.updateTask('j1-s0-t0', { failures: 2 });
      });
      expect(s.getTask('j1-s0-t0')).toMatchObject({ active: 1, failures: 2 });
      expect(s.getTask('j1-s0-t1')!.active).toBe(0);
      expect(s.getJob('j1')!.status).toBe('running');
    });

    it('gives savepoints that are released or rolled back once, sent or not', () => {
      const s = track(new PgStore(migratedDb()));
      s.createJob(job('j1'), tasks('j1', [0, 1, 2]));
      s.transaction(() => {
        const kept = s.savepoint();
        s.updateTask('j1-s0-t0', { active: 1 });
        const dropped = s.savepoint();
        s.updateTask('j1-s0-t1', { active: 1 });
        expect(s.getTask('j1-s0-t1')!.active).toBe(1);
        dropped.rollback();
        dropped.rollback();
        const unsent = s.savepoint();
        s.updateTask('j1-s0-t2', { active: 1 });
        unsent.rollback();
        kept.release();
        expect(s.getTask('j1-s0-t1')!.active).toBe(0);
      });
      expect([0, 1, 2].map((b) => s.getTask(`j1-s0-t${b}`)!.active)).toEqual([1, 0, 0]);
      // Outside a transaction a savepoint opens one: rolled back, nothing stays; released, it commits.
      const a = s.savepoint();
      s.updateTask('j1-s0-t2', { active: 5 });
      a.rollback();
      expect(s.getTask('j1-s0-t2')!.active).toBe(0);
      const b = s.savepoint();
      s.updateTask('j1-s0-t2', { active: 6 });
      b.release();
      expect(s.getTask('j1-s0-t2')!.active).toBe(6);
    });

    it('sends each stretch from one savepoint to the next as one text, a failure in it reported past its savepoint', () => {
      const s = track(new PgStore(migratedDb()));
      const ins = (n: number) => ({ text: 'INSERT INTO t (a) VALUES ($1)', values: [n] });
      s.db.run([{ text: 'CREATE TABLE t (a integer PRIMARY KEY)' }]);
      const err = (() => {
        try {
          s.db.run([{ text: 'BEGIN' }, ins(1), ins(2), { text: 'SAVEPOINT a' }, ins(3), ins(1), ins(4)], undefined, [3, 4]);
        } catch (e) { return e as PgError; }
        return null;
      })();
      // Reported at the statement after the savepoint (one at a time would say 5, the duplicate): the savepoint was made.
      expect(err).toMatchObject({ code: '23505', index: 4 });
      s.db.run([{ text: 'ROLLBACK TO a' }, ins(5), { text: 'COMMIT' }], undefined, [3]);
      expect(s.db.query('SELECT a FROM t ORDER BY a')).toEqual([{ a: 1 }, { a: 2 }, { a: 5 }]);
    });

    it('undoes a refused nested unit after one whose writes went out with a read, and commits the rest', () => {
      const s = track(new PgStore(migratedDb()));
      const key = (id: string, hash: string) => ({ id, keyHash: hash, name: id, admin: false, createdAt: 1, revokedAt: null, weight: 1 });
      s.createJob(job('j1'), tasks('j1', range(4)));
      s.insertApiKey(key('k1', 'h1'));
      s.transaction(() => {
        s.updateTask('j1-s0-t0', { failures: 1 });
        s.transaction(() => {
          for (const b of [1, 2]) s.updateTask(`j1-s0-t${b}`, { failures: 1 });
          expect(s.getJob('j1')!.status).toBe('running'); // its savepoint and the writes so far go out with the read
        });
        expect(() => s.transaction(() => {
          s.updateTask('j1-s0-t3', { failures: 9 });
          s.insertApiKey(key('k9', 'h1')); // refused with the read, after the first unit's release and this one's savepoint
          s.countApiKeys();
        })).toThrow(expect.objectContaining({ code: '23505' }));
        s.updateTask('j1-s0-t3', { failures: 1 });
      });
      expect(range(4).map((b) => s.getTask(`j1-s0-t${b}`)!.failures)).toEqual([1, 1, 1, 1]);
      expect(s.listApiKeys().map((k) => k.id)).toEqual(['k1']);
    });

    it('undoes a nested unit whose statement the database refused; bad input never leaves a transaction open', () => {
      const url = migratedDb();
      const s = track(new PgStore(url));
      const other = track(new PgStore(url));
      const key = (id: string, hash: string) => ({ id, keyHash: hash, name: id, admin: false, createdAt: 1, revokedAt: null, weight: 1 });
      s.insertApiKey(key('k1', 'h1'));
      s.transaction(() => {
        s.insertApiKey(key('k2', 'h2'));
        expect(() => s.transaction(() => {
          s.insertApiKey(key('k9', 'h1')); // a duplicate hash: refused when it goes out, with the read
          s.countApiKeys();
        })).toThrow(expect.objectContaining({ code: '23505' }));
        s.insertApiKey(key('k3', 'h3'));
      });
      expect(s.listApiKeys().map((k) => k.id)).toEqual(['k1', 'k2', 'k3']);
      // A refused write queued in a transaction fails it at the commit, whole.
      expect(() => s.transaction(() => { s.insertApiKey(key('k4', 'h4')); s.insertApiKey(key('k5', 'h1')); })).toThrow(PgError);
      // Outside a transaction too; and a read that fails.
      expect(() => s.insertApiKey(key('k6', 'h1'))).toThrow(PgError);
      expect(() => s.transaction(() => { s.updateTask('t', { active: 1 }); s.getJob('x'); s.blobUsers(null as unknown as string[]); })).toThrow();
      expect(() => s.recoveryTasks('j', { from: 0, to: 1.5 })).toThrow(PgError);
      // Each failure rolled back: what this connection writes next is committed at once, as others see.
      s.insertApiKey(key('k7', 'h7'));
      expect(other.listApiKeys().map((k) => k.id)).toEqual(['k1', 'k2', 'k3', 'k7']);
      expect(s.db.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'`)).toEqual([{ n: 0 }]);
    });
  });

  describe('jobs', () => {
    it('creates a job\'s slices: one per SLICE_BATCHES batches present, done when none of its tasks is pending; they go with the job', () => {
      const s = track(new PgStore(migratedDb()));
      const batches = [0, 5, SLICE_BATCHES - 1, SLICE_BATCHES, SLICE_BATCHES + 3, 3 * SLICE_BATCHES + 1];
      const list = tasks('j1', batches).map((t) => (Math.floor(t.batch / SLICE_BATCHES) === 1 ? { ...t, status: 'done' as const } : t));
      // A second stage in slice 3, done: the slice stays open for its first-stage task.
      list.push({ ...list[list.length - 1]!, id: 'j1-s1-x', stage: 1, status: 'done' });
      s.createJob(job('j1'), list);
      s.createJob(job('j2'), []);
      const slices = () => s.db.query('SELECT job_id, slice, server_id, done FROM slices ORDER BY job_id, slice');
      expect(slices()).toEqual([
        { job_id: 'j1', slice: 0, server_id: null, done: false },
        { job_id: 'j1', slice: 1, server_id: null, done: true },
        { job_id: 'j1', slice: 3, server_id: null, done: false },
      ]);
      expect(s.deleteJob('j1')).toBe(true);
      expect(slices()).toEqual([]);
    });

    it('creates a 20,000-task job, in chunks, with every task and slice', () => {
      const s = track(new PgStore(migratedDb()));
      const n = 20_000;
      const before = s.db.roundTrips;
      s.createJob(job('big', { items: n }), tasks('big', range(n)));
      expect(s.db.roundTrips - before).toBe(1);
      expect(s.taskCounts('big')).toEqual({ total: n, done: 0, failed: 0, pending: n, running: 0 });
      expect(s.getTask(`big-s0-t${n - 1}`)).toMatchObject({ batch: n - 1, itemStart: n - 1, ready: true, readyAt: 0, error: null });
      expect(s.recoveryTasks('big', { from: SLICE_BATCHES, to: 2 * SLICE_BATCHES }).map((t) => t.batch)).toEqual(range(SLICE_BATCHES).map((b) => b + SLICE_BATCHES));
      expect(s.db.query('SELECT COUNT(*) AS n FROM slices WHERE NOT done')).toEqual([{ n: Math.ceil(n / SLICE_BATCHES) }]);
    });

    it('creates a job on a connection of its own: the main one is free meanwhile, and the job is there once it resolves', async () => {
      const url = migratedDb();
      const s = track(new PgStore(url));
      const before = s.db.roundTrips;
      const creating = s.createJobAsync(job('bg', { items: 4 }), tasks('bg', range(4)));
      expect(s.db.roundTrips).toBe(before);
      await creating;
      expect(track(new PgStore(url)).taskCounts('bg')).toMatchObject({ total: 4, pending: 4 });
      await expect(s.createJobAsync(job('bg'), tasks('bg', [0]))).rejects.toMatchObject({ code: '23505' });
    });

    it('fences a job\'s creation at its end: the server\'s other commits do not wait for a large job, and a dead server\'s fails', async () => {
      const url = migratedDb();
      const other = track(new PgSync(url));
      other.query('INSERT INTO servers (id, started_at, seen_at) VALUES ($1, 0, 0)', ['s1']);
      const s = track(new PgStore(url, { fence: 's1' }));
      s.createJob(job('j1'), tasks('j1', [0]));
      await s.createJobAsync(job('warm'), tasks('warm', [0])); // the job connection is open
      const big = 60_000;
      const creating = s.createJobAsync(job('big', { items: big }), tasks('big', range(big)));
      const inserting = () => other.query<{ n: number }>(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'INSERT INTO tasks%'`)[0]!.n;
      for (const until = Date.now() + 10_000; inserting() === 0 && Date.now() < until;) await new Promise((r) => setTimeout(r, 2));
      // A commit of this server meanwhile: it lands while the big job's rows are still going in.
      s.transaction(() => s.updateTask('j1-s0-t0', { failures: 1 }));
      expect(other.query('SELECT count(*)::int AS n FROM jobs WHERE id = $1', ['big'])).toEqual([{ n: 0 }]);
      await creating;
      expect(other.query('SELECT count(*)::int AS n FROM tasks WHERE job_id = $1', ['big'])).toEqual([{ n: big }]);
      other.query('UPDATE servers SET alive = false WHERE id = $1', ['s1']);
      await expect(s.createJobAsync(job('late'), tasks('late', [0]))).rejects.toMatchObject({ code: 'TG001' });
      expect(other.query('SELECT count(*)::int AS n FROM jobs WHERE id = $1', ['late'])).toEqual([{ n: 0 }]);
    });
  });

  describe('commits not waited for', () => {
    it('are told durable later, seen by reads made meanwhile, and a failed one leaves no transaction open behind it', async () => {
      const url = migratedDb();
      const s = track(new PgStore(url));
      const other = track(new PgStore(url));
      const key = (id: string, hash: string) => ({ id, keyHash: hash, name: id, admin: false, createdAt: 1, revokedAt: null, weight: 1 });
      const told: (string | null)[] = [];
      s.transactionThen(() => s.insertApiKey(key('k1', 'h1')), (err) => told.push(err ? err.message : null));
      expect(told).toEqual([]);
      // A read on the same connection runs after the commit.
      expect(s.listApiKeys().map((k) => k.id)).toEqual(['k1']);
      await new Promise((r) => setImmediate(r));
      expect(told).toEqual([null]);
      s.transactionThen(() => { s.insertApiKey(key('k2', 'h2')); s.insertApiKey(key('k3', 'h1')); }, (err) => told.push(err ? 'failed' : null));
      // The next transaction waits for the outcome, and runs on a connection with no transaction left open.
      s.transaction(() => s.insertApiKey(key('k4', 'h4')));
      expect(told).toEqual([null, 'failed']);
      expect(other.listApiKeys().map((k) => k.id)).toEqual(['k1', 'k4']);
      expect(s.db.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE state LIKE 'idle in transaction%'`)).toEqual([{ n: 0 }]);
    });

    it('write runs of the same statement as one, with what one at a time would leave (a row met twice, counters added)', () => {
      for (const waited of [false, true]) {
        const s = track(new PgStore(migratedDb()));
        s.createJob(job('m'), tasks('m', range(4)));
        const v = s.volunteerFor('token', 'vol-1', 1).id;
        const before = s.getVolunteer(v)!;
        const writes = () => {
          for (const b of range(4)) s.updateTask(`m-s0-t${b}`, { status: 'done', doneAt: 10 + b });
          s.updateTask('m-s0-t0', { status: 'failed', doneAt: 99 });
          s.addToVolunteer(v, { valid: 1, credit: 0.5 });
          s.addToVolunteer(v, { valid: 2, credit: 0.25 });
          for (const b of range(3)) {
            s.insertReplica({
              id: `r${b}`, taskId: `m-s0-t${b}`, jobId: 'm', workerId: 'w', volunteerId: v, status: 'returned', workerClass: '-', single: false,
              site: null, leasedAt: 1, leaseExpires: 2, backend: 'cpu', runMs: 1, error: null, returnedAt: 2, origin: null,
            });
          }
          s.setReplicaOutputs('r0', new Uint8Array([1]));
          s.setReplicaOutputs('r1', new Uint8Array([2]));
          s.setReplicaOutputs('r0', new Uint8Array([3]));
          for (const b of range(3)) s.setTaskResultOf(`m-s0-t${b}`, `r${b}`);
        };
        const told: (string | null)[] = [];
        const trips = s.db.roundTrips;
        if (waited) s.transaction(writes);
        else s.transactionThen(writes, (err) => told.push(err ? err.message : null));
        s.settle();
        expect(told).toEqual(waited ? [] : [null]);
        expect(s.db.roundTrips - trips).toBe(1);
        expect(s.getTask('m-s0-t0')).toMatchObject({ status: 'failed', doneAt: 99 });
        expect(s.getTask('m-s0-t3')).toMatchObject({ status: 'done', doneAt: 13 });
        expect(s.getVolunteer(v)).toMatchObject({ valid: before.valid + 3, credit: before.credit + 0.75 });
        expect([...s.replicaOutputs('r0')!, ...s.replicaOutputs('r1')!]).toEqual([3, 2]);
        expect([...s.taskResult('m-s0-t0')!, ...s.taskResult('m-s0-t1')!]).toEqual([3, 2]);
        expect(s.getReplica('r2')).toMatchObject({ taskId: 'm-s0-t2', status: 'returned' });
      }
    });

    it('write a turn of results one after another as a statement per table, with what one at a time would leave', () => {
      const s = track(new PgStore(migratedDb()));
      s.createJob(job('n'), tasks('n', range(4)));
      const v = s.volunteerFor('token', 'vol-1', 1).id;
      const w = s.volunteerFor('token-2', 'vol-2', 1).id;
      const before = [s.getVolunteer(v)!, s.getVolunteer(w)!];
      const replica = (id: string, b: number, volunteerId: string) => s.insertReplica({
        id, taskId: `n-s0-t${b}`, jobId: 'n', workerId: 'w', volunteerId, status: 'returned', workerClass: '-', single: false,
        site: null, leasedAt: 1, leaseExpires: 2, backend: 'cpu', runMs: 1, error: null, returnedAt: 2, origin: null,
      });
      s.transaction(() => {
        for (const b of range(4)) {
          replica(`q${b}`, b, b % 2 ? w : v);
          s.setReplicaOutputs(`q${b}`, new Uint8Array([b]));
          s.updateTask(`n-s0-t${b}`, { status: 'done', doneAt: 20 + b });
          s.setTaskResultOf(`n-s0-t${b}`, `q${b}`);
          s.addToVolunteer(b % 2 ? w : v, { valid: 1, credit: 1 });
          // A write of another shape to a table already written: what comes after it stays after it.
          if (b === 1) { s.updateReplica('q0', { status: 'invalid', error: 'disagreed' }); s.updateTask('n-s0-t0', { status: 'pending', doneAt: null }); }
        }
        s.updateReplica('q0', { status: 'returned', error: null });
      });
      expect(s.getTask('n-s0-t0')).toMatchObject({ status: 'pending', doneAt: null });
      expect(s.getTask('n-s0-t3')).toMatchObject({ status: 'done', doneAt: 23 });
      expect(s.getReplica('q0')).toMatchObject({ status: 'returned', error: null });
      expect(range(4).map((b) => [...s.replicaOutputs(`q${b}`)!][0])).toEqual([0, 1, 2, 3]);
      expect(range(4).map((b) => [...s.taskResult(`n-s0-t${b}`)!][0])).toEqual([0, 1, 2, 3]);
      expect(s.getVolunteer(v)).toMatchObject({ valid: before[0]!.valid + 2, credit: before[0]!.credit + 2 });
      expect(s.getVolunteer(w)).toMatchObject({ valid: before[1]!.valid + 2, credit: before[1]!.credit + 2 });
    });

    it('tell at settle an outcome met while another call was waited for', () => {
      const s = track(new PgStore(migratedDb()));
      const told: string[] = [];
      s.transactionThen(() => s.insertApiKey({ id: 'k', keyHash: 'h', name: 'k', admin: false, createdAt: 1, revokedAt: null, weight: 1 }), () => told.push('committed'));
      expect(s.countApiKeys()).toBe(1); // its answer came first, and waits to be told on a later turn
      expect(told).toEqual([]);
      s.settle();
      expect(told).toEqual(['committed']);
    });
  });
});
