import { describe, expect, it } from 'vitest';
import type { CreateJob } from '../../shared/protocol.js';
import type { ModelService } from '../onnx/model-service.js';
import { FakeClock } from '../scheduler/clock.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { JobRow, TaskRow } from '../store/store.js';
import type { DatasetService } from './datasets.js';
import { JobService, MAX_CREATIONS_PER_KEY } from './job-service.js';

/** A store whose job creations commit on their own time, once `land()` is called: as on a networked engine. */
function slowStore() {
  const store = new SqliteStore(':memory:');
  const waiting: (() => void)[] = [];
  store.putModel({
    hash: 'm', size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: ['n', 2] }], outputs: [{ name: 'y', dtype: 'float32', shape: ['n', 2] }],
    opsets: { '': 13 }, weightBytes: 0, largestWeight: 0, createdAt: 0,
  });
  store.putDataset({ hash: 'd', dtype: 'float32', shape: [8, 2], dataOffset: 128, size: 192, createdAt: 0 });
  const createJobAsync = (job: JobRow, tasks: TaskRow[]) => new Promise<void>((resolve) => waiting.push(() => { store.createJob(job, tasks); resolve(); }));
  return { store: Object.assign(store, { createJobAsync }), land: () => { for (const w of waiting.splice(0)) w(); } };
}

const request: CreateJob = {
  model: 'm', inputs: { x: 'd' }, batchSize: 2, replicas: 1, stages: 1, rtol: 1e-3, atol: 1e-4, priority: 0, adaptive: false, canaryRate: 0,
} as CreateJob;

describe('JobService.create', () => {
  it('refuses a key one creation more than the cap while its own are under way, and takes it once they have landed', async () => {
    const { store, land } = slowStore();
    const jobs = new JobService({
      store, clock: new FakeClock(), scheduler: { jobCreated: () => {}, cancelJob: () => {}, rerunTainted: () => 0 } as never,
      canaries: { compute: () => {} }, models: {} as ModelService, datasets: {} as DatasetService,
    });
    const limits = { maxItems: 1_000, maxTasks: 1_000 };
    const under = Array.from({ length: MAX_CREATIONS_PER_KEY }, () => jobs.create('alice', request, limits));
    await expect(jobs.create('alice', request, limits)).rejects.toMatchObject({ code: 'RATE_LIMITED' });
    // Another key is not held up by alice's.
    const bob = jobs.create('bob', request, limits);
    land();
    const made = await Promise.all([...under, bob]);
    expect(made.map((j) => j.owner)).toEqual([...under.map(() => 'alice'), 'bob']);
    // Landed: alice may create again.
    const again = jobs.create('alice', request, limits);
    land();
    expect((await again).status).toBe('running');
    expect(store.listJobs('alice')).toHaveLength(MAX_CREATIONS_PER_KEY + 1);
  });
});
