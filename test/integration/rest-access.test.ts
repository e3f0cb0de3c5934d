/**
 * Who may see and do what over REST: workers and class statistics for admin keys only, a job's replicas
 * for its owner without other volunteers' identities, keys listed and revoked, the rate limit counted per
 * verified key or per address (a made-up key each time does not escape it), missing static files 404.
 */
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { writeNpy } from '../../shared/npy.js';
import type { HelloAccepted } from '../../shared/protocol.js';
import type { ApiKeyView, CreatedApiKey, ReplicaView } from '../../shared/rest-types.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

import type { ServerRunsView } from '../../shared/rest-types.js';
import { startWorkers } from '../helpers/workers.js';

describe('REST access', () => {
  let server: TestServer;
  let admin: ApiClient;
  const sockets: Socket[] = [];

  const get = (path: string, key: string) => fetch(`${server.url}${path}`, { headers: bearer(key) });
  const createKey = async (name: string, isAdmin = false) => admin.createKey({ name, admin: isAdmin });

  /** A bare worker: says hello and holds one lease, so the job has a replica to list. */
  async function leaseOne(): Promise<HelloAccepted> {
    const s = connect(server.url, { transports: ['websocket'], forceNew: true });
    sockets.push(s);
    await new Promise<void>((resolve) => s.on('connect', () => resolve()));
    const hello = await s.timeout(5000).emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] }) as { ok: true } & HelloAccepted;
    expect(hello.ok).toBe(true);
    const got = await s.timeout(5000).emitWithAck('work:request', { slots: 1 }) as { ok: boolean; tasks: unknown[] };
    expect(got.tasks).toHaveLength(1);
    return hello;
  }

  beforeAll(async () => {
    server = await startTestServer();
    admin = new ApiClient(server.url, server.apiKey);
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await server?.close();
  });

  it('lists workers and class agreement to admin keys only, replicas to the job owner without volunteer ids', async () => {
    const alice = await createKey('alice');
    const bob = await createKey('bob');
    const aliceApi = new ApiClient(server.url, alice.key);
    const m = await aliceApi.uploadModel(mlpModel());
    const ds = await aliceApi.uploadDataset(writeNpy('float32', [4, 4], floatData(3, 16)));
    const job = await aliceApi.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 4, replicas: 2, canaryRate: 0 });
    const w1 = await leaseOne();
    const w2 = await leaseOne();

    for (const path of ['/api/v1/workers', '/api/v1/stats/classes', '/api/v1/volunteers']) {
      const res = await get(path, alice.key);
      expect(res.status).toBe(401);
      expect(await res.json()).toMatchObject({ error: { code: 'UNAUTHORIZED', message: expect.stringContaining('admin key') } });
    }
    const workers = (await (await get('/api/v1/workers', server.apiKey)).json()) as { workers: Record<string, unknown>[] };
    expect(workers.workers.map((w) => w.volunteerId).sort()).toEqual([w1.volunteerId, w2.volunteerId].sort());
    expect(Object.keys(workers.workers[0]).sort()).toEqual(['backends', 'connectedAt', 'kind', 'origin', 'site', 'volunteerId', 'workerId']);
    expect(workers.workers.map((w) => w.origin)).toEqual(['127.0.0.1', '127.0.0.1']);
    expect((await get('/api/v1/stats/classes', server.apiKey)).status).toBe(200);

    const mine = (await (await get(`/api/v1/jobs/${job.id}/replicas`, alice.key)).json()) as { replicas: ReplicaView[] };
    expect(mine.replicas).toHaveLength(2);
    expect(mine.replicas.map((r) => r.volunteer).sort()).toEqual(['volunteer 1', 'volunteer 2']);
    for (const r of mine.replicas) {
      expect(r).toMatchObject({ status: 'leased', taskId: expect.stringContaining(job.id) });
      expect(r).not.toHaveProperty('volunteerId');
      expect(r).not.toHaveProperty('workerId');
      expect(r).not.toHaveProperty('origin');
    }
    const all = (await (await get(`/api/v1/jobs/${job.id}/replicas`, server.apiKey)).json()) as { replicas: ReplicaView[] };
    expect(all.replicas.map((r) => r.volunteerId).sort()).toEqual([w1.volunteerId, w2.volunteerId].sort());
    expect((await get(`/api/v1/jobs/${job.id}/replicas`, bob.key)).status).toBe(404);
    await aliceApi.cancelJob(job.id);
  });

  it('lists keys without secrets, and revokes them at once, never the last admin key', async () => {
    const carol = await createKey('carol');
    const carolApi = new ApiClient(server.url, carol.key);
    expect(await carolApi.listJobs()).toEqual([]);
    await expect(carolApi.listKeys()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    await expect(carolApi.revokeKey(carol.id)).rejects.toMatchObject({ status: 401 });

    const keys = await admin.listKeys();
    const listed = keys.find((k) => k.id === carol.id)!;
    expect(listed).toEqual({ id: carol.id, name: 'carol', admin: false, createdAt: expect.any(Number), revokedAt: null, weight: 1 } satisfies ApiKeyView);
    for (const k of keys) expect(Object.keys(k).sort()).toEqual(['admin', 'createdAt', 'id', 'name', 'revokedAt', 'weight']);
    // An admin sets a key's fair-share weight; a researcher cannot, and a weight out of range is refused.
    expect(await admin.setKeyWeight(carol.id, 2)).toMatchObject({ id: carol.id, weight: 2 });
    await expect(carolApi.setKeyWeight(carol.id, 50)).rejects.toMatchObject({ status: 401 });
    await expect(admin.setKeyWeight(carol.id, 0)).rejects.toMatchObject({ status: 400, code: 'INVALID_PAYLOAD' });
    await expect(admin.setKeyWeight('key-0123456789ab', 2)).rejects.toMatchObject({ status: 404 });
    expect(JSON.stringify(keys)).not.toContain(carol.key);

    const revoked = await admin.revokeKey(carol.id);
    expect(revoked).toMatchObject({ id: carol.id, revokedAt: expect.any(Number) });
    await expect(carolApi.listJobs()).rejects.toMatchObject({ status: 401, code: 'UNAUTHORIZED' });
    expect((await admin.listKeys()).find((k) => k.id === carol.id)?.revokedAt).toBe(revoked.revokedAt);
    await expect(admin.revokeKey(carol.id)).rejects.toMatchObject({ status: 409, code: 'CONFLICT' });
    await expect(admin.revokeKey('key-000000000000')).rejects.toMatchObject({ status: 404 });
    await expect(admin.revokeKey('not a key')).rejects.toMatchObject({ status: 400, code: 'INVALID_PAYLOAD' });

    // The first admin key may go once another admin key exists; that one is then the last and stays.
    const self = keys.find((k) => k.admin && k.revokedAt === null)!;
    const second: CreatedApiKey = await createKey('second admin', true);
    const secondApi = new ApiClient(server.url, second.key);
    await secondApi.revokeKey(self.id);
    await expect(admin.listJobs()).rejects.toMatchObject({ status: 401 });
    await expect(secondApi.revokeKey(second.id)).rejects.toMatchObject({ status: 409, message: expect.stringContaining('last admin key') });
    expect(await secondApi.listJobs()).toBeInstanceOf(Array);
    admin = secondApi;
  });

  it('reports the server\'s own runs to admin keys: a job whose replicas share one origin is decided by them', async () => {
    // The test before revoked the first admin key: this one makes its own.
    const ops = await createKey('ops', true);
    const opsApi = new ApiClient(server.url, ops.key);
    const carol = await createKey('carol');
    expect((await get('/api/v1/stats/server-runs', carol.key)).status).toBe(401);
    const before = await (await get('/api/v1/stats/server-runs', ops.key)).json() as ServerRunsView;
    const m = await opsApi.uploadModel(mlpModel());
    const ds = await opsApi.uploadDataset(writeNpy('float32', [2, 4], floatData(5, 8)));
    const job = await opsApi.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 2, replicas: 2, canaryRate: 0 });
    // Two headless workers on this machine: one network origin, so their agreement alone does not settle the task.
    const workers = startWorkers(server.url, 2, 1);
    try {
      expect((await opsApi.waitJob(job.id, undefined, 50)).status).toBe('completed');
    } finally {
      await workers.stop();
    }
    const after = await (await get('/api/v1/stats/server-runs', ops.key)).json() as ServerRunsView;
    expect(after.checks).toBe(before.checks + 1);
    expect(after.busyMs).toBeGreaterThan(before.busyMs);
  });

  it('answers a missing static file with 404, not 500', async () => {
    const res = await fetch(`${server.url}/ort/no-such-file.wasm`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'not found' } });
    const api = await fetch(`${server.url}/api/v1/no-such-route`, { headers: bearer(server.apiKey) });
    expect(api.status).toBe(404);
    expect(await api.json()).toMatchObject({ error: { code: 'NOT_FOUND' } });
  });
});

describe('REST rate limit', () => {
  const burst = async (url: string, n: number, headers: () => Record<string, string>) => {
    const statuses: number[] = [];
    for (let i = 0; i < n; i++) statuses.push((await fetch(`${url}/api/v1/jobs`, { headers: headers() })).status);
    return statuses;
  };
  const bogus = () => bearer(`tg_${Math.random().toString(16).slice(2)}`);

  it('counts a different made-up key each time against the address, and a verified key on its own', async () => {
    const server = await startTestServer({ config: { rateLimitPerMinute: 10 } });
    try {
      const statuses = await burst(server.url, 12, bogus);
      expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
      expect(statuses.slice(10)).toEqual([429, 429]);
      // Forwarded headers are a client's say-so unless the server is told it sits behind a proxy.
      expect(await burst(server.url, 1, () => ({ ...bogus(), 'x-forwarded-for': '203.0.113.9' }))).toEqual([429]);
      expect(await burst(server.url, 10, () => bearer(server.apiKey))).toEqual(Array(10).fill(200));
      expect(await burst(server.url, 1, () => bearer(server.apiKey))).toEqual([429]);
    } finally {
      await server.close();
    }
  });

  it('behind a reverse proxy (trustProxy), counts the address the proxy saw', async () => {
    const server = await startTestServer({ config: { rateLimitPerMinute: 3, trustProxy: true } });
    try {
      const from = (addr: string) => () => ({ ...bogus(), 'x-forwarded-for': `198.51.100.7, ${addr}` });
      expect(await burst(server.url, 4, from('203.0.113.1'))).toEqual([401, 401, 401, 429]);
      expect(await burst(server.url, 1, from('203.0.113.2'))).toEqual([401]);
    } finally {
      await server.close();
    }
  });
});
