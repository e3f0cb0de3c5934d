import { describe, expect, it } from 'vitest';
import { PgJobCounts } from './pg-counts.js';
import type { Statement } from './pg-sync.js';

/** A database of one job's counts: `done` tasks of 10, each read taking `readMs` of the fake clock. */
function fakeDb() {
  const db = { now: 0, done: 2, readMs: 5, sync: 0, background: 0 };
  const rows = (st: Statement[]) => [
    [{ stage: 0, status: 'done', n: db.done, busy: 0, canaries: 1, tainted: 0 }, { stage: 0, status: 'pending', n: 10 - db.done, busy: 0, canaries: 0, tainted: 0 }],
    [{ n: db.done * 2 }],
  ].slice(0, st.length) as unknown as Record<string, unknown>[][];
  const send = (st: Statement[]) => { db.sync++; db.now += db.readMs; return rows(st); };
  let answer: () => void = () => {};
  const ask = () => (st: Statement[]) => {
    db.background++;
    return new Promise<Record<string, unknown>[][]>((resolve) => { answer = () => { db.now += db.readMs; resolve(rows(st)); }; });
  };
  const counts = new PgJobCounts(send, ask, () => db.now);
  return { db, counts, answer: async () => { answer(); await new Promise((r) => setImmediate(r)); } };
}

describe('PgJobCounts view counts', () => {
  it('reads a running job\'s once, then in the background no sooner than ten times what a read took, never on the server\'s thread', async () => {
    const { db, counts, answer } = fakeDb();
    expect(counts.viewCounts('j', false)).toMatchObject({ stages: [{ total: 10, done: 2, pending: 8 }], canaries: 1, replicas: 4 });
    expect([db.sync, db.background]).toEqual([1, 0]);
    db.done = 5;
    db.now += 900;
    expect(counts.viewCounts('j', false).stages[0]!.done).toBe(2);
    db.now += 200; // past one second (10 x 5 ms is less)
    expect(counts.viewCounts('j', false).stages[0]!.done).toBe(2); // what it had, while the read runs
    expect(counts.viewCounts('j', false).stages[0]!.done).toBe(2);
    expect([db.sync, db.background]).toEqual([1, 1]);
    await answer();
    expect(counts.viewCounts('j', false)).toMatchObject({ stages: [{ done: 5 }], replicas: 10 });
    // A read that took 300 ms: the next waits three seconds.
    db.readMs = 300;
    db.now += 1_000;
    counts.viewCounts('j', false);
    await answer();
    db.now += 2_500;
    counts.viewCounts('j', false);
    expect(db.background).toBe(2);
    db.now += 600;
    counts.viewCounts('j', false);
    expect(db.background).toBe(3);
  });

  it('reads an ended job\'s exactly once more, and keeps them', async () => {
    const { db, counts, answer } = fakeDb();
    counts.viewCounts('j', false);
    db.now += 5_000;
    counts.viewCounts('j', false); // a background read starts
    db.done = 10;
    expect(counts.viewCounts('j', true).stages[0]).toMatchObject({ done: 10, pending: 0 });
    expect(db.sync).toBe(2);
    db.done = 3;
    await answer(); // the background read, from before the end, does not replace the exact one
    db.now += 60_000;
    expect(counts.viewCounts('j', true).stages[0]).toMatchObject({ done: 10 });
    expect([db.sync, db.background]).toEqual([2, 1]);
    counts.drop('j');
    expect(counts.viewCounts('j', true).stages[0]).toMatchObject({ done: 3 });
  });
});
