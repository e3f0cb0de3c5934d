/**
 * The dashboard of a network of servers on one database: an admin's feed on one server shows the workers connected
 * to the others (each with the server it is on) and the progress of a job that only the others' workers compute, as
 * it happens, not only when the page is opened again; the workers list of the REST API does the same.
 */
import { type Socket, io as connect } from 'socket.io-client';
import { afterAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import type { DashboardServerEvents, DashboardSnapshot, WorkerView } from '../../shared/dashboard-protocol.js';
import { writeNpy } from '../../shared/npy.js';
import type { JobView } from '../../shared/protocol.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { havePostgres } from '../helpers/pg-cluster.js';
import { serversOnOneDatabase } from '../helpers/pg-servers.js';
import type { TestServer } from '../helpers/server.js';
import { type TestWorkers, loopbacks, startWorkers } from '../helpers/workers.js';
import { until } from '../helpers/until.js';

const KEY = 'scale-out-dashboard-admin-key';
type Feed = Socket<DashboardServerEvents, Record<string, never>>;

describe.skipIf(!havePostgres())('the dashboard across servers on one database', () => {
  const servers = serversOnOneDatabase(2, { apiKey: KEY });
  const feeds: Feed[] = [];
  let workers: TestWorkers | null = null;
  afterAll(async () => {
    for (const f of feeds) f.disconnect();
    await workers?.stop();
  });

  it('shows on one server the workers and the progress of the others', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const feed: Feed = connect(`${a.url}/dashboard`, { auth: { key: KEY }, transports: ['websocket'], reconnection: false });
    feeds.push(feed);
    const workerLists: WorkerView[][] = [];
    const jobUpdates: JobView[] = [];
    feed.on('dashboard:workers', (list) => workerLists.push(list));
    feed.on('dashboard:jobs', (views) => jobUpdates.push(...views));
    const snap = await new Promise<DashboardSnapshot>((resolve, reject) => { feed.once('dashboard:snapshot', resolve); feed.once('connect_error', reject); });
    expect(snap.workers).toEqual([]);

    // A job submitted to A, computed only by workers connected to B.
    const api = new ApiClient(a.url, KEY);
    const m = await api.uploadModel(mlpModel(4, 8, 3, 5));
    const d = await api.uploadDataset(writeNpy('float32', [4800, 4], floatData(5, 19200)));
    const job = await api.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, replicas: 1, canaryRate: 0 });
    workers = startWorkers(b.url, 2, 2, { bind: loopbacks });

    // A's feed lists B's two workers, each saying it is on B; A has none of its own.
    await until(() => workerLists.some((l) => l.length === 2));
    const listed = workerLists.find((l) => l.length === 2)!;
    expect(listed.map((w) => w.server)).toEqual([b.url, b.url]);
    expect(a.app.workers.size).toBe(0);
    const viaRest = await (await fetch(`${a.url}/api/v1/workers`, { headers: { authorization: `Bearer ${KEY}` } })).json() as { workers: WorkerView[] };
    expect(viaRest.workers.map((w) => w.server)).toEqual([b.url, b.url]);

    // A's feed follows the job's progress on B while it runs (more than the one push that its creation made: the counts are
    // read again each second at most), and its end.
    const running = () => new Set(jobUpdates.filter((v) => v.id === job.id && v.status === 'running' && v.tasks.done > 0).map((v) => v.tasks.done));
    await until(() => running().size >= 2, 60_000);
    await until(() => jobUpdates.some((v) => v.id === job.id && v.status === 'completed' && v.tasks.done === 2400), 60_000);
    await workers.stop();
    workers = null;
    // B's workers gone, A's feed says so.
    await until(() => workerLists.at(-1)!.length === 0);
  }, 90_000);
});
