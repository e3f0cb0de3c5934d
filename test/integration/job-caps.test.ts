/**
 * A job's size is bounded before it is made: items and tasks per job are capped (400 naming the cap and
 * its setting), data sets whose items hold no bytes are refused, and so are models whose inputs have a
 * fixed dimension below 1 (they made jobs of batch -1 and no tasks that ran forever).
 */
import path from 'node:path';
import { create } from '@bufbuild/protobuf';
import { ValueInfoProtoSchema } from 'onnx-buf';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { npyHeader, writeNpy } from '../../shared/npy.js';
import { decodeModel, encodeModel } from '../../server/onnx/onnx-codec.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { T, tensorInfo } from '../helpers/onnx-build.js';
import { type TestServer, startTestServer } from '../helpers/server.js';

/** The MLP with input x's dimensions declared as given: numbers fixed, names symbolic. */
function mlpWithInputDims(dims: (number | string)[]): Uint8Array {
  const model = decodeModel(mlpModel());
  model.graph!.input[0] = create(ValueInfoProtoSchema, tensorInfo('x', T.FLOAT, dims));
  return encodeModel(model);
}

describe('job caps', () => {
  let server: TestServer;
  let api: ApiClient;
  let model: string;

  beforeAll(async () => {
    server = await startTestServer({ config: { maxJobItems: 40, maxJobTasks: 6 } });
    api = new ApiClient(server.url, server.apiKey);
    model = (await api.uploadModel(mlpModel())).hash;
  });
  afterAll(async () => server?.close());

  it('refuses a data set whose items hold no bytes, however many it claims', async () => {
    for (const shape of [[1_000_000_000_000, 0], [100_000, 0], [4, 0, 3]]) {
      const npy = npyHeader('float32', shape);
      expect(npy.byteLength).toBeLessThanOrEqual(128);
      await expect(api.uploadDataset(npy)).rejects.toMatchObject({
        status: 400, code: 'INVALID_PAYLOAD', message: expect.stringContaining('zero dimension'),
      });
    }
  });

  it('refuses a job over the item cap or the task cap with a 400 naming the cap and its setting', async () => {
    const many = await api.uploadDataset(writeNpy('float32', [41, 4], floatData(1, 164)));
    await expect(api.createJob({ model, inputs: { x: many.hash }, batchSize: 41 })).rejects.toMatchObject({
      status: 400, code: 'INVALID_PAYLOAD', message: expect.stringMatching(/41 items.*at most 40 \(TABGRID_MAX_JOB_ITEMS\)/),
    });
    const some = await api.uploadDataset(writeNpy('float32', [24, 4], floatData(2, 96)));
    await expect(api.createJob({ model, inputs: { x: some.hash }, batchSize: 1 })).rejects.toMatchObject({
      status: 400, code: 'INVALID_PAYLOAD', message: expect.stringMatching(/24 tasks.*at most 6 \(TABGRID_MAX_JOB_TASKS\)/),
    });
    // Every stage's tasks count: 2 stages of 4 batches are 8 tasks, refused before the model is split.
    await expect(api.createJob({ model, inputs: { x: some.hash }, batchSize: 6, stages: 2 })).rejects.toMatchObject({
      status: 400, message: expect.stringContaining('8 tasks'),
    });
    const ok = await api.createJob({ model, inputs: { x: some.hash }, batchSize: 4 });
    expect(ok.tasks.total).toBe(6);
    await api.cancelJob(ok.id);
    expect((await api.listJobs()).map((j) => j.id)).toEqual([ok.id]);
  });

  it('refuses at job creation a zero-size data set stored before uploads refused them', async () => {
    // Both axes symbolic, so a per-item shape of [0] fits what the model declares.
    const open = (await api.uploadModel(mlpWithInputDims(['n', 'm']))).hash;
    const hash = 'e'.repeat(64);
    // The row an older server would have kept, written through a second connection to the same database.
    const older = new SqliteStore(path.join(server.dataDir, 'tabgrid.sqlite'));
    older.putDataset({ hash, dtype: 'float32', shape: [1000, 0], dataOffset: 128, size: 0, createdAt: 0 });
    older.close();
    await expect(api.createJob({ model: open, inputs: { x: hash }, batchSize: 1 })).rejects.toMatchObject({
      status: 400, code: 'INVALID_PAYLOAD', message: expect.stringContaining('zero dimension'),
    });
  });
});

describe('model inputs with fixed dimensions below 1', () => {
  let server: TestServer;
  let api: ApiClient;

  beforeAll(async () => {
    server = await startTestServer();
    api = new ApiClient(server.url, server.apiKey);
  });
  afterAll(async () => server?.close());

  it('refuses them at upload with INVALID_MODEL and the reason', async () => {
    for (const dims of [[-1, 4], [0, 4], [2, -4]]) {
      await expect(api.uploadModel(mlpWithInputDims(dims))).rejects.toMatchObject({
        status: 400, code: 'INVALID_MODEL', message: expect.stringMatching(/input x has shape .*fixed at -?\d.*must be 1 or more/),
      });
    }
    // One stored by an older server is refused at job creation: it made a job of batch -1 and no tasks.
    const older = new SqliteStore(path.join(server.dataDir, 'tabgrid.sqlite'));
    const stored = 'd'.repeat(64);
    older.putModel({
      hash: stored, size: 1, inputs: [{ name: 'x', dtype: 'float32', shape: [-1, 4] }], outputs: [{ name: 'y', dtype: 'float32', shape: [-1, 3] }],
      opsets: { 'ai.onnx': 13 }, weightBytes: 0, largestWeight: 0, createdAt: 0,
    });
    older.close();
    const data = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(4, 16)));
    await expect(api.createJob({ model: stored, inputs: { x: data.hash } })).rejects.toMatchObject({
      status: 400, code: 'INVALID_MODEL', message: expect.stringContaining('fixed at -1'),
    });
    // A fixed batch of 2 is fine: jobs then run in batches of exactly 2.
    const m = await api.uploadModel(mlpWithInputDims([2, 4]));
    const ds = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(3, 16)));
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 16 });
    expect(job).toMatchObject({ batchSize: 2, tasks: { total: 2 } });
    await api.cancelJob(job.id);
  });
});
