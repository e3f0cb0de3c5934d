/**
 * The dispatch path over a real socket: a result that asks for `next` gets its successor on its ack (one
 * round trip per task), the REST API counts a result by the time its ack arrives, and results that arrive
 * in the same turn are committed together yet judged one by one.
 */
import * as ort from 'onnxruntime-node';
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { writeNpy } from '../../shared/npy.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import { asBytes } from '../../shared/tensor.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';

type Ack = { ok: boolean; accepted?: boolean; tasks?: TaskAssignment[]; error?: { code: string; message: string } };

describe('dispatch protocol', () => {
  let server: TestServer;
  let api: ApiClient;
  let socket: Socket;
  let session: ort.InferenceSession;
  const model = mlpModel();

  beforeAll(async () => {
    server = await startTestServer();
    api = new ApiClient(server.url, server.apiKey);
    session = await ort.InferenceSession.create(model);
    socket = connect(server.url, { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
    const hello = await socket.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] }) as Ack;
    expect(hello.ok).toBe(true);
  });
  afterAll(async () => {
    socket?.disconnect();
    await session?.release();
    await server?.close();
  });

  /** The right outputs for a task, computed here with onnxruntime-node. */
  async function answer(task: TaskAssignment, next?: number) {
    const x = task.inputs[0]!;
    const bytes = new Uint8Array(asBytes(x.data)); // a copy, aligned: socket.io may hand a slice of a larger buffer
    const out = await session.run({ x: new ort.Tensor('float32', new Float32Array(bytes.buffer), x.dims) });
    const y = out.y!;
    return {
      replicaId: task.replicaId, backend: 'cpu', runMs: 1, ...(next ? { next } : {}),
      outputs: [{ name: 'y', dtype: 'float32', dims: y.dims, data: new Uint8Array((y.data as Float32Array).slice().buffer) }],
    };
  }

  it('brings the next task on the result\'s ack, and the result counts by the time its ack arrives', async () => {
    const m = await api.uploadModel(model);
    const ds = await api.uploadDataset(writeNpy('float32', [6, 4], floatData(3, 24)));
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 1, canaryRate: 0, adaptive: false });

    const first = await socket.emitWithAck('work:request', { slots: 1 }) as Ack;
    expect(first.tasks).toHaveLength(1);
    const ack = await socket.emitWithAck('task:result', await answer(first.tasks![0]!, 1)) as Ack;
    expect(ack).toMatchObject({ ok: true, accepted: true });
    expect(ack.tasks).toHaveLength(1);
    expect(ack.tasks![0]!.taskId).not.toBe(first.tasks![0]!.taskId);
    // By the time the ack is here, the REST API counts the result.
    expect((await api.getJob(job.id)).tasks.done).toBe(1);

    // Without `next` the ack carries no task, as before.
    const plain = await socket.emitWithAck('task:result', await answer(ack.tasks![0]!)) as Ack;
    expect(plain).toMatchObject({ ok: true, accepted: true });
    expect(plain.tasks).toBeUndefined();
    expect((await api.getJob(job.id)).tasks.done).toBe(2);
    await api.cancelJob(job.id);
  });

  it('judges results that arrive together one by one: a bad one is refused, the good one commits', async () => {
    const m = await api.uploadModel(model);
    const ds = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(5, 16)));
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 1, replicas: 1, canaryRate: 0, adaptive: false });
    const { tasks } = await socket.emitWithAck('work:request', { slots: 2 }) as Ack;
    expect(tasks).toHaveLength(2);
    const good = await answer(tasks![0]!, 1);
    const bad = { ...(await answer(tasks![1]!, 1)), outputs: [{ name: 'y', dtype: 'float32', dims: [1, 3], data: new Uint8Array(5) }] };
    // Emitted in one go, so the server takes both in the same turn of its event loop.
    const [a, b] = await Promise.all([socket.emitWithAck('task:result', good), socket.emitWithAck('task:result', bad)]) as Ack[];
    expect(a).toMatchObject({ ok: true, accepted: true });
    expect(a!.tasks).toHaveLength(1);
    expect(b).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD', message: expect.stringContaining('needs 12 bytes, got 5') } });
    const view = await api.getJob(job.id);
    expect(view.tasks.done).toBe(1);
    const replicas = await fetch(`${server.url}/api/v1/jobs/${job.id}/replicas`, { headers: { authorization: `Bearer ${server.apiKey}` } })
      .then((r) => r.json()) as { replicas: { id: string; status: string }[] };
    expect(replicas.replicas.find((r) => r.id === tasks![1]!.replicaId)?.status).toBe('invalid');
    await api.cancelJob(job.id);
  });
});
