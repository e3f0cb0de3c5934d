/**
 * A job controlled through another server than the one its workers are on, on one database: its tasks B's workers hold
 * are counted running in A's view too; cancelled through A while they hold them (B withdraws their leases), then
 * deleted through B, after which neither server knows it (A had it in memory).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { WorkLoop } from '../../client/net/work-loop.js';
import { writeNpy } from '../../shared/npy.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { havePostgres } from '../helpers/pg-cluster.js';
import { serversOnOneDatabase } from '../helpers/pg-servers.js';
import type { TestServer } from '../helpers/server.js';
import { loopbacks } from '../helpers/workers.js';
import { holding, until } from '../helpers/until.js';

const KEY = 'scale-out-control-admin-key';

describe.skipIf(!havePostgres())('a job controlled through another server', () => {
  const servers = serversOnOneDatabase(2, { apiKey: KEY });
  const loops: WorkLoop[] = [];
  afterAll(() => { for (const l of loops) l.stop(); });

  it('is cancelled through one server while another\'s workers hold its tasks, then deleted through that other', async () => {
    const [a, b] = servers as [TestServer, TestServer];
    const apiA = new ApiClient(a.url, KEY);
    const apiB = new ApiClient(b.url, KEY);
    const m = await apiA.uploadModel(mlpModel(4, 8, 3, 7));
    const d = await apiA.uploadDataset(writeNpy('float32', [400, 4], floatData(7, 1600)));
    const job = await apiA.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, replicas: 1, canaryRate: 0 });
    for (let i = 0; i < 2; i++) {
      const loop = new WorkLoop({
        serverUrl: b.url, slots: 2, runner: holding(), hello: { kind: 'node', backends: ['cpu'] }, bind: loopbacks(i),
      });
      loops.push(loop);
      loop.start();
    }
    const held = () => loops.reduce((n, l) => n + (l.status.volunteerId ? b.app.scheduler.leasesOf(l.status.volunteerId) : 0), 0);
    await until(() => held() === 4);
    // Either server's view counts the tasks B's workers hold as running (A's as B last told it).
    const running = async (api: ApiClient) => (await api.getJob(job.id)).tasks.running;
    expect(await running(apiB)).toBe(4);
    await expect.poll(() => running(apiA), { timeout: 5_000 }).toBe(4);

    expect((await apiA.cancelJob(job.id)).status).toBe('cancelled');
    // B hears of it: its workers' leases are withdrawn, and it answers the job cancelled.
    await until(() => held() === 0);
    expect((await apiB.getJob(job.id)).status).toBe('cancelled');

    expect(await apiB.deleteJob(job.id)).toMatchObject({ id: job.id });
    // A had it in memory, ended: it reads an ended job from the database, where it is gone.
    await expect(apiA.getJob(job.id)).rejects.toThrow(/not found|no such job/i);
    await expect(apiB.getJob(job.id)).rejects.toThrow(/not found|no such job/i);
  }, 60_000);
});
