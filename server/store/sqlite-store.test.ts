import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from './sqlite-store.js';
import { storeContract } from './store-contract.js';

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
