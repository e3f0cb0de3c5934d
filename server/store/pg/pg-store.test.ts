import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { havePostgres } from '../../../test/helpers/pg-cluster.js';
import { pgTestDbs, range, testJob, testTasks } from '../../../test/helpers/pg-test-dbs.js';
import { storeContract } from '../store-contract.js';
import { SLICE_BATCHES, type Store } from '../store.js';
import { MIGRATIONS, migrate } from './pg-schema.js';
import { PgClaims } from './pg-claims.js';
import { PgStore } from './pg-store.js';
import { PgError, PgSync } from './pg-sync.js';

const here = path.dirname(fileURLToPath(import.meta.url));

if (!havePostgres()) console.warn('PostgreSQL 15 is not installed (/usr/lib/postgresql/15/bin): the PostgreSQL store tests are skipped');

describe.skipIf(!havePostgres())('PostgreSQL store', () => {
  const { freshDb, migratedDb, track } = pgTestDbs();
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

  const job = testJob;
  const tasks = testTasks;

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

});
