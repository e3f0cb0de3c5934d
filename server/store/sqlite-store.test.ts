import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from './sqlite-store.js';
import { SCHEMA } from './sqlite-schema.js';
import { storeContract } from './store-contract.js';
import type { JobRow } from './store.js';

storeContract('SQLite in memory', () => new SqliteStore(':memory:'));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-store-'));
let n = 0;
const files = new Map<SqliteStore, string>();
storeContract('SQLite file (WAL)', () => {
  const file = path.join(dir, `s${++n}.sqlite`);
  const s = new SqliteStore(file);
  files.set(s, file);
  return s;
}, (s) => {
  const file = files.get(s as SqliteStore)!;
  s.close();
  return new SqliteStore(file);
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

describe('SQLite schema upgrade', () => {
  it('moves a schema-1 database\'s tensors into their own tables and keeps every row', () => {
    const file = path.join(dir, 'v1.sqlite');
    const old = new Database(file);
    old.exec(fs.readFileSync(new URL('./schema-v1.test.sql', import.meta.url), 'utf8'));
    old.pragma('user_version = 1');
    old.prepare(`INSERT INTO jobs (id, owner, model, stage_models, inputs, items, batch_size, replicas, max_replicas, rtol, atol, priority,
      adaptive, canary_rate, status, created_at) VALUES ('j1', 'k', 'm', '["m"]', '[]', 2, 1, 1, 3, 0.001, 0.0001, 0, 0, 0, 'running', 1)`).run();
    old.prepare(`INSERT INTO tasks (id, job_id, stage, model, batch, item_start, item_end, status, canary, ready, wanted, result)
      VALUES ('j1-s0-t0', 'j1', 0, 'm', 0, 0, 1, 'done', 0, 1, 1, x'0102')`).run();
    old.prepare(`INSERT INTO replicas (id, task_id, job_id, worker_id, volunteer_id, status, worker_class, single, leased_at, lease_expires, outputs)
      VALUES ('r1', 'j1-s0-t0', 'j1', 'w', 'v', 'returned', '-', 0, 1, 2, x'0304')`).run();
    old.close();

    const s = new SqliteStore(file);
    expect(Array.from(s.taskResult('j1-s0-t0')!)).toEqual([1, 2]);
    expect(Array.from(s.replicaOutputs('r1')!)).toEqual([3, 4]);
    expect([...s.taskResults('j1', 0)].map((r) => Array.from(r.result))).toEqual([[1, 2]]);
    expect(s.getReplica('r1')).toMatchObject({ status: 'returned', taskId: 'j1-s0-t0' });
    s.close();
    // Opened again: already upgraded, nothing to do.
    const again = new SqliteStore(file);
    expect(Array.from(again.taskResult('j1-s0-t0')!)).toEqual([1, 2]);
    again.close();
  });
});

describe('SQLite schema 5 and disk space', () => {
  it('upgrades a schema-4 database: jobs keep their rows and may keep replica outputs, and the file gets incremental vacuum', () => {
    const file = path.join(dir, 'v4.sqlite');
    // A schema-4 database as TabGrid 4 left it: today's tables without schema 5's columns, auto_vacuum off.
    const old = new Database(file);
    old.pragma('journal_mode = WAL');
    old.exec(SCHEMA);
    for (const [table, col] of [['jobs', 'keep_replica_outputs'], ['jobs', 'outputs_pruned'], ['models', 'unused_since'], ['datasets', 'unused_since']]) {
      old.exec(`ALTER TABLE ${table} DROP COLUMN ${col}`);
    }
    old.pragma('user_version = 4');
    old.prepare(`INSERT INTO jobs (id, owner, model, stage_models, inputs, items, batch_size, replicas, max_replicas, rtol, atol, priority,
      adaptive, canary_rate, status, created_at, finished_at) VALUES ('j1', 'k', 'm', '["m"]', '[]', 2, 1, 1, 3, 0.001, 0.0001, 0, 0, 0, 'completed', 1, 5)`).run();
    old.prepare(`INSERT INTO models (hash, size, inputs, outputs, opsets, weight_bytes, largest_weight, created_at)
      VALUES ('m', 1, '[]', '[]', '{}', 0, 0, 1)`).run();
    expect(old.pragma('auto_vacuum', { simple: true })).toBe(0);
    old.close();

    const s = new SqliteStore(file);
    expect(s.getJob('j1')).toMatchObject({ status: 'completed', finishedAt: 5, keepReplicaOutputs: false });
    // A job that ended before the upgrade has its outputs dropped on the first sweep.
    expect(s.jobsToPrune()).toEqual(['j1']);
    expect(s.blobUsers(['m']).get('m')).toBe(1);
    s.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('user_version', { simple: true })).toBe(5);
    expect(db.pragma('auto_vacuum', { simple: true })).toBe(2);
    db.close();
  });

  it('gives a deleted job\'s pages back: the file shrinks to about what it held before the job', () => {
    const file = path.join(dir, 'shrink.sqlite');
    const size = () => fs.statSync(file).size + (fs.statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);
    const s = new SqliteStore(file);
    const job = (id: string): JobRow => ({
      id, owner: 'k', name: null, model: 'm', stageModels: ['m'], inputs: [], items: 400, batchSize: 1, replicas: 2, maxReplicas: 3,
      rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'completed', error: null, createdAt: 1, finishedAt: 2,
    });
    const fill = (id: string, tasks: number) => {
      s.createJob(job(id), Array.from({ length: tasks }, (_, b) => ({
        id: `${id}-t${b}`, jobId: id, stage: 0, model: 'm', batch: b, itemStart: b, itemEnd: b + 1, status: 'done' as const, canary: false,
        ready: true, readyAt: 0, wanted: 2, active: 0, failures: 0, error: null, doneAt: 2, tainted: false,
      })));
      s.transaction(() => {
        for (let b = 0; b < tasks; b++) {
          for (const k of [0, 1]) {
            const r = `${id}-r${b}-${k}`;
            s.insertReplica({
              id: r, taskId: `${id}-t${b}`, jobId: id, workerId: 'w', volunteerId: `v${k}`, status: 'returned', workerClass: '-', single: false, site: null,
              leasedAt: 1, leaseExpires: 2, backend: 'cpu', runMs: 1, error: null, returnedAt: 2, origin: null,
            });
            s.setReplicaOutputs(r, new Uint8Array(64 * 1024).fill(b & 0xff));
          }
          s.setTaskResultOf(`${id}-t${b}`, `${id}-r${b}-0`);
        }
      });
    };
    fill('small', 10);
    s.compact();
    const before = size();
    fill('big', 400);
    s.compact();
    const full = size();
    expect(full - before).toBeGreaterThan(400 * 2 * 64 * 1024);
    expect(s.deleteJob('big')).toBe(true);
    s.compact();
    const after = size();
    // Reported in the retention notes: bytes before the big job, with it, and after its delete.
    console.log(`sqlite file + wal: ${before} bytes before, ${full} with a 400-task job (2 x 64 KiB outputs a task), ${after} after deleting it`);
    expect(after).toBeLessThan(before + 256 * 1024);
    s.close();
  });
});
