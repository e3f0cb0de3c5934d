/**
 * The live state of a server that shares its database: only the slices it took are in memory and handed out, a
 * slice given back leaves memory whole, and what memory sees only in part is asked of the store.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { FakeClock } from '../scheduler/clock.js';
import { Scheduler } from '../scheduler/scheduler.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { type JobRow, SLICE_BATCHES, type Store, type TaskRow } from '../store/store.js';
import { SlicedLiveStore, sliceOf } from './sliced-live-store.js';

const M = 'm'.repeat(64);
const job = (id: string): JobRow => ({
  id, owner: 'k', name: null, model: M, stageModels: [M], inputs: [], items: 6 * SLICE_BATCHES, batchSize: 2, replicas: 1, maxReplicas: 3,
  rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null,
});
const tasks = (jobId: string, count: number): TaskRow[] => Array.from({ length: count }, (_, b) => ({
  id: `${jobId}-t${b}`, jobId, stage: 0, model: M, batch: b, itemStart: 2 * b, itemEnd: 2 * b + 2, status: 'pending', canary: false,
  ready: true, readyAt: 0, wanted: 1, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
}));
const pick = (live: SlicedLiveStore, n: number) => live.assignableTasks('v', n).map((t) => t.batch);

describe('SlicedLiveStore', () => {
  it('hands out only the slices it took, in batch order, and lets a slice given back go whole', () => {
    const live = new SlicedLiveStore(new SqliteStore(':memory:'));
    live.createJob(job('j'), tasks('j', 3 * SLICE_BATCHES));
    expect(pick(live, 5)).toEqual([]);
    live.takeSlice('j', 1);
    live.takeSlice('j', 0);
    expect(pick(live, 3)).toEqual([0, 1, 2]);
    // Tasks of slice 0 are handed out, then the slice is given back: what is left comes from slices 1 and 2 only.
    live.transaction(() => { for (const b of [0, 1]) live.updateTask(`j-t${b}`, { active: 1 }); });
    live.dropSlice('j', 0);
    live.takeSlice('j', 2);
    const next = live.assignableTasks('v', 2 * SLICE_BATCHES);
    expect(next.map((t) => sliceOf(t.batch)).every((s) => s === 1 || s === 2)).toBe(true);
    expect(next.map((t) => t.batch)).toEqual([...next.map((t) => t.batch)].sort((a, b) => a - b));
    expect(next).toHaveLength(2 * SLICE_BATCHES);
    expect(live.heldSlicesList().map((s) => s.slice).sort()).toEqual([1, 2]);
    expect(live.getTask('j-t0')?.active).toBe(0); // the store's row: the lease was memory's, given back with the slice
  });

  it('asks the store for counts and whether a job is finished, since other servers hold the rest', () => {
    const inner = new SqliteStore(':memory:');
    const live = new SlicedLiveStore(inner);
    live.createJob(job('j'), tasks('j', 2 * SLICE_BATCHES));
    live.takeSlice('j', 0);
    live.transaction(() => {
      for (let b = 0; b < SLICE_BATCHES; b++) live.updateTask(`j-t${b}`, { status: 'done', doneAt: 5 });
    });
    expect(live.openInSlice('j', 0)).toBe(0);
    // Memory holds nothing open; the store still has slice 1's tasks.
    expect(live.hasUnfinishedTasks('j')).toBe(true);
    expect(live.taskCounts('j')).toMatchObject({ total: 2 * SLICE_BATCHES, done: SLICE_BATCHES });
    inner.transaction(() => { for (let b = SLICE_BATCHES; b < 2 * SLICE_BATCHES; b++) inner.updateTask(`j-t${b}`, { status: 'done', doneAt: 6 }); });
    expect(live.hasUnfinishedTasks('j')).toBe(false);
  });

  it('reopens only what it holds of a quarantined volunteer\'s accepted tasks, and marks the rest tainted', () => {
    const inner = new SqliteStore(':memory:');
    const live = new SlicedLiveStore(inner);
    live.createJob(job('j'), tasks('j', 2 * SLICE_BATCHES));
    const held = 'j-t3';
    const elsewhere = `j-t${SLICE_BATCHES + 3}`;
    for (const [i, id] of [held, elsewhere].entries()) {
      inner.insertReplica({
        id: `r${i}`, taskId: id, jobId: 'j', workerId: 'w', volunteerId: 'liar', status: 'returned', workerClass: '-|-', single: false, site: null,
        leasedAt: 1, leaseExpires: 9, backend: 'cpu', runMs: 1, error: null, returnedAt: 2, origin: null,
      });
      inner.updateTask(id, { status: 'done', doneAt: 3 });
    }
    live.takeSlice('j', 0);
    const reopen = live.transaction(() => live.acceptedTasksReturnedBy('liar'));
    expect(reopen.map((t) => t.id)).toEqual([held]);
    expect(inner.getTask(elsewhere)?.tainted).toBe(true);
    expect(inner.getTask(held)?.tainted).toBe(false);
  });

  it('keeps the slices it took of a job it learned from the store while that job was still being created here', async () => {
    let created = () => {};
    // The job's rows commit (another connection), the store is seen to hold it, and only then is the creation told.
    const inner: Store = Object.assign(new SqliteStore(':memory:'), {
      createJobAsync(this: SqliteStore, j: JobRow, t: TaskRow[]) {
        this.createJob(j, t);
        return new Promise<void>((resolve) => { created = resolve; });
      },
    });
    const live = new SlicedLiveStore(inner);
    const creating = live.createJobAsync(job('j'), tasks('j', SLICE_BATCHES));
    live.learnJob(inner.getJob('j')!);
    live.takeSlice('j', 0);
    expect(pick(live, 2)).toEqual([0, 1]);
    created();
    await creating;
    expect(pick(live, 2)).toEqual([0, 1]);
  });

  it('tells a result that crosses the withdrawal of its slice\'s leases that it was withdrawn, once the slice is given back', () => {
    const live = new SlicedLiveStore(new SqliteStore(':memory:'));
    live.putModel({ hash: M, size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0 });
    live.createJob(job('j'), tasks('j', SLICE_BATCHES));
    const scheduler = new Scheduler({ store: live, clock: new FakeClock(), log: pino({ level: 'silent' }), config: { leaseMs: 60_000, maxFailures: 3 }, taskInputs: () => [] });
    const cancelled: string[] = [];
    scheduler.setEvents({ deliver: () => {}, cancel: (_w, ids) => cancelled.push(...ids) });
    live.takeSlice('j', 0);
    scheduler.connect('w1', 'v1');
    const [lease] = scheduler.requestWork('w1', 1);
    // The store holds no lease: the task running is memory's to count.
    expect(live.taskCounts('j')).toMatchObject({ total: SLICE_BATCHES, running: 1, pending: SLICE_BATCHES - 1 });
    expect(live.stageCounts('j')).toEqual([{ stage: 0, total: SLICE_BATCHES, done: 0, failed: 0, running: 1, pending: SLICE_BATCHES - 1 }]);
    scheduler.withdrawLeases(live.leasesInSlice('j', 0).map((r) => r.id));
    live.dropSlice('j', 0);
    expect(cancelled).toEqual([lease!.replicaId]);
    const y = [{ name: 'y', dtype: 'float32' as const, dims: [2, 2], data: new Uint8Array(16) }];
    expect(scheduler.submitResult('w1', lease!.replicaId, y, { backend: 'cpu', runMs: 1 })).toEqual({ accepted: false });
  });
});
