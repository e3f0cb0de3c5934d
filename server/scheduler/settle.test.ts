/**
 * The Settler's reports to its observer (what the metrics count): a task accepted by a quorum with its replica
 * count and the results judged, a disagreeing result, a refused one, a worker's error, a lapsed lease, an audit
 * upheld and one refuted, a task the server decides, and a task that fails on the server too.
 */
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import type { Tensor } from '../../shared/tensor.js';
import type { SettleEventMap } from '../events.js';
import { SqliteStore } from '../store/sqlite-store.js';
import { LiveStore } from '../state/live-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { FakeClock } from './clock.js';
import { Scheduler } from './scheduler.js';

const MODEL = 'b'.repeat(64);

const outputs = (value: number, items = 2): Tensor[] =>
  [{ name: 'y', dtype: 'float32', dims: [items, 2], data: new Uint8Array(new Float32Array(items * 2).fill(value).buffer) }];
const meta = { backend: 'cpu', runMs: 1 };

function setup(tasks = 1) {
  const store = new LiveStore(new SqliteStore(':memory:'));
  const clock = new FakeClock();
  const heard: string[] = [];
  const scheduler = new Scheduler({
    store, clock, log: pino({ level: 'silent' }), config: { leaseMs: 1000, maxFailures: 2 }, taskInputs: () => [],
    observer: { emit: <K extends keyof SettleEventMap>(event: K, ...args: SettleEventMap[K]) => heard.push([event, ...args].join(' ')) },
  });
  const checks: string[] = [];
  scheduler.setServerRuns({ check: (t) => { checks.push(t.id); return true; }, audit: () => true });
  scheduler.setEvents({ deliver: () => {}, cancel: () => {} });
  store.putModel({ hash: MODEL, size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 0 });
  const job: JobRow = {
    id: 'job', owner: 'k', name: null, model: MODEL, stageModels: [MODEL], inputs: [], items: tasks * 2, batchSize: 2,
    replicas: 2, maxReplicas: 3, rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0, status: 'running', error: null, createdAt: 0, finishedAt: null,
  };
  const rows: TaskRow[] = Array.from({ length: tasks }, (_, b) => ({
    id: `job-t${b}`, jobId: 'job', stage: 0, model: MODEL, readyAt: 0, batch: b, itemStart: b * 2, itemEnd: b * 2 + 2, status: 'pending', canary: false, ready: true,
    wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
  }));
  store.createJob(job, rows);
  for (const w of ['w1', 'w2', 'w3']) scheduler.connect(w, `v-${w}`);
  return { store, clock, scheduler, heard, checks, lease: (w: string) => scheduler.requestWork(w, 1)[0]! };
}

describe('Settler reports', () => {
  it('a quorum accepting a task, with a disagreeing result before it', () => {
    const s = setup();
    const a = s.lease('w1');
    const b = s.lease('w2');
    s.scheduler.submitResult('w1', a.replicaId, outputs(1), meta);
    s.scheduler.submitResult('w2', b.replicaId, outputs(5), meta);
    expect(s.heard).toEqual([]);
    const c = s.lease('w3');
    s.scheduler.submitResult('w3', c.replicaId, outputs(1), meta);
    expect(s.heard).toEqual(['task:settled done false', 'task:accepted 3 quorum', 'result:judged accepted 2', 'result:judged disagreed 1']);
  });

  it('a refused result, a worker\'s error and a lapsed lease', () => {
    const s = setup(3);
    const a = s.lease('w1');
    expect(() => s.scheduler.submitResult('w1', a.replicaId, outputs(1, 5), meta)).toThrow(/refused/);
    const b = s.lease('w2');
    s.scheduler.reportError('w2', b.replicaId, 'out of memory');
    s.lease('w3');
    s.clock.advance(5000);
    s.scheduler.sweep();
    expect(s.heard).toEqual(['result:judged refused 1', 'replica:errored', 'lease:expired']);
  });

  it('audits upheld and refuted, and the server deciding or failing a task', () => {
    const s = setup(2);
    const a = s.lease('w1');
    const b = s.lease('w2');
    s.scheduler.submitResult('w1', a.replicaId, outputs(1), meta);
    s.scheduler.submitResult('w2', b.replicaId, outputs(1), meta);
    s.heard.length = 0;
    expect(s.scheduler.audited(a.taskId, outputs(1))).toBe(true);
    expect(s.scheduler.audited(a.taskId, outputs(9))).toBe(false);
    expect(s.heard.slice(0, 2)).toEqual(['audit:judged false', 'audit:judged true']);

    const other = s.store.getTask('job-t1')!;
    s.heard.length = 0;
    s.scheduler.serverChecked(other.id, outputs(2), null);
    expect(s.heard).toEqual(['task:settled done false', 'task:accepted 0 server']);
  });

  it('a task failed by the server too', () => {
    const s = setup();
    s.scheduler.serverChecked('job-t0', null, 'the model does not load');
    expect(s.heard).toEqual(['task:settled failed false']);
  });
});
