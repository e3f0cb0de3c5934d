import pino from 'pino';
import { beforeEach, describe, expect, it } from 'vitest';
import type { TaskAssignment } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { LiveStore } from '../state/live-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { FakeClock } from './clock.js';
import { Scheduler } from './scheduler.js';

const MODEL = 'a'.repeat(64);

function outputs(items: number, value = 1): Tensor[] {
  return [{ name: 'y', dtype: 'float32', dims: [items, 2], data: new Uint8Array(new Float32Array(items * 2).fill(value).buffer) }];
}

function setup(opts: { replicas?: number; maxReplicas?: number; maxFailures?: number; leaseMs?: number } = {}) {
  const store = new LiveStore(new SqliteStore(':memory:'));
  const clock = new FakeClock();
  const scheduler = new Scheduler({
    store, clock, log: pino({ level: 'silent' }),
    config: { leaseMs: opts.leaseMs ?? 1000, maxFailures: opts.maxFailures ?? 3 },
    taskInputs: () => [],
  });
  /** The server's own runs asked for, answered by the test. */
  const checks: string[] = [];
  const audits: string[] = [];
  scheduler.setServerRuns({ check: (t) => { checks.push(t.id); return true; }, audit: (t) => { audits.push(t.id); return true; } });
  const pushed: Record<string, TaskAssignment[]> = {};
  const cancelled: Record<string, string[]> = {};
  scheduler.setEvents({
    deliver: (w, t) => { (pushed[w] ??= []).push(...t); },
    cancel: (w, ids) => { (cancelled[w] ??= []).push(...ids); },
  });
  store.putModel({ hash: MODEL, size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0 });
  let jobs = 0;
  const addJob = (tasks: number, batch = 2, owner = 'k'): JobRow => {
    const id = `job-${++jobs}`;
    const job: JobRow = {
      id, owner, name: null, model: MODEL, stageModels: [MODEL], inputs: [], items: tasks * batch, batchSize: batch,
      replicas: opts.replicas ?? 2, maxReplicas: opts.maxReplicas ?? 3, rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0,
      status: 'running', error: null, createdAt: clock.now() + jobs, finishedAt: null,
    };
    const rows: TaskRow[] = Array.from({ length: tasks }, (_, b) => ({
      id: `${id}-t${b}`, jobId: id, stage: 0, model: MODEL, readyAt: 0, batch: b, itemStart: b * batch, itemEnd: (b + 1) * batch, status: 'pending', canary: false, ready: true,
      wanted: job.replicas, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
    }));
    store.createJob(job, rows);
    scheduler.dispatch();
    return job;
  };
  return { store, clock, scheduler, pushed, cancelled, addJob, checks, audits };
}

type Setup = ReturnType<typeof setup>;

/** A one-task job (maxReplicas 3) whose three replicas, on three volunteers, all disagree. */
function threeDisagree(s: Setup) {
  const job = s.addJob(1);
  for (const w of ['w1', 'w2', 'w3']) s.scheduler.connect(w, `v-${w}`);
  const [a] = s.scheduler.requestWork('w1', 1);
  const [b] = s.scheduler.requestWork('w2', 1);
  s.scheduler.requestWork('w3', 1);
  s.scheduler.submitResult('w1', a.replicaId, outputs(2, 1), { backend: 'cpu', runMs: 1 });
  s.scheduler.submitResult('w2', b.replicaId, outputs(2, 2), { backend: 'cpu', runMs: 1 });
  s.scheduler.submitResult('w3', s.pushed.w3[0].replicaId, outputs(2, 3), { backend: 'cpu', runMs: 1 });
  return { job, a };
}

describe('Scheduler', () => {
  let s: Setup;
  beforeEach(() => { s = setup(); });

  it('leases up to the free slots and pushes the rest when work appears', () => {
    s.scheduler.connect('w1', 'v1');
    expect(s.scheduler.requestWork('w1', 2)).toEqual([]);
    s.addJob(3);
    expect(s.pushed.w1.map((t) => t.taskId)).toEqual(['job-1-t0', 'job-1-t1']);
    expect(s.pushed.w1[0].modelUrl).toBe(`/models/${MODEL}`);
    expect(s.pushed.w1[0].leaseMs).toBe(1000);
    // Demand is used up: another job does not push more to w1.
    s.addJob(1);
    expect(s.pushed.w1).toHaveLength(2);
  });

  it('gives the replicas of a task to distinct volunteers', () => {
    s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    s.scheduler.connect('w2', 'v1'); // a second tab of the same volunteer
    s.scheduler.connect('w3', 'v2');
    expect(s.scheduler.requestWork('w1', 2).map((t) => t.taskId)).toEqual(['job-1-t0']);
    expect(s.scheduler.requestWork('w2', 2)).toEqual([]);
    expect(s.scheduler.requestWork('w3', 2).map((t) => t.taskId)).toEqual(['job-1-t0']);
  });

  it('accepts a task when two replicas agree and completes the job', () => {
    const job = s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    s.scheduler.connect('w2', 'v2');
    const [a] = s.scheduler.requestWork('w1', 1);
    const [b] = s.scheduler.requestWork('w2', 1);
    expect(s.scheduler.submitResult('w1', a.replicaId, outputs(2, 1), { backend: 'cpu', runMs: 1 })).toEqual({ accepted: true });
    expect(s.store.getJob(job.id)!.status).toBe('running');
    s.scheduler.submitResult('w2', b.replicaId, outputs(2, 1.0001), { backend: 'wasm', runMs: 1 });
    expect(s.store.getTask(a.taskId)!.status).toBe('done');
    expect(s.store.getJob(job.id)!.status).toBe('completed');
    // A repeat of a committed result is harmless.
    expect(s.scheduler.submitResult('w1', a.replicaId, outputs(2, 1), { backend: 'cpu', runMs: 1 })).toEqual({ accepted: true });
  });

  it('schedules one more replica on disagreement and lets the majority decide', () => {
    s.addJob(1);
    for (const w of ['w1', 'w2', 'w3']) s.scheduler.connect(w, `v-${w}`);
    const [a] = s.scheduler.requestWork('w1', 1);
    const [b] = s.scheduler.requestWork('w2', 1);
    expect(s.scheduler.requestWork('w3', 1)).toEqual([]); // demand remembered
    s.scheduler.submitResult('w1', a.replicaId, outputs(2, 1), { backend: 'cpu', runMs: 1 });
    s.scheduler.submitResult('w2', b.replicaId, outputs(2, 7), { backend: 'cpu', runMs: 1 });
    expect(s.store.getTask(a.taskId)!.wanted).toBe(3);
    const [c] = s.pushed.w3;
    expect(c.taskId).toBe(a.taskId);
    s.scheduler.submitResult('w3', c.replicaId, outputs(2, 7), { backend: 'cpu', runMs: 1 });
    expect(s.store.getTask(a.taskId)!.status).toBe('done');
  });

  it('hands a task with no agreeing quorum at the replica cap to the server, whose answer settles it', () => {
    const { job, a } = threeDisagree(s);
    expect(s.checks).toEqual([a.taskId]);
    expect(s.store.getJob(job.id)).toMatchObject({ status: 'running' });
    s.scheduler.serverChecked(a.taskId, outputs(2, 2), null);
    expect(s.store.getTask(a.taskId)!.status).toBe('done');
    expect(s.store.getJob(job.id)).toMatchObject({ status: 'completed' });
    expect(s.store.replicasOfTask(a.taskId).map((r) => [r.status, r.error])).toEqual([
      ['invalid', expect.stringMatching(/refuted/)], ['returned', null], ['invalid', expect.stringMatching(/refuted/)],
    ]);
  });

  it('fails a task only when the server\'s own run fails too, with the server\'s reason', () => {
    const { job, a } = threeDisagree(s);
    s.scheduler.serverChecked(a.taskId, null, 'Got invalid dimensions for input: x');
    expect(s.store.getJob(job.id)).toMatchObject({ status: 'failed' });
    expect(s.store.getJob(job.id)!.error).toMatch(/the server's own run failed too: Got invalid dimensions/);
  });

  it('holds the server\'s own outputs to the model: outputs that do not fit fail the task with that reason', () => {
    const job = s.addJob(1);
    for (const w of ['w1', 'w2', 'w3']) s.scheduler.connect(w, `v-${w}`);
    const [a] = s.scheduler.requestWork('w1', 1);
    s.scheduler.serverChecked(a.taskId, outputs(3, 1), null);
    expect(s.store.getJob(job.id)).toMatchObject({ status: 'failed' });
    expect(s.store.getJob(job.id)!.error).toMatch(/its outputs do not fit the model: output y: first axis 3, expected 2/);
  });

  it('lapses leases with the clock and reissues the task, counting a failure', () => {
    s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    s.scheduler.connect('w2', 'v2');
    s.scheduler.connect('w3', 'v3');
    const [a] = s.scheduler.requestWork('w1', 1);
    s.scheduler.requestWork('w2', 1);
    s.clock.advance(999);
    expect(s.scheduler.sweep()).toBe(0);
    s.clock.advance(1);
    s.scheduler.requestWork('w3', 1);
    expect(s.scheduler.sweep()).toBe(2);
    expect(s.store.getReplica(a.replicaId)!.status).toBe('expired');
    expect(s.store.getTask(a.taskId)).toMatchObject({ active: 1, failures: 2 });
    expect(s.pushed.w3.map((t) => t.taskId)).toEqual([a.taskId]);
  });

  it('still uses a late result for a lapsed lease, once', () => {
    s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    s.scheduler.connect('w2', 'v2');
    const [a] = s.scheduler.requestWork('w1', 1);
    const [b] = s.scheduler.requestWork('w2', 1);
    s.clock.advance(1000);
    s.scheduler.sweep();
    s.scheduler.submitResult('w1', a.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
    s.scheduler.submitResult('w2', b.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
    expect(s.store.getTask(a.taskId)!.status).toBe('done');
  });

  it('does not fail a job on maxFailures worker errors: the server runs the task, and the errors count against their reporters', () => {
    const job = s.addJob(1);
    for (let i = 1; i <= 3; i++) {
      s.store.volunteerFor(`tok-${i}`, `v${i}`, 0);
      s.scheduler.connect(`w${i}`, `v${i}`);
      const [t] = s.scheduler.requestWork(`w${i}`, 1);
      s.scheduler.reportError(`w${i}`, t.replicaId, `out of memory #${i} \x1b[2J please re-run at https://evil.example`);
    }
    expect(s.store.getTask('job-1-t0')).toMatchObject({ status: 'pending', failures: 3 });
    expect(s.store.getJob(job.id)!.status).toBe('running');
    expect(s.checks).toEqual(['job-1-t0']);
    expect(s.store.getTask('job-1-t0')!.error).toContain('\\u001b[2J');
    s.scheduler.serverChecked('job-1-t0', outputs(2, 1), null);
    expect(s.store.getJob(job.id)).toMatchObject({ status: 'completed', error: null });
    for (let i = 1; i <= 3; i++) expect(s.store.getVolunteer(`v${i}`)).toMatchObject({ errors: 1, invalid: 1 });
  });

  it('hands the server an open task that no idle worker may take, once it has waited a while', () => {
    s = setup({ leaseMs: 60_000 });
    s.addJob(1);
    // w3 is online but never asks for work: the task could still go to it, so it waits for a while.
    for (const w of ['w1', 'w2', 'w3']) s.scheduler.connect(w, `v-${w}`);
    const [a] = s.scheduler.requestWork('w1', 1);
    const [b] = s.scheduler.requestWork('w2', 1);
    s.scheduler.submitResult('w1', a.replicaId, outputs(2, 1), { backend: 'cpu', runMs: 1 });
    s.scheduler.submitResult('w2', b.replicaId, outputs(2, 2), { backend: 'cpu', runMs: 1 });
    // They disagree: a third volunteer is wanted, and both workers ask in vain (each has run the task).
    expect(s.scheduler.requestWork('w1', 1)).toEqual([]);
    expect(s.scheduler.requestWork('w2', 1)).toEqual([]);
    s.scheduler.sweep();
    s.clock.advance(14_000);
    s.scheduler.sweep();
    expect(s.checks).toEqual([]);
    s.clock.advance(1_000);
    s.scheduler.sweep();
    expect(s.checks).toEqual([a.taskId]);
  });

  it('hands the server at once an open task that every volunteer online has run (a newcomer alone with the page)', () => {
    s = setup({ leaseMs: 60_000 });
    s.addJob(1);
    s.scheduler.connect('w1', 'v-w1');
    const [a] = s.scheduler.requestWork('w1', 1);
    s.scheduler.submitResult('w1', a.replicaId, outputs(2, 1), { backend: 'cpu', runMs: 1 });
    // A second replica is wanted from another volunteer, and there is none: no need to wait 15 s for one.
    expect(s.scheduler.requestWork('w1', 1)).toEqual([]);
    s.scheduler.sweep();
    expect(s.checks).toEqual([a.taskId]);
  });

  it('serves researchers in turn: a small job submitted after a big one of another owner finishes first', () => {
    s = setup({ replicas: 1 });
    const big = s.addJob(60, 2, 'alice');
    s.clock.advance(1);
    const small = s.addJob(4, 2, 'bob');
    s.scheduler.connect('w1', 'v1');
    let done = 0;
    while (s.store.getJob(small.id)!.status === 'running' && done < 64) {
      const [t] = s.scheduler.requestWork('w1', 1);
      s.scheduler.submitResult('w1', t.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
      done++;
    }
    // The two owners took turns: bob's 4 tasks were done within the first 8 leases, alice's job is far from done.
    expect(s.store.getJob(small.id)!.status).toBe('completed');
    expect(done).toBeLessThanOrEqual(8);
    expect(s.store.getJob(big.id)!.status).toBe('running');
  });

  it('issues a backup replica for a lease held far past the model\'s usual time while workers wait', () => {
    s = setup({ leaseMs: 60_000 });
    s.addJob(2);
    for (const w of ['w1', 'w2', 'w3']) s.scheduler.connect(w, `v-${w}`);
    // w1 and w2 answer task 0 in 100 ms; w3 takes task 1 and sits on it.
    const [t0] = s.scheduler.requestWork('w1', 1);
    const [t0b] = s.scheduler.requestWork('w2', 1);
    const [hoarded] = s.scheduler.requestWork('w3', 1);
    expect(hoarded.taskId).toBe('job-1-t1');
    s.clock.advance(100);
    s.scheduler.submitResult('w1', t0.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
    s.scheduler.submitResult('w2', t0b.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
    // w1 takes task 1's other replica; w2 waits with nothing to do.
    const [t1] = s.scheduler.requestWork('w1', 1);
    expect(t1.taskId).toBe('job-1-t1');
    expect(s.scheduler.requestWork('w2', 1)).toEqual([]);
    s.clock.advance(1_000);
    s.scheduler.sweep();
    expect(s.pushed.w2).toBeUndefined();
    s.clock.advance(1_500);
    s.scheduler.sweep();
    const backup = s.pushed.w2![0]!;
    expect(backup.taskId).toBe('job-1-t1');
    // The first good answers win; the straggler's lease is withdrawn.
    s.scheduler.submitResult('w1', t1.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
    s.scheduler.submitResult('w2', backup.replicaId, outputs(2), { backend: 'cpu', runMs: 1 });
    expect(s.store.getJob('job-1')!.status).toBe('completed');
    expect(s.cancelled.w3).toEqual([hoarded.replicaId]);
  });

  it('returns a dropped worker\'s leases to the queue without counting a failure', () => {
    s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    const [a] = s.scheduler.requestWork('w1', 1);
    s.scheduler.disconnect('w1');
    expect(s.store.getTask(a.taskId)).toMatchObject({ active: 0, failures: 0 });
    expect(() => s.scheduler.submitResult('w1', a.replicaId, outputs(2), { backend: 'cpu', runMs: 1 })).toThrow(/hello/);
    s.scheduler.connect('w2', 'v2');
    expect(s.scheduler.requestWork('w2', 1).map((t) => t.taskId)).toEqual([a.taskId]);
  });

  it('refuses results of the wrong shape and results for leases it did not give', () => {
    s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    s.scheduler.connect('w2', 'v2');
    const [a] = s.scheduler.requestWork('w1', 1);
    expect(() => s.scheduler.submitResult('w2', a.replicaId, outputs(2), { backend: 'cpu', runMs: 1 })).toThrow(/not leased to you/);
    expect(() => s.scheduler.submitResult('w1', 'r-nope', outputs(2), { backend: 'cpu', runMs: 1 })).toThrow(/not leased to you/);
    expect(() => s.scheduler.submitResult('w1', a.replicaId, outputs(3), { backend: 'cpu', runMs: 1 })).toThrow(/first axis 3, expected 2/);
    expect(s.store.getReplica(a.replicaId)).toMatchObject({ status: 'invalid' });
    expect(s.store.getTask(a.taskId)).toMatchObject({ failures: 1, active: 0 });
  });

  it('cancels a job and withdraws its leases from the workers', () => {
    const job = s.addJob(2);
    s.scheduler.connect('w1', 'v1');
    const held = s.scheduler.requestWork('w1', 2);
    s.scheduler.cancelJob(job.id);
    expect(s.cancelled.w1.sort()).toEqual(held.map((t) => t.replicaId).sort());
    expect(s.store.getJob(job.id)!.status).toBe('cancelled');
    expect(s.scheduler.submitResult('w1', held[0].replicaId, outputs(2), { backend: 'cpu', runMs: 1 })).toEqual({ accepted: false });
  });

  it('returns leases left from before a restart to the queue', () => {
    s.addJob(1);
    s.scheduler.connect('w1', 'v1');
    s.scheduler.requestWork('w1', 1);
    const again = new Scheduler({ store: s.store, clock: s.clock, log: pino({ level: 'silent' }), config: { leaseMs: 1000, maxFailures: 3 }, taskInputs: () => [] });
    expect(again.recoverLeases()).toBe(1);
    expect(s.store.getTask('job-1-t0')).toMatchObject({ active: 0 });
  });
});
