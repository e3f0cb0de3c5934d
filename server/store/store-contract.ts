/**
 * The behaviour every Store must have, as one suite; each implementation's test file runs it.
 */
import { describe, expect, it } from 'vitest';
import type { JobRow, ReplicaRow, Store, TaskRow } from './store.js';

const job = (id: string, over: Partial<JobRow> = {}): JobRow => ({
  id, owner: 'key-1', name: 'j', model: 'm'.repeat(64), stageModels: ['m'.repeat(64)], inputs: [{ name: 'x', dataset: 'd'.repeat(64), dtype: 'float32', shape: [4, 2], dataOffset: 128 }],
  items: 4, batchSize: 2, replicas: 2, maxReplicas: 3, rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: true, canaryRate: 0, status: 'running',
  error: null, createdAt: 1000, finishedAt: null, keepReplicaOutputs: false, ...over,
});
const tasks = (jobId: string, n: number): TaskRow[] => Array.from({ length: n }, (_, b) => ({
  id: `${jobId}-t${b}`, jobId, stage: 0, model: 'm'.repeat(64), readyAt: 0, batch: b, itemStart: b * 2, itemEnd: b * 2 + 2, status: 'pending', canary: false, ready: true, wanted: 2, active: 0,
  failures: 0, error: null, doneAt: null, tainted: false,
}));
const replica = (id: string, taskId: string, jobId: string, over: Partial<ReplicaRow> = {}): ReplicaRow => ({
  id, taskId, jobId, workerId: 'w1', volunteerId: 'v1', status: 'leased', workerClass: 'cpu|-|-', single: false, site: null, leasedAt: 10, leaseExpires: 20,
  backend: null, runMs: null, error: null, returnedAt: null, origin: null, ...over,
});

/** Runs the contract against a fresh store from `make()` per test; `reopen` (optional) checks persistence. */
export function storeContract(name: string, make: () => Store, reopen?: (s: Store) => Store): void {
  describe(`Store contract: ${name}`, () => {
    it('keeps API keys by hash', () => {
      const s = make();
      expect(s.countApiKeys()).toBe(0);
      s.insertApiKey({ id: 'k1', keyHash: 'h1', name: 'admin', admin: true, createdAt: 1, revokedAt: null, weight: 1 });
      expect(s.findApiKey('h1')).toEqual({ id: 'k1', keyHash: 'h1', name: 'admin', admin: true, createdAt: 1, revokedAt: null, weight: 1 });
      expect(s.findApiKey('h2')).toBeUndefined();
      expect(s.countApiKeys()).toBe(1);
      s.insertApiKey({ id: 'k2', keyHash: 'h2', name: 'ci', admin: false, createdAt: 2, revokedAt: null, weight: 1 });
      expect(s.setApiKeyWeight('k2', 3)).toBe(true);
      expect(s.setApiKeyWeight('nope', 3)).toBe(false);
      expect(s.findApiKey('h2')!.weight).toBe(3);
      expect(s.revokeApiKey('k2', 5)).toBe(true);
      expect(s.revokeApiKey('k2', 6)).toBe(false);
      expect(s.findApiKey('h2')).toBeUndefined();
      expect(s.listApiKeys().map((k) => [k.id, k.revokedAt])).toEqual([['k1', null], ['k2', 5]]);
      expect(s.countApiKeys()).toBe(1);
    });

    it('keeps models and data sets, idempotently', () => {
      const s = make();
      const m = { hash: 'm'.repeat(64), size: 10, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [], opsets: { 'ai.onnx': 13 }, weightBytes: 0, largestWeight: 0, createdAt: 5 };
      s.putModel(m);
      s.putModel({ ...m, size: 99 });
      expect(s.getModel(m.hash)).toEqual(m);
      const d = { hash: 'd'.repeat(64), dtype: 'int64' as const, shape: [3, 4], dataOffset: 128, size: 96, createdAt: 6 };
      s.putDataset(d);
      expect(s.getDataset(d.hash)).toEqual(d);
    });

    it('gives one volunteer per token', () => {
      const s = make();
      expect(s.volunteerFor('t1', 'v1', 1)).toEqual({ id: 'v1', created: true });
      expect(s.volunteerFor('t1', 'v2', 2)).toEqual({ id: 'v1', created: false });
      expect(s.volunteerFor('t2', 'v3', 3)).toEqual({ id: 'v3', created: true });
    });

    it('creates jobs with their tasks and counts them', () => {
      const s = make();
      s.createJob(job('j1'), tasks('j1', 3));
      expect(s.getJob('j1')).toEqual(job('j1'));
      expect(s.listJobs('key-1').map((j) => j.id)).toEqual(['j1']);
      expect(s.listJobs('key-2')).toEqual([]);
      s.updateTask('j1-t0', { status: 'done', doneAt: 5 });
      s.updateTask('j1-t1', { active: 1 });
      expect(s.taskCounts('j1')).toEqual({ total: 3, done: 1, failed: 0, pending: 1, running: 1 });
      expect(s.hasUnfinishedTasks('j1')).toBe(true);
      s.updateTask('j1-t1', { status: 'done' });
      s.updateTask('j1-t2', { status: 'done' });
      expect(s.hasUnfinishedTasks('j1')).toBe(false);
      s.updateTask('j1-t1', { status: 'pending' });
      s.setJobStatus('j1', 'failed', 9, 'boom');
      expect(s.getJob('j1')).toMatchObject({ status: 'failed', finishedAt: 9, error: 'boom' });
    });

    it('lists assignable tasks in priority order, skipping tasks the volunteer holds', () => {
      const s = make();
      s.createJob(job('low', { createdAt: 1 }), tasks('low', 2));
      s.createJob(job('high', { priority: 5, createdAt: 2 }), tasks('high', 1));
      expect(s.assignableTasks('v1', 10).map((t) => t.id)).toEqual(['high-t0', 'low-t0', 'low-t1']);
      s.insertReplica(replica('r1', 'high-t0', 'high'));
      s.updateTask('high-t0', { active: 1 });
      expect(s.assignableTasks('v1', 10).map((t) => t.id)).toEqual(['low-t0', 'low-t1']);
      expect(s.assignableTasks('v2', 1).map((t) => t.id)).toEqual(['high-t0']);
      s.updateTask('low-t0', { active: 2 });
      s.setJobStatus('high', 'cancelled', 3);
      expect(s.assignableTasks('v2', 10).map((t) => t.id)).toEqual(['low-t1']);
    });

    it('lists running jobs for fair share, and looks for tasks in the jobs and order it is given', () => {
      const s = make();
      s.createJob(job('a', { owner: 'alice', createdAt: 1 }), tasks('a', 2));
      s.createJob(job('b', { owner: 'bob', priority: 3, createdAt: 2 }), tasks('b', 1));
      s.createJob(job('c', { owner: 'bob', createdAt: 3, status: 'completed' }), []);
      // A job's weight is its owner key's (1 for an owner with no key row).
      s.insertApiKey({ id: 'bob', keyHash: 'hb', name: 'bob', admin: false, createdAt: 1, revokedAt: null, weight: 3 });
      expect(s.runningJobs().sort((x, y) => (x.id < y.id ? -1 : 1))).toEqual([
        { id: 'a', owner: 'alice', priority: 0, createdAt: 1, weight: 1 }, { id: 'b', owner: 'bob', priority: 3, createdAt: 2, weight: 3 },
      ]);
      expect(s.assignableTasks('v1', 10, { jobs: ['a', 'b'] }).map((t) => t.id)).toEqual(['a-t0', 'a-t1', 'b-t0']);
      expect(s.assignableTasks('v1', 2, { jobs: ['b'] }).map((t) => t.id)).toEqual(['b-t0']);
    });

    it('keeps replicas, their outputs and the verified results', () => {
      const s = make();
      s.createJob(job('j1'), tasks('j1', 2));
      s.insertReplica(replica('r1', 'j1-t0', 'j1'));
      s.insertReplica(replica('r2', 'j1-t0', 'j1', { workerId: 'w2', volunteerId: 'v2', leaseExpires: 50 }));
      expect(s.leasedBefore(20).map((r) => r.id)).toEqual(['r1']);
      expect(s.leasedByWorker('w2').map((r) => r.id)).toEqual(['r2']);
      expect(s.leasedInJob('j1')).toHaveLength(2);
      s.setReplicaOutputs('r1', new Uint8Array([1, 2, 3]));
      s.updateReplica('r1', { status: 'returned', backend: 'wasm', runMs: 4.5, returnedAt: 15 });
      expect(s.getReplica('r1')).toMatchObject({ status: 'returned', backend: 'wasm', runMs: 4.5, returnedAt: 15 });
      expect(Array.from(s.replicaOutputs('r1')!)).toEqual([1, 2, 3]);
      expect(s.replicasOfTask('j1-t0', 'returned').map((r) => r.id)).toEqual(['r1']);
      expect(s.allLeased().map((r) => r.id)).toEqual(['r2']);
      expect(s.replicaCount('j1')).toBe(2);
      s.setTaskResult('j1-t1', new Uint8Array([9]));
      s.updateTask('j1-t1', { status: 'done' });
      s.setTaskResult('j1-t0', new Uint8Array([8]));
      s.updateTask('j1-t0', { status: 'done' });
      expect([...s.taskResults('j1', 0)].map((r) => [r.batch, Array.from(r.result)])).toEqual([[0, [8]], [1, [9]]]);
      // A result that is a replica's outputs reads as them; cleared, the task has none.
      s.setTaskResultOf('j1-t0', 'r1');
      expect(Array.from(s.taskResult('j1-t0')!)).toEqual([1, 2, 3]);
      expect([...s.taskResults('j1', 0)].map((r) => Array.from(r.result))).toEqual([[1, 2, 3], [9]]);
      s.clearTaskResult('j1-t0');
      expect(s.taskResult('j1-t0')).toBeUndefined();
    });

    it('gives a job\'s tasks and the replicas of its open and known-answer tasks for recovery', () => {
      const s = make();
      s.createJob(job('j1'), [...tasks('j1', 3), { ...tasks('j1', 4)[3]!, canary: true, status: 'done' }]);
      s.updateTask('j1-t1', { status: 'done' });
      s.insertReplica(replica('r0', 'j1-t0', 'j1', { status: 'returned' }));
      s.insertReplica(replica('r1', 'j1-t1', 'j1', { status: 'returned' }));
      s.insertReplica(replica('r3', 'j1-t3', 'j1', { status: 'invalid', volunteerId: 'v9' }));
      expect(s.recoveryTasks('j1').map((t) => [t.id, t.status])).toEqual([['j1-t0', 'pending'], ['j1-t2', 'pending'], ['j1-t3', 'done']]);
      expect(s.recoveryReplicas('j1').map((r) => r.id).sort()).toEqual(['r0', 'r3']);
    });

    it('gives recovery only the tasks and replicas of batches in a range, in every stage', () => {
      const s = make();
      const two = [...tasks('j1', 6), ...tasks('j1', 6).map((t) => ({ ...t, id: `j1-s1-t${t.batch}`, stage: 1, ready: false }))];
      s.createJob(job('j1', { stageModels: ['m'.repeat(64), 'm'.repeat(64)] }), two.map((t) => (t.id === 'j1-t4' ? { ...t, canary: true, status: 'done' as const } : t)));
      s.updateTask('j1-t3', { status: 'done' });
      for (const [id, task] of [['r1', 'j1-t1'], ['r2', 'j1-s1-t2'], ['r3', 'j1-t3'], ['r4', 'j1-t4'], ['r5', 'j1-t5']]) {
        s.insertReplica(replica(id!, task!, 'j1', { status: 'returned' }));
      }
      const range = { from: 2, to: 5 };
      expect(s.recoveryTasks('j1', range).map((t) => t.id)).toEqual(['j1-s1-t2', 'j1-s1-t3', 'j1-s1-t4', 'j1-t2', 'j1-t4']);
      // r3's task is done (not a canary): not for recovery; r1 and r5 are outside the range.
      expect(s.recoveryReplicas('j1', range).map((r) => r.id).sort()).toEqual(['r2', 'r4']);
      expect(s.recoveryTasks('j1', { from: 6, to: 10 })).toEqual([]);
      expect(s.recoveryTasks('j1').length).toBe(11);
    });

    it('adds to a volunteer\'s counters and sets the fields a patch names, in and out of transactions', () => {
      const s = make();
      const v = s.volunteerFor('hash-a', 'v-a', 7).id;
      s.updateVolunteer(v, { valid: 5, credit: 1.5 });
      s.addToVolunteer(v, { valid: 2, credit: 0.25, canaryPassed: 1, errors: 0 }, { streak: 9, team: 'red' });
      expect(s.getVolunteer(v)).toMatchObject({ valid: 7, credit: 1.75, canaryPassed: 1, errors: 0, streak: 9, team: 'red', invalid: 0, createdAt: 7 });
      s.transaction(() => {
        s.addToVolunteer(v, { invalid: 1, credit: -0.75 });
        s.addToVolunteer(v, { invalid: 2 });
        expect(s.getVolunteer(v)).toMatchObject({ invalid: 3, credit: 1 });
      });
      s.addToVolunteer(v, {}, { name: 'Ada' });
      expect(s.getVolunteer(v)).toMatchObject({ valid: 7, invalid: 3, credit: 1, name: 'Ada', streak: 9 });
      expect(() => s.transaction(() => {
        s.addToVolunteer(v, { valid: 100 });
        throw new Error('undone');
      })).toThrow('undone');
      expect(s.getVolunteer(v)!.valid).toBe(7);
    });

    it('rolls a failed transaction back whole', () => {
      const s = make();
      s.createJob(job('j1'), tasks('j1', 1));
      expect(() => s.transaction(() => {
        s.updateTask('j1-t0', { status: 'done' });
        throw new Error('crash in the middle');
      })).toThrow('crash');
      expect(s.getTask('j1-t0')!.status).toBe('pending');
    });

    it('reads back what was rolled back as it was before, for rows read before and during the transaction', () => {
      const s = make();
      s.createJob(job('j1'), tasks('j1', 1));
      s.insertReplica(replica('r1', 'j1-t0', 'j1'));
      const v = s.volunteerFor('hash-a', 'v-a', 1).id;
      const before = { task: s.getTask('j1-t0')!, job: s.getJob('j1')!, replica: s.getReplica('r1')!, volunteer: s.getVolunteer(v)! };
      s.transaction(() => {
        // A nested unit that fails (a savepoint) is undone alone; the outer one goes on and commits.
        expect(() => s.transaction(() => {
          s.updateTask('j1-t0', { status: 'done', active: 1 });
          s.setJobStatus('j1', 'completed', 5);
          s.updateReplica('r1', { status: 'returned', runMs: 3 });
          s.updateVolunteer(v, { credit: 10, valid: 1 });
          expect(s.getTask('j1-t0')!.status).toBe('done');
          throw new Error('refused');
        })).toThrow('refused');
        s.updateVolunteer(v, { name: 'Ada' });
      });
      expect(s.getTask('j1-t0')).toEqual(before.task);
      expect(s.getJob('j1')).toEqual(before.job);
      expect(s.getReplica('r1')).toEqual(before.replica);
      expect(s.getVolunteer(v)).toEqual({ ...before.volunteer, name: 'Ada' });
      // Rows handed out earlier are not changed under their holders by later writes.
      s.updateTask('j1-t0', { active: 2 });
      expect(before.task.active).toBe(0);
    });

    it('deletes a job with its tasks, replicas, their outputs and its results, and nothing of other jobs', () => {
      const s = make();
      s.createJob(job('j1'), tasks('j1', 3));
      s.createJob(job('j2'), tasks('j2', 1));
      s.transaction(() => {
        for (const [id, taskId, jobId] of [['r1', 'j1-t0', 'j1'], ['r2', 'j1-t0', 'j1'], ['r3', 'j2-t0', 'j2']]) {
          s.insertReplica(replica(id!, taskId!, jobId!, { volunteerId: `v-${id}` }));
          s.setReplicaOutputs(id!, new Uint8Array([1, 2]));
          s.updateReplica(id!, { status: 'returned', returnedAt: 11 });
        }
        s.insertReplica(replica('r4', 'j1-t2', 'j1'));
        s.updateTask('j1-t2', { active: 1 });
        s.setTaskResultOf('j1-t0', 'r1');
        s.updateTask('j1-t0', { status: 'done', doneAt: 12 });
        s.setTaskResult('j1-t1', new Uint8Array([7]));
        s.updateTask('j1-t1', { status: 'done', doneAt: 12 });
      });
      expect(s.deleteJob('j1')).toBe(true);
      expect(s.getJob('j1')).toBeUndefined();
      expect(s.listJobs().map((j) => j.id)).toEqual(['j2']);
      expect(s.runningJobs().map((j) => j.id)).toEqual(['j2']);
      for (const t of ['j1-t0', 'j1-t1', 'j1-t2']) {
        expect(s.getTask(t)).toBeUndefined();
        expect(s.taskResult(t)).toBeUndefined();
      }
      for (const r of ['r1', 'r2', 'r4']) {
        expect(s.getReplica(r)).toBeUndefined();
        expect(s.replicaOutputs(r)).toBeUndefined();
      }
      expect(s.replicasOfJob('j1')).toEqual([]);
      expect(s.allLeased()).toEqual([]);
      expect(s.leasedByWorker('w1')).toEqual([]);
      expect(s.assignableTasks('v9', 10).map((t) => t.id)).toEqual(['j2-t0']);
      expect(s.taskCounts('j1')).toEqual({ total: 0, done: 0, failed: 0, pending: 0, running: 0 });
      // The other job is whole.
      expect(s.getReplica('r3')).toMatchObject({ status: 'returned' });
      expect(Array.from(s.replicaOutputs('r3')!)).toEqual([1, 2]);
      expect(s.deleteJob('j1')).toBe(false);
    });

    it('drops the outputs no result refers to once a job has ended, unless the job keeps them', () => {
      const s = make();
      s.createJob(job('j1'), tasks('j1', 1));
      s.createJob(job('keep', { keepReplicaOutputs: true }), tasks('keep', 1));
      expect(s.getJob('keep')!.keepReplicaOutputs).toBe(true);
      expect(s.getJob('j1')!.keepReplicaOutputs).toBe(false);
      s.transaction(() => {
        for (const [id, taskId, jobId] of [['r1', 'j1-t0', 'j1'], ['r2', 'j1-t0', 'j1'], ['k1', 'keep-t0', 'keep'], ['k2', 'keep-t0', 'keep']]) {
          s.insertReplica(replica(id!, taskId!, jobId!, { volunteerId: `v-${id}` }));
          s.setReplicaOutputs(id!, new Uint8Array([id === 'r1' || id === 'k1' ? 1 : 2, 0, 0]));
          s.updateReplica(id!, { status: 'returned', returnedAt: 11 });
        }
        s.updateTask('j1-t0', { active: 2 });
        s.setTaskResultOf('j1-t0', 'r1');
        s.updateTask('j1-t0', { status: 'done', doneAt: 12 });
        s.setTaskResultOf('keep-t0', 'k1');
        s.updateTask('keep-t0', { status: 'done', doneAt: 12 });
      });
      expect(s.jobBytes('j1')).toEqual({ outputs: 6, results: 0 });
      // While the job runs, a reopened task is decided again from its other replicas: nothing is dropped.
      expect(s.jobsToPrune()).toEqual([]);
      expect(s.pruneReplicaOutputs('j1')).toBe(0);
      expect(s.replicaOutputs('r2')).toBeDefined();
      s.setJobStatus('j1', 'completed', 20);
      s.setJobStatus('keep', 'completed', 21);
      expect(s.jobsToPrune()).toEqual(['j1']);
      expect(s.pruneReplicaOutputs('j1')).toBe(1);
      expect(s.replicaOutputs('r2')).toBeUndefined();
      expect(Array.from(s.replicaOutputs('r1')!)).toEqual([1, 0, 0]);
      expect(Array.from(s.taskResult('j1-t0')!)).toEqual([1, 0, 0]);
      expect(s.jobBytes('j1')).toEqual({ outputs: 3, results: 0 });
      expect(s.jobsToPrune()).toEqual([]);
      expect(s.replicaOutputs('k2')).toBeDefined();
      // A job that runs again (a rerun) and ends again has outputs to drop again.
      s.setJobStatus('j1', 'running', 30);
      s.setJobStatus('j1', 'completed', 31);
      expect(s.jobsToPrune()).toEqual(['j1']);
    });

    it('lists ended jobs by the time they finished, and counts the result bytes of its own a job holds', () => {
      const s = make();
      s.createJob(job('a'), tasks('a', 2));
      s.createJob(job('b'), []);
      s.createJob(job('c'), []);
      s.setJobStatus('a', 'completed', 50);
      s.setJobStatus('b', 'cancelled', 40);
      expect(s.jobsFinishedBefore(39)).toEqual([]);
      expect(s.jobsFinishedBefore(50)).toEqual(['b', 'a']);
      s.setTaskResult('a-t0', new Uint8Array(10));
      s.setTaskResult('a-t1', new Uint8Array(5));
      expect(s.jobBytes('a')).toEqual({ outputs: 0, results: 15 });
      expect(s.jobBytes('c')).toEqual({ outputs: 0, results: 0 });
    });

    it('notes models and data sets no job refers to, and removes their rows once noted long enough', () => {
      const s = make();
      const model = (hash: string) => ({ hash, size: 10, inputs: [], outputs: [], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: 1 });
      const dataset = (hash: string) => ({ hash, dtype: 'float32' as const, shape: [4, 2], dataOffset: 128, size: 32, createdAt: 1 });
      const [m, stage, unused, d, e] = ['m', 's', 'u', 'd', 'e'].map((c) => c.repeat(64)) as [string, string, string, string, string];
      for (const h of [m, stage, unused]) s.putModel(model(h));
      for (const h of [d, e]) s.putDataset(dataset(h));
      s.createJob(job('j1'), tasks('j1', 1));
      s.createJob(job('j2', { stageModels: [stage], status: 'completed' }), []);
      expect(Object.fromEntries(s.blobUsers([m, stage, unused, d, e]))).toEqual({ [m]: 2, [stage]: 1, [unused]: 0, [d]: 2, [e]: 0 });
      s.markUnusedBlobs(100);
      s.markUnusedBlobs(150); // noted already: keeps its first time
      expect(s.removeUnusedBlobs(99)).toEqual({ models: [], datasets: [] });
      expect(s.removeUnusedBlobs(100)).toEqual({ models: [unused], datasets: [e] });
      expect(s.getModel(unused)).toBeUndefined();
      expect(s.getDataset(e)).toBeUndefined();
      // A stage model is unused once its job is gone; one used again before the grace ends is kept.
      expect(s.deleteJob('j2')).toBe(true);
      s.markUnusedBlobs(200);
      s.createJob(job('j3', { model: stage, stageModels: [stage] }), []);
      expect(s.removeUnusedBlobs(1000)).toEqual({ models: [], datasets: [] });
      expect(s.getModel(stage)).toBeDefined();
      s.compact();
    });

    if (reopen) {
      it('keeps everything committed across a reopen', () => {
        const s = make();
        s.createJob(job('j1'), tasks('j1', 2));
        s.insertReplica(replica('r1', 'j1-t0', 'j1'));
        const again = reopen(s);
        expect(again.getJob('j1')).toEqual(job('j1'));
        expect(again.allLeased().map((r) => r.id)).toEqual(['r1']);
      });
    }
  });
}
