/**
 * Bad input gets a typed error and changes nothing else: malformed socket events, truncated tensors,
 * results for leases a worker does not hold, oversized bodies. A job running alongside still completes.
 */
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { npyTensor, reference, startWorkers } from '../helpers/workers.js';

type AckRes = { ok: boolean; error?: { code: string; message: string }; tasks?: TaskAssignment[]; accepted?: boolean };

describe('hostile input', () => {
  let server: TestServer;
  let api: ApiClient;
  let raw: Socket;

  beforeAll(async () => {
    server = await startTestServer({ config: { maxModelBytes: 64 * 1024, maxMessageBytes: 256 * 1024 } });
    api = new ApiClient(server.url, server.apiKey);
    raw = connect(server.url, { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve) => raw.on('connect', () => resolve()));
  });
  afterAll(async () => {
    raw?.disconnect();
    await server?.close();
  });

  const ask = (event: string, ...args: unknown[]) => raw.timeout(5000).emitWithAck(event, ...args) as Promise<AckResponse>;
  type AckResponse = AckRes;

  it('answers malformed events with typed errors and keeps serving a job alongside', async () => {
    const model = mlpModel();
    const x = writeNpy('float32', [20, 4], floatData(11, 80));
    const m = await api.uploadModel(model);
    const ds = await api.uploadDataset(x);
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 2, replicas: 2 });
    const workers = startWorkers(server.url, 2, 1);
    try {
      expect(await ask('work:request', { slots: 1 })).toMatchObject({ ok: false, error: { code: 'UNAUTHORIZED' } });
      raw.emit('worker:hello', { kind: 'node', backends: [] }); // no ack function: nothing to answer, nothing breaks
      expect(await ask('worker:hello', { kind: 'martian', backends: [] })).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      expect(await ask('worker:hello', null)).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      expect(await ask('worker:hello', 'hello')).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      const hello = await ask('worker:hello', { kind: 'node', backends: ['cpu'] });
      // The ack-less hello above may have registered first; either way this connection is a worker now.
      expect(hello.ok || hello.error?.code === 'CONFLICT').toBe(true);
      expect(await ask('work:request', { slots: 1e9 })).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      expect(await ask('work:request', 'lots')).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      expect(await ask('work:request', { slots: -1 })).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      expect(await ask('task:result', { replicaId: 'r-unknown', backend: 'cpu', runMs: 1, outputs: [{ name: 'y', dtype: 'float32', dims: [2, 3], data: new Uint8Array(24) }] }))
        .toMatchObject({ ok: false, error: { code: 'LEASE_NOT_HELD' } });
      expect(await ask('task:result', { replicaId: 'r-1', backend: 'cpu', runMs: 1, outputs: [{ name: 'y', dtype: 'float32', dims: [2, 3], data: [1, 2, 3] }] }))
        .toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD', message: expect.stringContaining('binary') } });
      expect(await ask('task:result', { replicaId: 'r-1', backend: 'cpu', runMs: 1, outputs: [{ name: 'y', dtype: 'complex128', dims: [2], data: new Uint8Array(8) }] }))
        .toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      expect(await ask('task:error', { replicaId: 42 })).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD' } });
      raw.emit('no:such-event', { a: 1 });

      // A leased task answered with a truncated tensor is refused and counted; the task goes to someone else.
      const got = await ask('work:request', { slots: 1 });
      expect(got.ok).toBe(true);
      if (got.tasks!.length > 0) {
        const t = got.tasks![0];
        const res = await ask('task:result', { replicaId: t.replicaId, backend: 'cpu', runMs: 1, outputs: [{ name: 'y', dtype: 'float32', dims: [2, 3], data: new Uint8Array(10) }] });
        expect(res).toMatchObject({ ok: false, error: { code: 'INVALID_PAYLOAD', message: expect.stringContaining('needs 24 bytes, got 10') } });
      }

      const end = await api.waitJob(job.id, undefined, 50);
      expect(end.status).toBe('completed');
      const want = await reference(model, { x });
      expect(compareOutputs([npyTensor('y', await api.result(job.id, 'y'))], [want.y], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
    } finally {
      await workers.stop();
    }
  });

  it('drops a socket message over the size limit without harm to others', async () => {
    const big = connect(server.url, { transports: ['websocket'], forceNew: true });
    await new Promise<void>((resolve) => big.on('connect', () => resolve()));
    const closed = new Promise<string>((resolve) => big.on('disconnect', (reason) => resolve(reason)));
    big.emit('worker:hello', { kind: 'node', backends: [], agent: 'x', padding: new Uint8Array(1024 * 1024) });
    expect(await closed).toBe('transport close');
    expect((await fetch(`${server.url}/api/v1/health`)).status).toBe(200);
    expect(await ask('work:request', { slots: 1 })).toMatchObject({ ok: true });
  });

  it('refuses oversized uploads and malformed JSON with 4xx and a reason', async () => {
    await expect(api.uploadModel(new Uint8Array(100 * 1024))).rejects.toMatchObject({ status: 413, code: 'TOO_LARGE' });
    const res = await fetch(`${server.url}/api/v1/jobs`, {
      method: 'POST', headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' }, body: '{"model": ',
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ error: { code: 'INVALID_PAYLOAD' } });
    const nf = await fetch(`${server.url}/api/v1/jobs/job-nope`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    expect(nf.status).toBe(404);
  });
});

describe('rate limits', () => {
  it('answers a key that calls too often with 429 and a reason, without slowing other keys', async () => {
    const server = await startTestServer({ config: { rateLimitPerMinute: 20 } });
    try {
      const api = new ApiClient(server.url, server.apiKey);
      const statuses: number[] = [];
      for (let i = 0; i < 25; i++) statuses.push((await fetch(`${server.url}/api/v1/jobs`, { headers: { authorization: `Bearer ${server.apiKey}` } })).status);
      expect(statuses.slice(0, 20).every((s) => s === 200)).toBe(true);
      expect(statuses.at(-1)).toBe(429);
      await expect(api.listJobs()).rejects.toMatchObject({ status: 429, code: 'RATE_LIMITED' });
      expect((await fetch(`${server.url}/api/v1/jobs`, { headers: { authorization: 'Bearer other' } })).status).toBe(401);
    } finally {
      await server.close();
    }
  });
});

describe('HTTP headers', () => {
  it('hardens every response and opens no API to other origins', async () => {
    const server = await startTestServer();
    try {
      const res = await fetch(`${server.url}/api/v1/health`, { headers: { origin: 'https://evil.example' } });
      expect(res.headers.get('x-content-type-options')).toBe('nosniff');
      expect(res.headers.get('cross-origin-resource-policy')).toBe('same-origin');
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('x-powered-by')).toBeNull();
    } finally {
      await server.close();
    }
  });
});
