import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { LiveStore } from './live-store.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-units-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

const job: JobRow = {
  id: 'j', owner: 'k', name: null, model: 'm'.repeat(64), stageModels: ['m'.repeat(64)], inputs: [], items: 6, batchSize: 2, replicas: 1, maxReplicas: 3,
  rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null,
};
const tasks: TaskRow[] = [0, 1, 2].map((b) => ({
  id: `j-t${b}`, jobId: 'j', stage: 0, model: 'm'.repeat(64), batch: b, itemStart: 2 * b, itemEnd: 2 * b + 2, status: 'pending', canary: false,
  ready: true, readyAt: 0, wanted: 1, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
}));

function setup() {
  const file = path.join(dir, `u${++n}.sqlite`);
  const live = new LiveStore(new SqliteStore(file));
  live.createJob(job, tasks);
  // What another reader of the file sees (no caches).
  const db = new Database(file, { readonly: true });
  const disk = {
    getTask: (id: string) => db.prepare('SELECT failures FROM tasks WHERE id = ?').get(id) as { failures: number },
    getJob: (id: string) => db.prepare('SELECT status FROM jobs WHERE id = ?').get(id) as { status: string },
    taskResult: (id: string) => (db.prepare('SELECT data FROM task_results WHERE task_id = ?').get(id) as { data: Buffer } | undefined)?.data,
  };
  return { live, disk };
}

describe('units of work over memory and the store', () => {
  it('writes nothing until the outermost transaction ends, then all of it', () => {
    const { live, disk } = setup();
    live.transaction(() => {
      live.transaction(() => live.updateTask('j-t0', { failures: 1 }));
      live.setTaskResult('j-t1', new Uint8Array([5]));
      expect(disk.getTask('j-t0')!.failures).toBe(0);
      expect(disk.taskResult('j-t1')).toBeUndefined();
    });
    expect(disk.getTask('j-t0')!.failures).toBe(1);
    expect(Array.from(disk.taskResult('j-t1')!)).toEqual([5]);
  });

  it('keeps the writes of the units around one that reached the store and then failed', () => {
    const { live, disk } = setup();
    live.transaction(() => {
      // The parent's changes, still pending when the child begins.
      live.updateTask('j-t0', { failures: 2 });
      live.setTaskResult('j-t2', new Uint8Array([7]));
      expect(() => live.transaction(() => {
        live.updateTask('j-t1', { failures: 9 });
        // A read the memory cannot answer: everything pending is written, under savepoints.
        expect(live.taskResult('j-t2')).toEqual(new Uint8Array([7]));
        live.setTaskResult('j-t1', new Uint8Array([1]));
        throw new Error('refused');
      })).toThrow('refused');
      expect(live.getTask('j-t1')!.failures).toBe(0);
    });
    // The child's work is gone from memory and store alike; the parent's, written under the child's savepoint
    // and rolled back with it, was written again.
    expect(disk.getTask('j-t0')!.failures).toBe(2);
    expect(disk.getTask('j-t1')!.failures).toBe(0);
    expect(Array.from(disk.taskResult('j-t2')!)).toEqual([7]);
    expect(disk.taskResult('j-t1')).toBeUndefined();
  });

  it('undoes everything when the outermost transaction fails', () => {
    const { live, disk } = setup();
    expect(() => live.transaction(() => {
      live.updateTask('j-t0', { status: 'done' });
      live.setJobStatus('j', 'completed', 5);
      throw new Error('disk full');
    })).toThrow('disk full');
    expect(live.getTask('j-t0')!.status).toBe('pending');
    expect(live.getJob('j')!.status).toBe('running');
    expect(live.assignableTasks('v', 5).map((t) => t.id)).toEqual(['j-t0', 'j-t1', 'j-t2']);
    expect(disk.getJob('j')!.status).toBe('running');
  });

  /** An engine whose commit is learned later: it runs now, its outcome is told on a later turn or at settle(). */
  function laterEngine() {
    const file = path.join(dir, `u${++n}.sqlite`);
    const sqlite = new SqliteStore(file);
    const state = { fail: false };
    const told: [(err: Error | null) => void, Error | null][] = [];
    const settle = () => { for (const [done, err] of told.splice(0)) done(err); };
    const engine = Object.assign(Object.create(sqlite) as SqliteStore, {
      transactionThen<T>(fn: () => T, done: (err: Error | null) => void): T {
        let out!: T;
        let err: Error | null = null;
        try {
          sqlite.transaction(() => { out = fn(); if (state.fail) throw new Error('the commit failed'); });
        } catch (e) { err = e as Error; }
        told.push([done, err]);
        setImmediate(settle);
        return out;
      },
      settle,
    });
    const live = new LiveStore(engine);
    live.createJob(job, tasks);
    const db = new Database(file, { readonly: true });
    const column = (col: string, id: string) => (db.prepare(`SELECT ${col} AS v FROM tasks WHERE id = ?`).get(id) as { v: number }).v;
    return { live, state, db, failures: (id: string) => column('failures', id) };
  }

  it('lets a commit not waited for stand once durable, undoes it in memory when it fails, and begins nothing before', async () => {
    const { live, state, db, failures } = laterEngine();
    const outcomes: (string | null)[] = [];

    state.fail = true;
    live.transactionThen(() => live.updateTask('j-t0', { failures: 1 }), (err) => outcomes.push(err?.message ?? null));
    expect(live.getTask('j-t0')!.failures).toBe(1); // memory has it while the commit is in flight
    state.fail = false;
    // The next transaction begins only once the one in flight is known: failed, so memory was undone first.
    const seen = live.transaction(() => live.getTask('j-t0')!.failures);
    expect(outcomes).toEqual(['the commit failed']);
    expect(seen).toBe(0);
    expect(failures('j-t0')).toBe(0);

    live.transactionThen(() => live.updateTask('j-t1', { failures: 2 }), (err) => outcomes.push(err?.message ?? null));
    await new Promise((r) => setImmediate(r));
    expect(outcomes).toEqual(['the commit failed', null]);
    expect(live.getTask('j-t1')!.failures).toBe(2);
    expect(failures('j-t1')).toBe(2);
    db.close();
  });

  it('writes a change made outside a transaction to a task whose settling commit lands meanwhile', () => {
    const { live, db, failures } = laterEngine();
    live.transactionThen(() => live.updateTask('j-t2', { status: 'done' }), () => {});
    // Outside a transaction: the commit in flight lands first (the settled task would leave memory), then this is written.
    live.updateTask('j-t2', { failures: 3 });
    expect(failures('j-t2')).toBe(3);
    db.close();
  });
});
