/**
 * The working network end to end over real sockets: a server on port 0, headless workers, the REST API.
 */
import fs from 'node:fs';
import { io as connect } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import { OCR_DET_MODEL, floatData, int64Model, mlpModel, twoInputModel, unknownOpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { npyTensor, reference, startWorkers } from '../helpers/workers.js';

const tol = { rtol: 1e-3, atol: 1e-4 };

describe('the working network', () => {
  let server: TestServer;
  let api: ApiClient;

  beforeAll(async () => {
    server = await startTestServer();
    api = new ApiClient(server.url, server.apiKey);
  });
  afterAll(async () => { await server?.close(); });

  async function run(model: Uint8Array, inputs: Record<string, Uint8Array>, opts: { batch: number; replicas?: number }) {
    const m = await api.uploadModel(model);
    const ids: Record<string, string> = {};
    for (const [name, npy] of Object.entries(inputs)) ids[name] = (await api.uploadDataset(npy)).hash;
    const job = await api.createJob({ model: m.hash, inputs: ids, batchSize: opts.batch, replicas: opts.replicas ?? 2 });
    const end = await api.waitJob(job.id, undefined, 50);
    return { job: end, outputs: m.outputs };
  }

  async function expectMatchesReference(model: Uint8Array, inputs: Record<string, Uint8Array>, jobId: string, names: string[]) {
    const want = await reference(model, inputs);
    for (const name of names) {
      const got = npyTensor(name, await api.result(jobId, name));
      expect(got.dims).toEqual(want[name].dims);
      expect(compareOutputs([got], [want[name]], tol)).toEqual({ verdict: 'agree' });
    }
  }

  it('runs a job through two headless workers and returns onnxruntime-node\'s outputs in item order', async () => {
    const workers = startWorkers(server.url, 2);
    try {
      const model = mlpModel(4, 16, 3, 42);
      const x = writeNpy('float32', [37, 4], floatData(5, 37 * 4));
      const { job } = await run(model, { x }, { batch: 5 });
      expect(job).toMatchObject({ status: 'completed', items: 37, tasks: { total: 8, done: 8, failed: 0 } });
      // Both workers are new (nobody could vouch for them): each task is settled by one replica and the server's own
      // run, not a second replica that could not count anyway.
      expect(job.replicasIssued).toBeGreaterThanOrEqual(8);
      await expectMatchesReference(model, { x }, job.id, ['y']);
      // Each of the two distinct volunteers computed replicas.
      expect(workers.loops.every((l) => l.status.tasksDone > 0)).toBe(true);
    } finally {
      await workers.stop();
    }
  });

  it('handles models with several inputs and outputs, and int64 data', async () => {
    const workers = startWorkers(server.url, 2);
    try {
      const a = writeNpy('float32', [6, 4], floatData(1, 24));
      const b = writeNpy('float32', [6, 4], floatData(2, 24));
      const two = await run(twoInputModel(), { a, b }, { batch: 4 });
      expect(two.job.status).toBe('completed');
      await expectMatchesReference(twoInputModel(), { a, b }, two.job.id, ['sum', 'prod']);

      const ids = writeNpy('int64', [3, 5], new Uint8Array(BigInt64Array.from({ length: 15 }, (_, i) => BigInt(i - 7)).buffer));
      const i64 = await run(int64Model(), { ids }, { batch: 2 });
      expect(i64.job.status).toBe('completed');
      const got = npyTensor('y', await api.result(i64.job.id, 'y'));
      expect(Array.from(new BigInt64Array(got.data.slice().buffer))).toEqual(Array.from({ length: 15 }, (_, i) => BigInt((i - 7) * 3)));
    } finally {
      await workers.stop();
    }
  });

  it('runs PP-OCRv4 detection (a real CNN) verified by two replicas', async () => {
    const workers = startWorkers(server.url, 2);
    try {
      const model = new Uint8Array(fs.readFileSync(OCR_DET_MODEL));
      const x = writeNpy('float32', [3, 3, 64, 64], floatData(9, 3 * 3 * 64 * 64));
      const { job } = await run(model, { x }, { batch: 2 });
      expect(job.status).toBe('completed');
      await expectMatchesReference(model, { x }, job.id, [job.outputs[0].name]);
    } finally {
      await workers.stop();
    }
  });

  it('reissues the task of a worker that disconnects mid-task', async () => {
    // A raw client takes a task and vanishes without answering.
    const quitter = connect(server.url, { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve) => quitter.on('connect', () => resolve()));
    await quitter.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] });
    const model = mlpModel();
    const x = writeNpy('float32', [4, 4], floatData(3, 16));
    const m = await api.uploadModel(model);
    const ds = await api.uploadDataset(x);
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 4, replicas: 1 });
    const taken = await quitter.emitWithAck('work:request', { slots: 1 }) as { ok: true; tasks: TaskAssignment[] };
    expect(taken.tasks).toHaveLength(1);
    expect((await api.getJob(job.id)).tasks.running).toBe(1);
    quitter.disconnect();
    const workers = startWorkers(server.url, 1);
    try {
      const end = await api.waitJob(job.id, undefined, 50);
      expect(end.status).toBe('completed');
      expect(end.replicasIssued).toBe(2);
      await expectMatchesReference(model, { x }, job.id, ['y']);
    } finally {
      await workers.stop();
    }
  });

  it('says a worker left only once the scheduler let it go, so a job made then leases it nothing', async () => {
    await expect.poll(() => server.app.workers.size).toBe(0);
    // A raw client waits for work (the server remembers its 2 free slots), then vanishes.
    const leaver = connect(server.url, { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve) => leaver.on('connect', () => resolve()));
    const { workerId } = await leaver.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] }) as { workerId: string };
    expect(await leaver.emitWithAck('work:request', { slots: 2 })).toEqual({ ok: true, tasks: [] });
    const stillScheduled = new Promise<boolean>((resolve) => {
      const onLeft = (id: string) => {
        if (id !== workerId) return;
        server.app.events.off('worker:left', onLeft);
        resolve(server.app.workers.has(id));
      };
      server.app.events.on('worker:left', onLeft);
    });
    leaver.disconnect();
    expect(await stillScheduled).toBe(false);
    const m = await api.uploadModel(mlpModel());
    const ds = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(4, 16)));
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 2, replicas: 1 });
    expect(job.replicasIssued).toBe(0);
    await api.cancelJob(job.id);
  });

  it('refuses a broken model with the reason, and changes nothing', async () => {
    await expect(api.uploadModel(new TextEncoder().encode('definitely not onnx'))).rejects.toMatchObject({ status: 400, code: 'INVALID_MODEL' });
    await expect(api.uploadModel(unknownOpModel())).rejects.toThrow(/onnxruntime cannot load the model/);
  });

  it('refuses data that does not fit the model, naming the input and both shapes', async () => {
    const m = await api.uploadModel(mlpModel());
    const wrong = await api.uploadDataset(writeNpy('float32', [8, 5], new Uint8Array(8 * 5 * 4)));
    await expect(api.createJob({ model: m.hash, inputs: { x: wrong.hash } }))
      .rejects.toThrow('input x: the data has shape [8, 5] (first axis = items), the model takes [batch, 4]');
    const ints = await api.uploadDataset(writeNpy('int32', [8, 4], new Uint8Array(8 * 4 * 4)));
    await expect(api.createJob({ model: m.hash, inputs: { x: ints.hash } })).rejects.toThrow('input x: the data is int32, the model takes float32');
    await expect(api.createJob({ model: m.hash, inputs: { nope: ints.hash } })).rejects.toThrow(/no input named nope; its inputs are: x/);
    await expect(api.uploadDataset(new Uint8Array([1, 2, 3]))).rejects.toMatchObject({ status: 400, code: 'INVALID_PAYLOAD' });
    await expect(api.createJob({ model: m.hash, inputs: { x: wrong.hash }, batchSize: -1 })).rejects.toMatchObject({ status: 400 });
    expect((await api.listJobs()).every((j) => j.items !== 8)).toBe(true);
  });

  it('needs an API key for the researchers\' API, and none for the volunteer page\'s model bytes', async () => {
    const anon = new ApiClient(server.url);
    await expect(anon.listJobs()).rejects.toMatchObject({ status: 401 });
    await expect(new ApiClient(server.url, 'tg_wrong').listJobs()).rejects.toMatchObject({ status: 401 });
    const m = await api.uploadModel(mlpModel());
    const res = await fetch(`${server.url}/models/${m.hash}`);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('immutable');
    expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(mlpModel()))).toBe(true);
    expect((await fetch(`${server.url}/models/${'0'.repeat(64)}`)).status).toBe(404);
  });

  it('keeps each researcher key to its own jobs', async () => {
    const res = await fetch(`${server.url}/api/v1/keys`, {
      method: 'POST', headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'alice' }),
    });
    const { key } = await res.json() as { key: string };
    const alice = new ApiClient(server.url, key);
    expect(await alice.listJobs()).toEqual([]);
    const adminJobs = await api.listJobs();
    expect(adminJobs.length).toBeGreaterThan(0);
    await expect(alice.getJob(adminJobs[0].id)).rejects.toMatchObject({ status: 404 });
  });
});

describe('large data', () => {
  it('streams a data set upload to disk and refuses one over the cap with 413, keeping nothing', async () => {
    const server = await startTestServer({ config: { maxDatasetBytes: 64 * 1024 } });
    try {
      const api = new ApiClient(server.url, server.apiKey);
      const ok = await api.uploadDataset(writeNpy('float32', [1000, 4], floatData(1, 4000)));
      expect(ok).toMatchObject({ dtype: 'float32', shape: [1000, 4] });
      await expect(api.uploadDataset(writeNpy('float32', [10_000, 4], floatData(1, 40_000)))).rejects.toMatchObject({ status: 413, code: 'TOO_LARGE' });
      // A chunked upload (no content-length) over the cap is refused the same way once it has arrived
      // (far over the cap, twice or more, the connection is cut instead).
      const big = writeNpy('float32', [6_000, 4], floatData(2, 24_000));
      const stream = new ReadableStream({ start(c) { for (let i = 0; i < big.byteLength; i += 8192) c.enqueue(big.subarray(i, i + 8192)); c.close(); } });
      const res = await fetch(`${server.url}/api/v1/datasets`, {
        method: 'POST', body: stream, duplex: 'half', headers: { authorization: `Bearer ${server.apiKey}` },
      } as RequestInit);
      expect(res.status).toBe(413);
      const leftovers = fs.readdirSync(`${server.dataDir}/blobs`).filter((f) => f.endsWith('.tmp'));
      expect(leftovers).toEqual([]);
      await expect(api.uploadDataset(new Uint8Array(100))).rejects.toMatchObject({ status: 400, message: expect.stringContaining('bad .npy') });
    } finally {
      await server.close();
    }
  });
});
