/**
 * What an operator's tools see: the Prometheus metrics after a small job through a headless worker (the job
 * counted as completed, results accepted, the worker online by kind and backend, the store's writes timed),
 * the metrics token enforced when one is set, health saying 503 while the server drains, readiness checking the
 * store, and the OpenAPI document describing every route the app registers.
 */
import { io as connect, type Socket } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { writeNpy } from '../../shared/npy.js';
import type { HelloAccepted } from '../../shared/protocol.js';
import { openApiPath } from '../../server/api/openapi.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { type TestWorkers, startWorkers } from '../helpers/workers.js';

/** The value of one sample in a Prometheus text exposition (`name{labels} value`); undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) return Number(m[3]);
  }
  return undefined;
}

const ITEMS = 12;
const BATCH = 4;

describe('metrics, health, readiness and the API document', () => {
  let server: TestServer;
  let workers: TestWorkers | null = null;

  beforeAll(async () => {
    server = await startTestServer();
  });
  afterAll(async () => {
    await workers?.stop();
    await server?.close();
  });

  it('counts a job run through a headless worker', async () => {
    const api = new ApiClient(server.url, server.apiKey);
    const before = await (await fetch(`${server.url}/metrics`)).text();
    expect(sample(before, 'tabgrid_jobs', { status: 'completed' })).toBe(0);
    expect(sample(before, 'tabgrid_results_total', { verdict: 'accepted' })).toBe(0);

    const joined = new Promise<void>((resolve) => server.app.events.once('worker:joined', () => resolve()));
    workers = startWorkers(server.url, 1);
    await joined;
    const m = await api.uploadModel(mlpModel());
    const ds = await api.uploadDataset(writeNpy('float32', [ITEMS, 4], floatData(7, ITEMS * 4)));
    const job = await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: BATCH, replicas: 1, canaryRate: 0 });
    const done = await api.waitJob(job.id, undefined, 50);
    expect(done.status, JSON.stringify(done.failures)).toBe('completed');

    const res = await fetch(`${server.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    const tasks = ITEMS / BATCH;
    expect(sample(text, 'tabgrid_jobs', { status: 'completed' })).toBe(1);
    expect(sample(text, 'tabgrid_jobs', { status: 'running' })).toBe(0);
    expect(sample(text, 'tabgrid_tasks_settled_total', { outcome: 'done', canary: 'false' })).toBe(tasks);
    expect(sample(text, 'tabgrid_results_total', { verdict: 'accepted' })).toBe(tasks);
    expect(sample(text, 'tabgrid_results_total', { verdict: 'refused' })).toBe(0);
    expect(sample(text, 'tabgrid_task_replicas_count', { decided_by: 'quorum' })).toBe(tasks);
    expect(sample(text, 'tabgrid_task_replicas_sum', { decided_by: 'quorum' })).toBe(tasks);
    expect(sample(text, 'tabgrid_workers_online', { kind: 'node', backend: 'cpu' })).toBe(1);
    expect(sample(text, 'tabgrid_store_write_seconds_count', { op: 'insertReplica' })).toBeGreaterThanOrEqual(tasks);
    expect(sample(text, 'tabgrid_lease_expiries_total')).toBe(0);
    expect(sample(text, 'process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(sample(text, 'nodejs_heap_size_used_bytes')).toBeGreaterThan(0);
  });

  it('answers ready while the store answers, and describes every route the app registers', async () => {
    const ready = await fetch(`${server.url}/api/v1/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ ok: true });
    const health = await fetch(`${server.url}/api/v1/health`);
    expect(health.status).toBe(200);
    expect(await health.json()).toMatchObject({ ok: true, workers: 1 });

    const res = await fetch(`${server.url}/api/v1/openapi.json`);
    expect(res.status).toBe(200);
    const doc = (await res.json()) as { openapi: string; paths: Record<string, Record<string, { responses: object }>> };
    expect(doc.openapi).toMatch(/^3\.1\.\d+$/);
    const documented = Object.entries(doc.paths).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)).sort();
    const registered = [...new Set(server.app.routes().map((r) => `${r.method} ${openApiPath(r.path)}`))].sort();
    expect(registered).toContain('POST /api/v1/jobs');
    expect(registered).toContain('GET /metrics');
    expect(documented).toEqual(registered);
    for (const ops of Object.values(doc.paths)) for (const op of Object.values(ops)) expect(Object.keys(op.responses).length).toBeGreaterThan(0);
  });
});

describe('the metrics token, and health while draining', () => {
  let server: TestServer;
  let socket: Socket | null = null;
  const TOKEN = 'scrape-me-please';

  beforeAll(async () => {
    server = await startTestServer({ config: { metricsToken: TOKEN, shutdownGraceMs: 20_000 } });
  });
  afterAll(async () => {
    socket?.disconnect();
    await server?.close().catch(() => {});
  });

  it('refuses the metrics without the token, and serves them with it', async () => {
    const none = await fetch(`${server.url}/metrics`);
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: 'UNAUTHORIZED', message: expect.stringContaining('metrics token') } });
    const wrong = await fetch(`${server.url}/metrics`, { headers: { authorization: 'Bearer not-the-token' } });
    expect(wrong.status).toBe(401);
    // An API key is not the metrics token.
    expect((await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${server.apiKey}` } })).status).toBe(401);
    const ok = await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('tabgrid_jobs');
  });

  it('says 503 with the reason on health and readiness while draining', async () => {
    const api = new ApiClient(server.url, server.apiKey);
    const m = await api.uploadModel(mlpModel());
    const ds = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(3, 16)));
    await api.createJob({ model: m.hash, inputs: { x: ds.hash }, batchSize: 4, replicas: 1, canaryRate: 0 });
    // A bare worker holds the one lease and does not answer: the shutdown waits for it (shutdownGraceMs).
    const s = connect(server.url, { transports: ['websocket'], forceNew: true });
    socket = s;
    await new Promise<void>((resolve) => s.on('connect', () => resolve()));
    const hello = await s.timeout(5000).emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] }) as { ok: boolean } & HelloAccepted;
    expect(hello.ok).toBe(true);
    const got = await s.timeout(5000).emitWithAck('work:request', { slots: 1 }) as { ok: boolean; tasks: unknown[] };
    expect(got.tasks).toHaveLength(1);
    expect((await fetch(`${server.url}/api/v1/health`)).status).toBe(200);

    const closing = server.close();
    const health = await fetch(`${server.url}/api/v1/health`);
    expect(health.status).toBe(503);
    expect(await health.json()).toEqual({ ok: false, reason: expect.stringContaining('draining') });
    const ready = await fetch(`${server.url}/api/v1/ready`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toEqual({ ok: false, reason: expect.stringContaining('draining') });
    // The lease goes back when its worker leaves, and the shutdown goes on.
    s.disconnect();
    await closing;
  });
});
