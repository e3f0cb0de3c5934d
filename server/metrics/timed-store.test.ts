/**
 * Store writes are timed by operation; reads and transactions pass through untimed, with `this` still the store.
 */
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../store/sqlite-store.js';
import { isWrite, timedWrites } from './timed-store.js';

describe('timedWrites', () => {
  it('times each write and nothing else', () => {
    const heard: [string, number][] = [];
    let t = 0;
    const store = timedWrites(new SqliteStore(':memory:'), (op, s) => heard.push([op, s]), () => (t += 3));
    store.transaction(() => {
      store.putModel({ hash: 'c'.repeat(64), size: 1, inputs: [], outputs: [], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0 });
    });
    expect(store.getModel('c'.repeat(64))?.size).toBe(1);
    expect(store.countApiKeys()).toBe(0);
    expect(heard).toEqual([['putModel', 0.003]]);
    // The same function each time: a hot path pays for one map lookup, not a new closure.
    expect(store.getModel).toBe(store.getModel);
    store.close();
  });

  it('reports a write that throws, and lets the error through', () => {
    const heard: string[] = [];
    const store = timedWrites(new SqliteStore(':memory:'), (op) => heard.push(op));
    store.close();
    expect(() => store.updateTask('t', { status: 'done' })).toThrow();
    expect(heard).toEqual(['updateTask']);
  });

  it('tells writes from reads by name', () => {
    for (const w of ['insertReplica', 'updateTask', 'setTaskResult', 'createJob', 'recordClassPair', 'creditSite', 'revokeApiKey', 'volunteerFor', 'deleteJob']) {
      expect(isWrite(w), w).toBe(true);
    }
    for (const r of ['getJob', 'listJobs', 'replicasOfTask', 'transaction', 'savepoint', 'settings', 'set']) expect(isWrite(r), r).toBe(false);
  });
});
