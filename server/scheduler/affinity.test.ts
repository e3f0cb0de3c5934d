/**
 * Pipeline scheduling: stages become ready in order, workers keep to the shard they hold, and no worker
 * gets a shard that cannot fit its GPU.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { LiveStore } from '../state/live-store.js';
import { type JobRow, type TaskRow, taskId } from '../store/store.js';
import { FakeClock } from './clock.js';
import { Scheduler } from './scheduler.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const out = (name: string): Tensor[] => [{ name, dtype: 'float32', dims: [1, 2], data: new Uint8Array(8) }];

function setup() {
  const store = new LiveStore(new SqliteStore(':memory:'));
  const clock = new FakeClock();
  const scheduler = new Scheduler({
    store, clock, log: pino({ level: 'silent' }), config: { leaseMs: 60_000, maxFailures: 3, shardAffinityMs: 5000 },
    taskInputs: () => [],
  });
  store.putModel({ hash: A, size: 1, inputs: [], outputs: [{ name: 'h', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 1000, largestWeight: 600, createdAt: 0 });
  store.putModel({ hash: B, size: 1, inputs: [], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 1000, largestWeight: 600, createdAt: 0 });
  const job: JobRow = {
    id: 'j', owner: 'k', name: null, model: A, stageModels: [A, B], inputs: [], items: 3, batchSize: 1, replicas: 1, maxReplicas: 2,
    rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 1, finishedAt: null,
  };
  const tasks: TaskRow[] = [];
  for (const stage of [0, 1]) for (const batch of [0, 1, 2]) {
    tasks.push({
      id: taskId('j', stage, batch), jobId: 'j', stage, model: stage ? B : A, batch, itemStart: batch, itemEnd: batch + 1,
      status: 'pending', canary: false, ready: stage === 0, readyAt: stage === 0 ? clock.now() : null, wanted: 1, active: 0,
      failures: 0, error: null, doneAt: null, tainted: false,
    });
  }
  store.createJob(job, tasks);
  scheduler.jobCreated(job);
  return { store, clock, scheduler };
}

describe('pipeline scheduling', () => {
  it('stops holding a stage back for a worker once it has left', () => {
    const { scheduler } = setup();
    scheduler.connect('w1', 'v1');
    const [t0] = scheduler.requestWork('w1', 1);
    expect(t0!.modelHash).toBe(A);
    scheduler.connect('w2', 'v2');
    expect(scheduler.requestWork('w2', 1)).toEqual([]);
    scheduler.disconnect('w1');
    expect(scheduler.requestWork('w2', 1).map((t) => t.modelHash)).toEqual([A]);
  });

  it('readies stage 2 of a batch when its stage 1 is verified, and keeps each worker on its shard', () => {
    const { store, clock, scheduler } = setup();
    scheduler.connect('w1', 'v1');
    const [t0] = scheduler.requestWork('w1', 1);
    expect(t0).toMatchObject({ taskId: 'j-s0-t0', modelHash: A, modelUrl: `/models/${A}` });
    scheduler.connect('w2', 'v2');
    // Stage-1 tasks are held back for w1, which holds shard A; stage 2 is not ready yet.
    expect(scheduler.requestWork('w2', 1)).toEqual([]);
    scheduler.submitResult('w1', t0.replicaId, out('h'), { backend: 'cpu', runMs: 1 });
    expect(store.getTask('j-s1-t0')).toMatchObject({ ready: true });
    // Stage 2's first task went to w2 (nobody held B); w1 keeps to A.
    const [next] = scheduler.requestWork('w1', 1);
    expect(next.modelHash).toBe(A);
    expect(store.getTask('j-s1-t0')!.active).toBe(1);
    // After the affinity window, w2 may help with A's backlog too.
    expect(scheduler.requestWork('w2', 1)).toEqual([]);
    clock.advance(5000);
    expect(scheduler.requestWork('w2', 1).map((t) => t.taskId)).toEqual(['j-s0-t2']);
  });

  it('never sends a shard whose weights cannot fit the worker\'s GPU buffers or memory', () => {
    const { scheduler } = setup();
    scheduler.connect('small', 'v1', { limits: { maxStorageBufferBindingSize: 500 } });
    expect(scheduler.requestWork('small', 2)).toEqual([]);
    scheduler.connect('tiny', 'v2', { limits: { deviceMemory: 0.000001 } });
    expect(scheduler.requestWork('tiny', 2)).toEqual([]);
    scheduler.connect('big', 'v3', { limits: { maxStorageBufferBindingSize: 1 << 30, deviceMemory: 8 } });
    expect(scheduler.requestWork('big', 2)).toHaveLength(2);
  });
});
