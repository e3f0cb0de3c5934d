/**
 * The scheduler against untrusted volunteers: known-answer probes vet newcomers, wrong answers quarantine,
 * colluders cannot carry a task, trusted volunteers earn single-replica acceptance.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { packTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { FakeClock } from './clock.js';
import { Scheduler } from './scheduler.js';

const MODEL = 'b'.repeat(64);
const out = (items: number, value: number): Tensor[] => [{ name: 'y', dtype: 'float32', dims: [items, 2], data: new Uint8Array(new Float32Array(items * 2).fill(value).buffer) }];
const meta = { backend: 'cpu', runMs: 1 };

function setup(opts: { random?: () => number; adaptive?: boolean; spotCheckRate?: number } = {}) {
  const store = new SqliteStore(':memory:');
  const clock = new FakeClock();
  const scheduler = new Scheduler({
    store, clock, log: pino({ level: 'silent' }), config: { leaseMs: 1000, maxFailures: 5, spotCheckRate: opts.spotCheckRate ?? 0 },
    taskInputs: () => [], random: opts.random ?? (() => 0.99),
  });
  const cancelled: string[] = [];
  scheduler.setEvents({ deliver: () => {}, cancel: (_w, ids) => cancelled.push(...ids) });
  store.putModel({ hash: MODEL, size: 1, inputs: [], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0 });
  /** A job whose task 0 is a canary with the answer 1 (already computed); every right answer is 1. */
  const addJob = (id: string, tasks: number) => {
    const job: JobRow = {
      id, owner: 'k', name: null, model: MODEL, stageModels: [MODEL], inputs: [], items: tasks * 2, batchSize: 2, replicas: 2, maxReplicas: 5,
      rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: opts.adaptive ?? true, canaryRate: 0.1, status: 'running', error: null,
      createdAt: 1, finishedAt: null,
    };
    const rows: TaskRow[] = Array.from({ length: tasks }, (_, b) => ({
      id: `${id}-t${b}`, jobId: id, stage: 0, model: MODEL, readyAt: 0, batch: b, itemStart: b * 2, itemEnd: b * 2 + 2, status: b === 0 ? 'done' : 'pending',
      canary: b === 0, ready: true, wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
    }));
    store.createJob(job, rows);
    store.setTaskResult(`${id}-t0`, packTensors(out(2, 1)));
  };
  const join = (w: string) => {
    const v = store.volunteerFor(`token-${w}`, `v-${w}`, 0).id;
    scheduler.connect(w, v, { adapterClass: 'google|swiftshader' });
    return v;
  };
  /** Asks for one task and answers it with `value`. */
  const work = (w: string, value: number) => {
    const [t] = scheduler.requestWork(w, 1);
    if (!t) return null;
    scheduler.submitResult(w, t.replicaId, out(2, value), meta);
    return t;
  };
  return { store, clock, scheduler, addJob, join, work, cancelled };
}

describe('trust', () => {
  it('tests a newcomer on the known answer first, and vets it when right', () => {
    const s = setup();
    s.addJob('j', 4);
    const v = s.join('w1');
    const first = s.work('w1', 1)!;
    expect(first.taskId).toBe('j-t0');
    expect(s.store.getVolunteer(v)).toMatchObject({ canaryPassed: 1, valid: 1, credit: 2 });
    expect(s.work('w1', 1)!.taskId).toBe('j-t1');
  });

  it('quarantines a newcomer whose known answer is wrong, and gives it no more work', () => {
    const s = setup();
    s.addJob('j', 4);
    const v = s.join('w1');
    s.work('w1', 42);
    expect(s.store.getVolunteer(v)).toMatchObject({ canaryFailed: 1, credit: 0 });
    expect(s.store.getVolunteer(v)!.quarantinedAt).not.toBeNull();
    expect(() => s.scheduler.requestWork('w1', 1)).toThrow(/disagreed .* too often/);
  });

  it('does not let colluding newcomers carry a task, and accepts the honest answer once vetted volunteers give it', () => {
    const s = setup();
    s.addJob('j', 3);
    // Two colluders skip their probe by taking regular tasks while the probe is leased elsewhere... they agree on 9.
    const liarA = s.join('la');
    const liarB = s.join('lb');
    const [probeA, taskA] = s.scheduler.requestWork('la', 2);
    const [probeB, taskB] = s.scheduler.requestWork('lb', 2);
    expect([probeA.taskId, probeB.taskId]).toEqual(['j-t0', 'j-t0']);
    expect(taskA.taskId).toBe(taskB.taskId);
    s.scheduler.submitResult('la', taskA.replicaId, out(2, 9), meta);
    s.scheduler.submitResult('lb', taskB.replicaId, out(2, 9), meta);
    expect(s.store.getTask(taskA.taskId)).toMatchObject({ status: 'pending', wanted: 3 });
    // Their probes are wrong: both quarantined, their agreeing replicas no longer count.
    s.scheduler.submitResult('la', probeA.replicaId, out(2, 9), meta);
    s.scheduler.submitResult('lb', probeB.replicaId, out(2, 9), meta);
    expect(s.store.getVolunteer(liarA)!.quarantinedAt).not.toBeNull();
    expect(s.store.getVolunteer(liarB)!.quarantinedAt).not.toBeNull();
    // Honest volunteers pass their probes and settle the task with the right answer.
    s.join('h1');
    s.join('h2');
    s.work('h1', 1);
    s.work('h2', 1);
    s.work('h1', 1);
    s.work('h2', 1);
    const task = s.store.getTask(taskA.taskId)!;
    expect(task.status).toBe('done');
    const result = new Float32Array(s.store.taskResult(task.id)!.slice(-16).buffer);
    expect(Array.from(result)).toEqual([1, 1, 1, 1]);
  });

  it('waits for a member to be vetted when only newcomers agree at the cap, then accepts', () => {
    const s = setup();
    s.addJob('j', 2);
    s.join('a');
    s.join('b');
    const [probeA, tA] = s.scheduler.requestWork('a', 2);
    const [, tB] = s.scheduler.requestWork('b', 2);
    s.scheduler.submitResult('a', tA.replicaId, out(2, 1), meta);
    s.scheduler.submitResult('b', tB.replicaId, out(2, 1), meta);
    expect(s.store.getTask('j-t1')!.status).toBe('pending');
    s.scheduler.submitResult('a', probeA.replicaId, out(2, 1), meta); // a is vetted now: the quorum counts
    expect(s.store.getTask('j-t1')!.status).toBe('done');
    expect(s.store.getJob('j')!.status).toBe('completed');
  });

  it('accepts a trusted volunteer\'s work on one replica, and withdraws the lease of a quarantined one', () => {
    const s = setup({ random: () => 0 }); // every chance taken
    s.addJob('j', 40);
    const v = s.join('t');
    s.store.updateVolunteer(v, { canaryPassed: 1, valid: 50, streak: 50 });
    const [t] = s.scheduler.requestWork('t', 1);
    expect(s.store.getTask(t.taskId)!.wanted).toBe(1);
    s.scheduler.submitResult('t', t.replicaId, out(2, 1), meta);
    expect(s.store.getTask(t.taskId)!.status).toBe('done');

    const [held] = s.scheduler.requestWork('t', 1);
    s.store.updateVolunteer(v, { canaryPassed: 0, valid: 0, streak: 0, invalid: 2 });
    s.join('x');
    s.scheduler.requestWork('x', 1); // x's probe
    const [probe] = s.scheduler.requestWork('t', 1);
    s.scheduler.submitResult('t', probe.replicaId, out(2, 5), meta); // t now fails a canary: quarantined
    expect(s.cancelled).toContain(held.replicaId);
    expect(s.store.getTask(held.taskId)).toMatchObject({ wanted: 2, active: 0 });
  });

  it('never replicates less than asked when the job forbids adaptive replication', () => {
    const s = setup({ random: () => 0, adaptive: false });
    s.addJob('j', 4);
    const v = s.join('t');
    s.store.updateVolunteer(v, { canaryPassed: 1, valid: 50, streak: 50 });
    const [t] = s.scheduler.requestWork('t', 1);
    expect(t.taskId).not.toBe('j-t0');
    expect(s.store.getTask(t.taskId)!.wanted).toBe(2);
  });

  it('records agreement per pair of worker classes', () => {
    const s = setup();
    s.addJob('j', 2);
    s.join('a');
    s.join('b');
    s.work('a', 1);
    s.work('b', 1);
    s.work('a', 1);
    s.work('b', 1.0001);
    expect(s.store.classPairs()).toEqual([{ a: 'cpu|google|swiftshader', b: 'cpu|google|swiftshader', agree: 1, disagree: 0 }]);
  });

  it('takes back a result that sleeper colluders got accepted, once a spot check catches one of them', () => {
    let roll = 0.99;
    const s = setup({ random: () => roll, spotCheckRate: 0.5, adaptive: false });
    s.addJob('j', 4);
    const a = s.join('a');
    s.join('b');
    s.work('a', 1); // both pass their first known answer honestly
    s.work('b', 1);
    const [ta] = s.scheduler.requestWork('a', 1);
    const [tb] = s.scheduler.requestWork('b', 1);
    expect(ta.taskId).toBe(tb.taskId);
    s.scheduler.submitResult('a', ta.replicaId, out(2, 9), meta);
    s.scheduler.submitResult('b', tb.replicaId, out(2, 9), meta);
    expect(s.store.getTask(ta.taskId)!.status).toBe('done'); // wrong, and accepted: both were vetted
    // A spot check: a known answer from a second job, which a has not run yet.
    s.addJob('k', 2);
    roll = 0;
    const [probe] = s.scheduler.requestWork('a', 1);
    expect(probe.taskId).toBe('k-t0');
    s.scheduler.submitResult('a', probe.replicaId, out(2, 9), meta);
    expect(s.store.getVolunteer(a)!.quarantinedAt).not.toBeNull();
    // The task is open again, a's replica no longer counts, and honest volunteers settle it.
    expect(s.store.getTask(ta.taskId)).toMatchObject({ status: 'pending', active: 1 });
    roll = 0.99;
    s.join('h');
    s.join('i');
    for (let i = 0; i < 4; i++) { s.work('h', 1); s.work('i', 1); }
    const task = s.store.getTask(ta.taskId)!;
    expect(task.status).toBe('done');
    expect(Array.from(new Float32Array(s.store.taskResult(task.id)!.slice(-16).buffer))).toEqual([1, 1, 1, 1]);
  });
});
