/**
 * The `/dashboard` feed over real sockets: the key is checked in the handshake, a researcher key sees only
 * its own jobs, a job's progress is pushed live but coalesced, workers joining show up with their backend,
 * and verification figures follow.
 */
import { type Socket, io as connect } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import type { DashboardServerEvents, DashboardSnapshot } from '../../shared/dashboard-protocol.js';
import { writeNpy } from '../../shared/npy.js';
import type { JobView } from '../../shared/protocol.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { startWorkers } from '../helpers/workers.js';

type Feed = Socket<DashboardServerEvents, Record<string, never>>;

describe('dashboard feed', () => {
  let server: TestServer;
  let admin: ApiClient;
  const sockets: Feed[] = [];

  function open(key?: string): Feed {
    const s: Feed = connect(`${server.url}/dashboard`, { auth: key ? { key } : {}, transports: ['websocket'], reconnection: false });
    sockets.push(s);
    return s;
  }

  function snapshot(s: Feed): Promise<DashboardSnapshot> {
    return new Promise((resolve, reject) => {
      s.once('dashboard:snapshot', resolve);
      s.once('connect_error', reject);
    });
  }

  async function submit(api: ApiClient, tasks: number, name: string): Promise<JobView> {
    const model = await api.uploadModel(mlpModel(8, 16, 2, 3));
    const data = await api.uploadDataset(writeNpy('float32', [tasks * 4, 8], floatData(9, tasks * 4 * 8)));
    return api.createJob({ model: model.hash, inputs: { x: data.hash }, batchSize: 4, replicas: 2, adaptive: false, canaryRate: 0, name });
  }

  beforeAll(async () => {
    server = await startTestServer();
    admin = new ApiClient(server.url, server.apiKey);
  });
  afterAll(async () => {
    for (const s of sockets) s.disconnect();
    await server?.close();
  });

  it('refuses a missing or unknown key in the handshake', async () => {
    await expect(snapshot(open())).rejects.toThrow(/API key is required/);
    await expect(snapshot(open('tg_not-a-key'))).rejects.toThrow(/unknown API key/);
  });

  it('shows a researcher key its own jobs only, an admin key every job', async () => {
    const created = await (await fetch(`${server.url}/api/v1/keys`, {
      method: 'POST', headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'ada' }),
    })).json() as { key: string };
    const ada = new ApiClient(server.url, created.key);
    const mine = await submit(ada, 2, 'ada-job');
    const theirs = await submit(admin, 2, 'admin-job');
    const own = await snapshot(open(created.key));
    expect(own.scope).toBe('own');
    expect(own.jobs.map((j) => j.id)).toEqual([mine.id]);
    const all = await snapshot(open(server.apiKey));
    expect(all.scope).toBe('all');
    expect(all.jobs.map((j) => j.id).sort()).toEqual([mine.id, theirs.id].sort());
    await ada.cancelJob(mine.id);
    await admin.cancelJob(theirs.id);
  });

  it('shows workers and per-class agreement to admin keys only, and drops a revoked key\'s feed', async () => {
    const created = await (await fetch(`${server.url}/api/v1/keys`, {
      method: 'POST', headers: { authorization: `Bearer ${server.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'bob' }),
    })).json() as { id: string; key: string };
    const workers = startWorkers(server.url, 1, 1);
    try {
      await expect.poll(async () => (await snapshot(open(server.apiKey))).workers.length, { timeout: 5000 }).toBe(1);
      const feed = open(created.key);
      const own = await snapshot(feed);
      expect(own.workers).toEqual([]);
      expect(own.verification.classes).toEqual([]);
      const pushedWorkers: unknown[] = [];
      feed.on('dashboard:workers', (w) => pushedWorkers.push(w));
      const gone = new Promise<string>((resolve) => feed.once('disconnect', resolve));
      const revoked = await fetch(`${server.url}/api/v1/keys/${created.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${server.apiKey}` } });
      expect(revoked.status).toBe(200);
      expect(await gone).toBe('io server disconnect');
      expect(pushedWorkers).toEqual([]);
    } finally {
      await workers.stop();
    }
  });

  it('pushes a job from submission to completion, coalesced, with workers and verification', async () => {
    const feed = open(server.apiKey);
    await snapshot(feed);
    const pushes: { at: number; jobs: JobView[] }[] = [];
    feed.on('dashboard:jobs', (jobs) => pushes.push({ at: Date.now(), jobs }));
    const workerLists: number[] = [];
    feed.on('dashboard:workers', (w) => workerLists.push(w.length));
    const samples: Record<string, number>[] = [];
    feed.on('dashboard:sample', (s) => samples.push(s.done));
    let verification: Parameters<DashboardServerEvents['dashboard:verification']>[0] | null = null;
    feed.on('dashboard:verification', (v) => { verification = v; });

    const job = await submit(admin, 60, 'live');
    // A new job reaches the board with no worker touching it (creation emits no event; the feed polls).
    await expect.poll(() => pushes.some((p) => p.jobs.some((j) => j.id === job.id)), { timeout: 5000 }).toBe(true);

    const workers = startWorkers(server.url, 2, 2);
    const start = Date.now();
    try {
      const end = await admin.waitJob(job.id, undefined, 50);
      expect(end.status).toBe('completed');
      await expect.poll(() => pushes.flatMap((p) => p.jobs).some((j) => j.id === job.id && j.status === 'completed'), { timeout: 3000 }).toBe(true);
      await expect.poll(() => workerLists.at(-1), { timeout: 3000 }).toBe(2);
      await expect.poll(() => samples.some((d) => d[job.id] === 60), { timeout: 5000 }).toBe(true);
      await expect.poll(() => verification?.jobs[job.id]?.replicasPerTask, { timeout: 6000 }).toBe(2);
      expect(verification!.agreement).toBe(1);
    } finally {
      await workers.stop();
    }
    // 120 replica results changed this job; the feed pushed it at most once per 500 ms (plus the first).
    const elapsed = Date.now() - start;
    const forJob = pushes.filter((p) => p.jobs.some((j) => j.id === job.id));
    expect(forJob.length).toBeLessThanOrEqual(Math.ceil(elapsed / 500) + 2);
    for (let i = 1; i < forJob.length; i++) expect(forJob[i]!.at - forJob[i - 1]!.at).toBeGreaterThanOrEqual(300);
    await expect.poll(() => workerLists.at(-1), { timeout: 3000 }).toBe(0);
  });
});
