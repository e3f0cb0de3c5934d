/**
 * The scheduler against untrusted volunteers: known-answer probes vet newcomers, wrong answers quarantine,
 * colluders cannot carry a task, trusted volunteers earn single-replica acceptance. Vetting here is lenient (one
 * known answer, no tenure) so each rule shows in a few steps; reputation.test.ts covers the real thresholds.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { packTensors } from '../../shared/tensor-pack.js';
import type { Tensor } from '../../shared/tensor.js';
import { OriginShare } from '../cluster/origin-share.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { LiveStore } from '../state/live-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { FakeClock } from './clock.js';
import { Scheduler } from './scheduler.js';
import { DEFAULT_REPUTATION } from '../verify/reputation.js';

const MODEL = 'b'.repeat(64);
const out = (items: number, value: number): Tensor[] => [{ name: 'y', dtype: 'float32', dims: [items, 2], data: new Uint8Array(new Float32Array(items * 2).fill(value).buffer) }];
const meta = { backend: 'cpu', runMs: 1 };

function setup(opts: { random?: () => number; adaptive?: boolean; spotCheckRate?: number; auditRate?: number; origins?: OriginShare } = {}) {
  const store = new LiveStore(new SqliteStore(':memory:'));
  const clock = new FakeClock();
  const scheduler = new Scheduler({
    store, clock, log: pino({ level: 'silent' }),
    config: {
      leaseMs: 1000, maxFailures: 5, spotCheckRate: opts.spotCheckRate ?? 0, auditRate: opts.auditRate ?? 0,
      reputation: { ...DEFAULT_REPUTATION, canariesToVet: 1, validToVet: 1, tenureMs: 0, trustStreak: 10 },
    },
    taskInputs: () => [], random: opts.random ?? (() => 0.99), origins: opts.origins,
  });
  const checks: string[] = [];
  const audits: string[] = [];
  scheduler.setServerRuns({ check: (t) => { checks.push(t.id); return true; }, audit: (t) => { audits.push(t.id); return true; } });
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
  /** A worker of a new volunteer, from its own network origin unless one is named. */
  const join = (w: string, origin = `origin-${w}`) => {
    const v = store.volunteerFor(`token-${w}`, `v-${w}`, 0).id;
    scheduler.connect(w, v, { adapterClass: 'google|swiftshader', origin });
    return v;
  };
  /** A vetted volunteer online (it takes no work here): newcomers' tasks then get their full replicas. */
  const vetOnline = () => {
    const v = store.volunteerFor('token-vetted', 'v-vetted', 0).id;
    store.updateVolunteer(v, { canaryPassed: 2, valid: 50 });
    scheduler.connect('vetted', v, { origin: 'origin-vetted' });
  };
  /** Asks for one task and answers it with `value`. */
  const work = (w: string, value: number) => {
    const [t] = scheduler.requestWork(w, 1);
    if (!t) return null;
    scheduler.submitResult(w, t.replicaId, out(2, value), meta);
    return t;
  };
  return { store, clock, scheduler, addJob, join, vetOnline, work, cancelled, checks, audits };
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
    s.vetOnline();
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
    // Newcomers' agreement does not carry a task: the server's own run is asked to decide it.
    expect(s.store.getTask(taskA.taskId)).toMatchObject({ status: 'pending' });
    expect(s.checks).toEqual([taskA.taskId]);
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

  it('lets the server\'s own run settle a task only newcomers agree on, and credits them when it agrees', () => {
    const s = setup();
    s.vetOnline();
    s.addJob('j', 2);
    const a = s.join('a');
    s.join('b');
    const [, tA] = s.scheduler.requestWork('a', 2);
    const [, tB] = s.scheduler.requestWork('b', 2);
    s.scheduler.submitResult('a', tA.replicaId, out(2, 1), meta);
    s.scheduler.submitResult('b', tB.replicaId, out(2, 1), meta);
    expect(s.store.getTask('j-t1')!.status).toBe('pending');
    expect(s.checks).toEqual(['j-t1']);
    s.scheduler.serverChecked('j-t1', out(2, 1), null);
    expect(s.store.getTask('j-t1')!.status).toBe('done');
    expect(s.store.getJob('j')!.status).toBe('completed');
    expect(s.store.getVolunteer(a)).toMatchObject({ valid: 1, credit: 2 });
  });

  it('does not let vetted sleepers behind one origin carry a wrong answer: the server refutes them', () => {
    const s = setup({ adaptive: false });
    s.addJob('j', 6);
    const sleepers = ['s1', 's2', 's3'].map((w) => s.join(w, '203.0.113.7'));
    for (const w of ['s1', 's2', 's3']) s.work(w, 1); // honest on their known answer: vetted
    const [t1] = s.scheduler.requestWork('s1', 1);
    const [t2] = s.scheduler.requestWork('s2', 1);
    expect(t1.taskId).toBe(t2.taskId);
    s.scheduler.submitResult('s1', t1.replicaId, out(2, 9), meta);
    s.scheduler.submitResult('s2', t2.replicaId, out(2, 9), meta);
    expect(s.store.getTask(t1.taskId)!.status).toBe('pending');
    expect(s.checks).toEqual([t1.taskId]);
    s.scheduler.serverChecked(t1.taskId, out(2, 1), null);
    const task = s.store.getTask(t1.taskId)!;
    expect(task.status).toBe('done');
    expect(Array.from(new Float32Array(s.store.taskResult(task.id)!.slice(-16).buffer))).toEqual([1, 1, 1, 1]);
    for (const v of sleepers.slice(0, 2)) expect(s.store.getVolunteer(v)).toMatchObject({ canaryFailed: 1, credit: 2 });
    expect(s.store.getVolunteer(sleepers[0]!)!.quarantinedAt).not.toBeNull();
  });

  it('quarantines everyone behind a result an audit refutes, reopens what they accepted, and marks ended jobs tainted', () => {
    const s = setup({ adaptive: false, auditRate: 1, random: () => 0.5 });
    s.addJob('done', 2);
    s.addJob('live', 3);
    const a = s.join('a');
    const b = s.join('b');
    for (const w of ['a', 'b']) s.work(w, 1); // known answers: vetted
    // Colluders on two origins agree on a wrong answer to a task of 'done', which then completes.
    const [da] = s.scheduler.requestWork('a', 1);
    const [db] = s.scheduler.requestWork('b', 1);
    expect([da.taskId, db.taskId]).toEqual(['done-t1', 'done-t1']);
    s.scheduler.submitResult('a', da.replicaId, out(2, 9), meta);
    s.scheduler.submitResult('b', db.replicaId, out(2, 9), meta);
    expect(s.store.getJob('done')!.status).toBe('completed');
    // ...and on a task of 'live'.
    const [la] = s.scheduler.requestWork('a', 1);
    const [lb] = s.scheduler.requestWork('b', 1);
    s.scheduler.submitResult('a', la.replicaId, out(2, 9), meta);
    s.scheduler.submitResult('b', lb.replicaId, out(2, 9), meta);
    expect(s.store.getTask(la.taskId)!.status).toBe('done');
    expect(s.audits).toEqual(['done-t1', la.taskId]);
    // The audit of the live task refutes it.
    expect(s.scheduler.audited(la.taskId, out(2, 1))).toBe(false);
    for (const v of [a, b]) expect(s.store.getVolunteer(v)!.quarantinedAt).not.toBeNull();
    const fixed = s.store.getTask(la.taskId)!;
    expect(fixed.status).toBe('done');
    expect(Array.from(new Float32Array(s.store.taskResult(fixed.id)!.slice(-16).buffer))).toEqual([1, 1, 1, 1]);
    expect(s.store.taintedCount('done')).toBe(1);
    // The researcher reruns the tainted task: the job runs again, honest volunteers settle it right.
    expect(s.scheduler.rerunTainted('done')).toBe(1);
    expect(s.store.getJob('done')!.status).toBe('running');
    s.join('h');
    s.join('i');
    for (let k = 0; k < 6; k++) { s.work('h', 1); s.work('i', 1); }
    expect(s.store.getJob('done')!.status).toBe('completed');
    expect(s.store.taintedCount('done')).toBe(0);
    expect(Array.from(new Float32Array(s.store.taskResult('done-t1')!.slice(-16).buffer))).toEqual([1, 1, 1, 1]);
  });

  it('lets the newcomers of one network origin hold only the origin\'s share of leases together', () => {
    const s = setup();
    s.addJob('j', 100);
    // A vetted volunteer behind the same address (a campus NAT, say) neither uses up nor is held to the share.
    const regular = s.join('regular', '198.51.100.9');
    s.store.updateVolunteer(regular, { canaryPassed: 2, valid: 50 });
    expect(s.scheduler.requestWork('regular', 2)).toHaveLength(2);
    let held = 0;
    for (let i = 0; i < 20; i++) {
      s.join(`fresh${i}`, '198.51.100.9');
      held += s.scheduler.requestWork(`fresh${i}`, 2).length;
    }
    expect(held).toBe(32);
    s.join('elsewhere', '192.0.2.1');
    expect(s.scheduler.requestWork('elsewhere', 2)).toHaveLength(2);
    expect(s.scheduler.requestWork('regular', 2)).toHaveLength(2);
  });

  it('counts the newcomers\' leases an origin holds on the other servers of a shared database against its share', () => {
    const origins = new OriginShare();
    const s = setup({ origins });
    s.addJob('j', 100);
    origins.learn([{ origin: '198.51.100.9', connections: 40, newcomerLeases: 31 }]);
    let held = 0;
    for (let i = 0; i < 5; i++) {
      s.join(`fresh${i}`, '198.51.100.9');
      held += s.scheduler.requestWork(`fresh${i}`, 2).length;
    }
    expect(held).toBe(1);
    // What this server holds is told to the others.
    expect(origins.mine()).toEqual([{ origin: '198.51.100.9', connections: 0, newcomerLeases: 1 }]);
  });

  it('stops testing a newcomer on known answers once it has passed enough of them', () => {
    const s = setup({ random: () => 0.99 });
    s.addJob('j', 10);
    s.addJob('k', 10);
    const v = s.join('w');
    s.store.updateVolunteer(v, { canaryPassed: 1, valid: 0 }); // passed its known answers, not yet confirmed enough
    const tasks = s.scheduler.requestWork('w', 2);
    expect(tasks.map((t) => t.taskId).some((id) => id.endsWith('-t0'))).toBe(false);
  });

  it('while no vetted volunteer is online, settles a newcomer\'s replica with the server\'s run alone, asking no second one', () => {
    const s = setup();
    s.addJob('j', 4);
    const a = s.join('a');
    s.join('b');
    const [, tA] = s.scheduler.requestWork('a', 2);
    const [, tB] = s.scheduler.requestWork('b', 2);
    expect(tA!.taskId).not.toBe(tB!.taskId);
    s.scheduler.submitResult('a', tA!.replicaId, out(2, 1), meta);
    expect(s.checks).toEqual([tA!.taskId]);
    s.scheduler.serverChecked(tA!.taskId, out(2, 1), null);
    expect(s.store.getTask(tA!.taskId)).toMatchObject({ status: 'done' });
    expect(s.store.replicasOfTask(tA!.taskId)).toHaveLength(1);
    expect(s.store.getVolunteer(a)).toMatchObject({ valid: 1 });
    // With a vetted volunteer online, a newcomer's task wants its full replicas again.
    s.vetOnline();
    const [tC] = s.scheduler.requestWork('a', 1);
    expect(s.store.getTask(tC!.taskId)!.wanted).toBe(2);
  });

  it('lets a newcomer hold only a few leases at once', () => {
    const s = setup();
    s.addJob('j', 40);
    s.join('hoarder');
    expect(s.scheduler.requestWork('hoarder', 16)).toHaveLength(2);
    expect(s.scheduler.requestWork('hoarder', 16)).toHaveLength(0);
  });

  it('accepts a trusted volunteer\'s work on one replica, and withdraws the lease of a quarantined one', () => {
    const s = setup({ random: () => 0 }); // every chance taken
    s.addJob('j', 40);
    const v = s.join('t');
    s.store.updateVolunteer(v, { canaryPassed: 1, valid: 50, streak: 50 });
    const [t] = s.scheduler.requestWork('t', 1);
    expect(s.store.getTask(t.taskId)!.wanted).toBe(1);
    expect(s.audits).toEqual([]);
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
