/**
 * Pipeline jobs: a model split into stages that different workers run, verified stage by stage, giving the
 * whole model's outputs.
 */
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { OCR_DET_MODEL, floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { npyTensor, reference, startWorkers } from '../helpers/workers.js';

describe('pipeline jobs', () => {
  let server: TestServer;
  let api: ApiClient;

  beforeAll(async () => {
    server = await startTestServer({ config: { shardAffinityMs: 0 } });
    api = new ApiClient(server.url, server.apiKey);
  });
  afterAll(async () => { await server?.close(); });

  it('runs PP-OCRv4 detection as three stages on different workers and gives the whole model\'s outputs', async () => {
    const workers = startWorkers(server.url, 3);
    try {
      const model = new Uint8Array(fs.readFileSync(OCR_DET_MODEL));
      const x = writeNpy('float32', [4, 3, 64, 64], floatData(17, 4 * 3 * 64 * 64));
      const m = await api.uploadModel(model);
      const ds = await api.uploadDataset(x);
      const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 2, stages: 3 });
      expect(job.stages.map((s) => s.total)).toEqual([4, 4, 4]);
      expect(new Set(job.stages.map((s) => s.model)).size).toBe(3);
      const end = await api.waitJob(job.id, undefined, 100);
      expect(end.status).toBe('completed');
      expect(end.stages.every((s) => s.done === 4)).toBe(true);
      const want = await reference(model, { x });
      const name = m.outputs[0].name;
      const got = npyTensor(name, await api.result(job.id, name));
      expect(got.dims).toEqual(want[name].dims);
      expect(compareOutputs([got], [want[name]], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
      // Shards are served like models: immutable, content-addressed.
      const res = await fetch(`${server.url}/models/${job.stages[1].model}`);
      expect(res.headers.get('cache-control')).toContain('immutable');
    } finally {
      await workers.stop();
    }
  });

  it('cuts where the researcher names, and refuses an impossible split with the reason', async () => {
    const workers = startWorkers(server.url, 2);
    try {
      const model = mlpModel(4, 8, 3, 3);
      const x = writeNpy('float32', [6, 4], floatData(2, 24));
      const m = await api.uploadModel(model);
      const ds = await api.uploadDataset(x);
      const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 3, replicas: 1, cuts: ['h2'] });
      expect(job.stages).toHaveLength(2);
      const end = await api.waitJob(job.id, undefined, 50);
      expect(end.status).toBe('completed');
      const want = await reference(model, { x });
      expect(compareOutputs([npyTensor('y', await api.result(job.id, 'y'))], [want.y], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
      await expect(api.createJob({ model: m.hash, inputs: { x: ds.hash }, stages: 9 })).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/stages/) });
      await expect(api.createJob({ model: m.hash, inputs: { x: ds.hash }, cuts: ['no_such_tensor'] })).rejects.toMatchObject({ status: 400, message: expect.stringContaining('no_such_tensor') });
    } finally {
      await workers.stop();
    }
  });
});
