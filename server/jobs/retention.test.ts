import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { FakeClock } from '../scheduler/clock.js';
import { LiveStore } from '../state/live-store.js';
import { BlobStore } from '../store/blob-store.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import { Retention, type RetentionSettings, retentionSettingsSchema } from './retention.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-retention-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

function setup(settings: Partial<RetentionSettings> = {}) {
  const clock = new FakeClock();
  const store = new LiveStore(new SqliteStore(':memory:'));
  const blobs = new BlobStore(path.join(dir, `b${++n}`));
  const retention = new Retention({ store, blobs, clock, log: pino({ level: 'silent' }), settings: retentionSettingsSchema.parse(settings) });
  const model = (seed: number) => {
    const hash = blobs.put(new Uint8Array([1, 2, seed]));
    store.putModel({ hash, size: 3, inputs: [], outputs: [], opsets: {}, weightBytes: 0, largestWeight: 0, createdAt: clock.now() });
    return hash;
  };
  const dataset = (seed: number) => {
    const hash = blobs.put(new Uint8Array([3, 4, seed]));
    store.putDataset({ hash, dtype: 'float32', shape: [2, 2], dataOffset: 128, size: 16, createdAt: clock.now() });
    return hash;
  };
  const job = (id: string, m: string, d: string, over: Partial<JobRow> = {}): JobRow => ({
    id, owner: 'k', name: null, model: m, stageModels: [m], inputs: [{ name: 'x', dataset: d, dtype: 'float32', shape: [2, 2], dataOffset: 128 }],
    items: 2, batchSize: 1, replicas: 2, maxReplicas: 3, rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0,
    status: 'running', error: null, createdAt: clock.now(), finishedAt: null, ...over,
  });
  const tasks = (jobId: string): TaskRow[] => [0, 1].map((b) => ({
    id: `${jobId}-t${b}`, jobId, stage: 0, model: 'm', batch: b, itemStart: b, itemEnd: b + 1, status: 'pending', canary: false, ready: true,
    readyAt: 0, wanted: 2, active: 0, failures: 0, error: null, doneAt: null, tainted: false,
  }));
  /** Two volunteers agree on each task; the first one's outputs become the result. */
  const verify = (jobId: string) => store.transaction(() => {
    for (const t of tasks(jobId)) {
      for (const v of ['a', 'b']) {
        const id = `${t.id}-${v}`;
        store.insertReplica({
          id, taskId: t.id, jobId, workerId: `w${v}`, volunteerId: v, status: 'leased', workerClass: '-', single: false, site: null,
          leasedAt: clock.now(), leaseExpires: clock.now() + 1000, backend: null, runMs: null, error: null, returnedAt: null, origin: null,
        });
        store.setReplicaOutputs(id, new Uint8Array(100).fill(t.batch));
        store.updateReplica(id, { status: 'returned', returnedAt: clock.now() });
      }
      store.setTaskResultOf(t.id, `${t.id}-a`);
      store.updateTask(t.id, { status: 'done', doneAt: clock.now() });
    }
  });
  return { clock, store, blobs, retention, model, dataset, job, tasks, verify };
}

describe('Retention', () => {
  it('deletes finished jobs retainDays after they ended, never running ones, and none when retainDays is unset', () => {
    const s = setup({ retainDays: 3 });
    const m = s.model(1);
    const d = s.dataset(1);
    for (const id of ['old', 'cancelled', 'running']) s.store.createJob(s.job(id, m, d), s.tasks(id));
    s.store.setJobStatus('old', 'completed', s.clock.now());
    s.clock.advance(2 * DAY);
    s.store.setJobStatus('cancelled', 'cancelled', s.clock.now());
    expect(s.retention.sweep().deletedJobs).toEqual([]);
    s.clock.advance(DAY - 1);
    expect(s.retention.sweep().deletedJobs).toEqual([]);
    s.clock.advance(1);
    expect(s.retention.sweep().deletedJobs).toEqual(['old']);
    expect(s.store.getJob('old')).toBeUndefined();
    expect(s.store.getTask('old-t0')).toBeUndefined();
    s.clock.advance(100 * DAY);
    expect(s.retention.sweep().deletedJobs).toEqual(['cancelled']);
    expect(s.store.getJob('running')).toBeDefined();

    const keep = setup();
    keep.store.createJob(keep.job('j', keep.model(1), keep.dataset(1)), []);
    keep.store.setJobStatus('j', 'completed', keep.clock.now());
    keep.clock.advance(1000 * DAY);
    expect(keep.retention.sweep().deletedJobs).toEqual([]);
    expect(keep.store.getJob('j')).toBeDefined();
  });

  it('drops the outputs no result refers to once the job has ended, unless the job keeps them', () => {
    const s = setup();
    const m = s.model(1);
    const d = s.dataset(1);
    s.store.createJob(s.job('j', m, d), s.tasks('j'));
    s.store.createJob(s.job('keep', m, d, { keepReplicaOutputs: true }), s.tasks('keep'));
    s.verify('j');
    s.verify('keep');
    // Verified, but the job runs: a reopened task would be decided again from these.
    expect(s.retention.sweep()).toMatchObject({ prunedJobs: [], droppedOutputs: 0 });
    expect(s.store.replicaOutputs('j-t0-b')).toBeDefined();
    s.store.setJobStatus('j', 'completed', s.clock.now());
    s.store.setJobStatus('keep', 'completed', s.clock.now());
    expect(s.retention.sweep()).toMatchObject({ prunedJobs: ['j'], droppedOutputs: 2 });
    expect(s.store.replicaOutputs('j-t0-b')).toBeUndefined();
    expect(s.store.replicaOutputs('j-t1-b')).toBeUndefined();
    expect(Array.from(s.store.taskResult('j-t1')!)).toEqual(new Array(100).fill(1));
    expect(s.store.jobBytes('j')).toEqual({ outputs: 200, results: 0 });
    expect(s.store.jobBytes('keep')).toEqual({ outputs: 400, results: 0 });
    expect(s.retention.sweep()).toMatchObject({ prunedJobs: [], droppedOutputs: 0 });
  });

  it('removes models and data sets, rows and files, once no job has referred to them for the grace period', () => {
    const s = setup({ blobGraceMs: HOUR });
    const used = s.model(1);
    const usedData = s.dataset(1);
    const orphan = s.model(2);
    const orphanData = s.dataset(2);
    s.store.createJob(s.job('j', used, usedData), s.tasks('j'));
    expect(s.retention.sweep()).toMatchObject({ removedModels: [], removedDatasets: [] });
    s.clock.advance(HOUR - 1);
    expect(s.retention.sweep()).toMatchObject({ removedModels: [], removedDatasets: [] });
    expect(s.blobs.has(orphan)).toBe(true);
    s.clock.advance(1);
    expect(s.retention.sweep()).toMatchObject({ removedModels: [orphan], removedDatasets: [orphanData] });
    expect(s.blobs.has(orphan)).toBe(false);
    expect(s.blobs.has(orphanData)).toBe(false);
    expect(s.store.getModel(orphan)).toBeUndefined();
    expect(s.store.getDataset(orphanData)).toBeUndefined();
    // A deleted job's model and data set go a grace period after the delete.
    expect(s.store.deleteJob('j')).toBe(true);
    s.clock.advance(10 * HOUR);
    expect(s.retention.sweep()).toMatchObject({ removedModels: [], removedDatasets: [] });
    expect(s.blobs.has(used)).toBe(true);
    s.clock.advance(HOUR);
    expect(s.retention.sweep()).toMatchObject({ removedModels: [used], removedDatasets: [usedData] });
    expect(s.blobs.has(used)).toBe(false);
  });

  it('reads its settings as the server config does: days and milliseconds from strings, a day of grace by default', () => {
    expect(retentionSettingsSchema.parse({})).toEqual({ retainDays: undefined, blobGraceMs: DAY, retentionSweepMs: 60_000 });
    expect(retentionSettingsSchema.parse({ retainDays: '7', blobGraceMs: '5' })).toMatchObject({ retainDays: 7, blobGraceMs: 5 });
    expect(() => retentionSettingsSchema.parse({ retainDays: '-1' })).toThrow();
  });
});
