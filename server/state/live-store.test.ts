import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite-store.js';
import { storeContract } from '../store/store-contract.js';
import type { JobRow, ReplicaRow, TaskRow } from '../store/store.js';
import { LiveStore } from './live-store.js';

storeContract('live state over SQLite', () => new LiveStore(new SqliteStore(':memory:')));

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-live-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

const job = (id: string, over: Partial<JobRow> = {}): JobRow => ({
  id, owner: 'k', name: null, model: 'm'.repeat(64), stageModels: ['m'.repeat(64)], inputs: [], items: 8, batchSize: 2, replicas: 2, maxReplicas: 3,
  rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null, ...over,
});
const tasks = (jobId: string, count: number): TaskRow[] => Array.from({ length: count }, (_, b) => ({
  id: `${jobId}-t${b}`, jobId, stage: 0, model: 'm'.repeat(64), batch: b, itemStart: 2 * b, itemEnd: 2 * b + 2, status: 'pending', canary: false,
  ready: true, readyAt: 0, wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
}));
const lease = (id: string, taskId: string, volunteerId: string, over: Partial<ReplicaRow> = {}): ReplicaRow => ({
  id, taskId, jobId: taskId.split('-t')[0]!, workerId: `w-${volunteerId}`, volunteerId, status: 'leased', workerClass: '-|-', single: false, site: null,
  leasedAt: 1, leaseExpires: 100, backend: null, runMs: null, error: null, returnedAt: null, origin: '10.0.0.1', ...over,
});

function open(): { file: string; live: LiveStore } {
  const file = path.join(dir, `s${++n}.sqlite`);
  return { file, live: new LiveStore(new SqliteStore(file)) };
}

describe('LiveStore', () => {
  it('keeps leases in memory only, and writes a replica when it comes back', () => {
    const { file, live } = open();
    live.createJob(job('j'), tasks('j', 2));
    live.transaction(() => {
      live.insertReplica(lease('r1', 'j-t0', 'v1'));
      live.updateTask('j-t0', { active: 1 });
    });
    const disk = new SqliteStore(file);
    expect(disk.getReplica('r1')).toBeUndefined();
    expect(live.leasedByWorker('w-v1').map((r) => r.id)).toEqual(['r1']);
    live.transaction(() => {
      live.setReplicaOutputs('r1', new Uint8Array([7]));
      live.updateReplica('r1', { status: 'returned', runMs: 2, returnedAt: 5 });
    });
    expect(disk.getReplica('r1')).toMatchObject({ status: 'returned', runMs: 2 });
    expect(Array.from(disk.replicaOutputs('r1')!)).toEqual([7]);
    disk.close();
    live.close();
  });

  it('is rebuilt from the store on start: leases gone, what came back counted, who ran what remembered', () => {
    const { file, live } = open();
    live.createJob(job('j'), tasks('j', 3));
    live.transaction(() => {
      live.insertReplica(lease('r1', 'j-t0', 'v1'));
      live.insertReplica(lease('r2', 'j-t0', 'v2'));
      live.updateTask('j-t0', { active: 2 });
      live.updateReplica('r1', { status: 'returned', returnedAt: 3 });
      live.insertReplica(lease('r3', 'j-t1', 'v1'));
      live.updateTask('j-t1', { active: 1 });
    });
    live.close();
    const again = new LiveStore(new SqliteStore(file));
    expect(again.allLeased()).toEqual([]);
    // t0 has one replica back and wants another; t1's lease lapsed with the restart.
    expect(again.getTask('j-t0')).toMatchObject({ active: 1, wanted: 2 });
    expect(again.getTask('j-t1')).toMatchObject({ active: 0 });
    expect(again.openTasksWithReplicas().map((t) => t.id)).toEqual(['j-t0']);
    // v1 returned t0 before the restart, so it is not offered t0 again; v2 (whose lease lapsed) is.
    expect(again.assignableTasks('v1', 10).map((t) => t.id)).toEqual(['j-t1', 'j-t2']);
    expect(again.assignableTasks('v2', 10).map((t) => t.id)).toEqual(['j-t0', 'j-t1', 'j-t2']);
    again.close();
  });

  it('undoes a failed unit in memory as the store undoes its savepoint', () => {
    const { live } = open();
    live.createJob(job('j'), tasks('j', 2));
    live.transaction(() => {
      expect(() => live.transaction(() => {
        live.insertReplica(lease('r1', 'j-t0', 'v1'));
        live.updateTask('j-t0', { active: 2 });
        throw new Error('refused');
      })).toThrow('refused');
    });
    expect(live.allLeased()).toEqual([]);
    expect(live.assignableTasks('v1', 10).map((t) => t.id)).toEqual(['j-t0', 'j-t1']);
    expect(live.taskCounts('j')).toEqual({ total: 2, done: 0, failed: 0, pending: 2, running: 0 });
    live.close();
  });

  it('puts a task that wants a replica again ahead of the rest of its job', () => {
    const { live } = open();
    live.createJob(job('j', { replicas: 1 }), tasks('j', 4).map((t) => ({ ...t, wanted: 1 })));
    const first = live.assignableTasks('v1', 2).map((t) => t.id);
    expect(first).toEqual(['j-t0', 'j-t1']);
    for (const id of first) live.updateTask(id, { active: 1 });
    expect(live.assignableTasks('v2', 1).map((t) => t.id)).toEqual(['j-t2']);
    live.updateTask('j-t0', { active: 0 }); // its lease lapsed
    expect(live.assignableTasks('v2', 2).map((t) => t.id)).toEqual(['j-t0', 'j-t2']);
    live.close();
  });

  it('lets a settled task\'s replicas go, and brings them back when the task is opened again', () => {
    const { live } = open();
    live.createJob(job('j'), tasks('j', 1));
    live.transaction(() => {
      live.insertReplica(lease('r1', 'j-t0', 'v1', { status: 'returned' }));
      live.insertReplica(lease('r2', 'j-t0', 'v2', { status: 'returned' }));
      live.updateTask('j-t0', { active: 2, status: 'done' });
    });
    expect(live.getReplica('r1')).toMatchObject({ status: 'returned' });
    live.transaction(() => live.updateTask('j-t0', { status: 'pending', active: 0, wanted: 3 }));
    // Reopened (an audit refuted it): the volunteers who ran it still may not run it again.
    expect(live.assignableTasks('v1', 1)).toEqual([]);
    expect(live.assignableTasks('v3', 1).map((t) => t.id)).toEqual(['j-t0']);
    live.close();
  });

  it('answers a known-answer task\'s result from memory once set and committed, and forgets one rolled back', () => {
    const inner = new SqliteStore(':memory:');
    let reads = 0;
    const taskResult = inner.taskResult.bind(inner);
    inner.taskResult = (id) => { reads++; return taskResult(id); };
    const live = new LiveStore(inner);
    live.createJob(job('j', { replicas: 1 }), tasks('j', 3).map((t) => ({ ...t, wanted: 1, canary: true })));
    live.transaction(() => {
      live.insertReplica(lease('r1', 'j-t0', 'v1', { status: 'returned' }));
      live.setReplicaOutputs('r1', new Uint8Array([1, 2]));
      live.setTaskResultOf('j-t0', 'r1');
      live.setTaskResult('j-t1', new Uint8Array([3]));
      live.updateTask('j-t0', { active: 1, status: 'done' });
      live.updateTask('j-t1', { status: 'done' });
    });
    expect(() => live.transaction(() => {
      live.setTaskResult('j-t2', new Uint8Array([9]));
      live.updateTask('j-t2', { status: 'done' });
      throw new Error('refused');
    })).toThrow('refused');
    expect(Array.from(live.taskResult('j-t0')!)).toEqual([1, 2]);
    expect(Array.from(live.taskResult('j-t1')!)).toEqual([3]);
    expect(reads).toBe(0);
    expect(live.taskResult('j-t2')).toBeUndefined();
    expect(reads).toBe(1);
    // A result cleared (the task reopened) is not answered from memory any more.
    live.transaction(() => { live.clearTaskResult('j-t1'); live.updateTask('j-t1', { status: 'pending' }); });
    expect(live.taskResult('j-t1')).toBeUndefined();
    live.close();
  });
});
