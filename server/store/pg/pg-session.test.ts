/**
 * The PostgreSQL store's connection at work (pg-session.ts, pg-sync.ts, pg-coalesce.ts): a transaction's writes in as
 * few round trips and statements as can be, reads with the writes before them, savepoints undone alone, commits not
 * waited for, and what each leaves in the database, against a real PostgreSQL.
 */
import { describe, expect, it } from 'vitest';
import { havePostgres } from '../../../test/helpers/pg-cluster.js';
import { pgTestDbs, range, testJob, testTasks } from '../../../test/helpers/pg-test-dbs.js';
import { PgStore } from './pg-store.js';
import { PgError } from './pg-sync.js';

describe.skipIf(!havePostgres())('PostgreSQL store connection', () => {
  const { migratedDb, track } = pgTestDbs();
  const job = testJob;
  const tasks = testTasks;

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
    it('reads a view\'s counts of a job in one round trip, and each count exactly, a write seen after it', () => {
      const s = track(new PgStore(migratedDb()));
      s.createJob(job('c'), [...tasks('c', range(3)), ...tasks('c', [3], { canary: true, tainted: true, status: 'done' })]);
      expect(s.taskCounts('c')).toEqual({ total: 4, done: 1, failed: 0, pending: 3, running: 0 });
      expect(s.stageCounts('c')).toEqual([{ stage: 0, total: 4, done: 1, failed: 0, pending: 3, running: 0 }]);
      expect([s.canaryCount('c'), s.taintedCount('c')]).toEqual([1, 1]);
      s.updateTask('c-s0-t0', { status: 'failed' });
      expect(s.taskCounts('c')).toMatchObject({ failed: 1, pending: 2 });
      s.transaction(() => s.updateTask('c-s0-t1', { tainted: true }));
      expect(s.taintedCount('c')).toBe(2);
      // A view's counts, all at once, the replicas issued with them.
      const trips = s.db.roundTrips;
      expect(s.viewCounts('c', true)).toEqual({ stages: [{ stage: 0, total: 4, done: 1, failed: 1, pending: 2, running: 0 }], canaries: 1, tainted: 2, replicas: 0 });
      expect(s.db.roundTrips - trips).toBe(1);
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
