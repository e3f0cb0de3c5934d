/**
 * Several servers as one network on PostgreSQL: two `tabgrid serve` processes on one throwaway database, a job
 * submitted to one, workers on both; the first is SIGKILLed mid-job. The other takes over its slices of work, the
 * job completes with onnxruntime-node's outputs, and every result a worker had acknowledged is in the database.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { PgSync } from '../../server/store/pg/pg-sync.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { type PgCluster, havePostgres, startPgCluster } from '../helpers/pg-cluster.js';
import { type ServeProcess, startServe } from '../helpers/serve-process.js';
import { loopbacks, npyTensor, reference, startWorkers } from '../helpers/workers.js';
import { until } from '../helpers/until.js';

const KEY = 'scale-out-test-admin-key';

describe.skipIf(!havePostgres())('several servers on one PostgreSQL database', () => {
  let pg: PgCluster;
  let db: string;
  const dirs: string[] = [];
  const servers: ServeProcess[] = [];

  beforeAll(async () => {
    pg = await startPgCluster();
    db = pg.createDatabase('network');
  });
  afterAll(() => {
    for (const s of servers) s.process.kill('SIGKILL');
    pg?.stop();
    for (const d of dirs) fs.rmSync(d, { recursive: true, force: true });
  });

  const serve = async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-scale-'));
    dirs.push(dir);
    const s = await startServe(dir, { args: ['--store', db, '--cluster-ttl-ms', '1500'], env: { TABGRID_API_KEY: KEY } });
    servers.push(s);
    return s;
  };

  it('completes a job across two servers when the one it was submitted to is killed mid-job', async () => {
    const [a, b] = [await serve(), await serve()];
    const apiA = new ApiClient(a.url, KEY);
    const apiB = new ApiClient(b.url, KEY);
    const items = 2400;
    const { job, model, x } = await submitMlp(apiA, items, 11);
    // Any server answers for any job.
    expect((await apiB.getJob(job.id)).status).toBe('running');

    const onA = startWorkers(a.url, 2, 2, { bind: loopbacks });
    const onB = startWorkers(b.url, 2, 2, { bind: (i) => loopbacks(i + 2) });
    try {
      // Both servers hand out work: each has workers that computed tasks.
      await until(() => onA.loops.every((l) => l.status.tasksDone > 5) && onB.loops.every((l) => l.status.tasksDone > 5), 60_000);
      const ackedOnA = () => onA.loops.reduce((n, l) => n + l.status.tasksDone, 0);
      a.process.kill('SIGKILL');
      await new Promise((r) => a.process.once('exit', r));
      const ackedBeforeKill = ackedOnA();
      const end = await apiB.waitJob(job.id, undefined, 200);
      expect(end).toMatchObject({ status: 'completed', tasks: { total: items / 2, done: items / 2, failed: 0 } });
      await expectReference(apiB, job.id, model, x);

      // Nothing acknowledged lost: every result a worker of A had an ack for is a returned replica in the database.
      const sql = new PgSync(db);
      try {
        const [row] = sql.query<{ n: number }>('SELECT count(*)::int AS n FROM replicas WHERE job_id = $1 AND returned_at IS NOT NULL AND volunteer_id = ANY($2)',
          [job.id, onA.loops.map((l) => l.status.volunteerId ?? '')]);
        expect(ackedBeforeKill).toBeGreaterThan(0);
        expect(row!.n).toBeGreaterThanOrEqual(ackedBeforeKill);
        const [open] = sql.query<{ n: number }>('SELECT count(*)::int AS n FROM slices WHERE job_id = $1 AND NOT done', [job.id]);
        expect(open!.n).toBe(0);
        const [dead] = sql.query<{ n: number }>('SELECT count(*)::int AS n FROM servers WHERE NOT alive');
        expect(dead!.n).toBe(1);
      } finally {
        sql.close();
      }
    } finally {
      await onA.stop();
      await onB.stop();
    }
  }, 150_000);
});

describe.skipIf(!havePostgres())('a server on PostgreSQL when the database restarts', () => {
  it('refuses what it cannot commit while the database is gone, and completes the job once it is back', async () => {
    const pg = await startPgCluster();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-restart-'));
    const server = await startServe(dir, { args: ['--store', pg.createDatabase('restart')], env: { TABGRID_API_KEY: KEY } });
    let said = '';
    server.process.stdout!.on('data', (d) => { said += d; });
    server.process.stderr!.on('data', (d) => { said += d; });
    const workers = startWorkers(server.url, 2, 2, { bind: loopbacks });
    try {
      const api = new ApiClient(server.url, KEY);
      const items = 1200;
      const { job, model, x } = await submitMlp(api, items, 5);
      await until(() => workers.loops.every((l) => l.status.tasksDone > 5), 60_000);
      pg.restart();
      const end = await Promise.race([
        api.waitJob(job.id, undefined, 200),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`the job did not end; the server said: ${said.slice(-3000)}`)), 60_000)),
      ]);
      expect(end).toMatchObject({ status: 'completed', tasks: { total: items / 2, done: items / 2, failed: 0 } });
      await expectReference(api, job.id, model, x);
      // The server went on: it did not stop on the lost connections; and it still stops cleanly when told to.
      expect(server.process.exitCode).toBeNull();
      await workers.stop();
      const exited = new Promise<number | null>((r) => server.process.once('exit', (code) => r(code)));
      server.process.kill('SIGTERM');
      expect(await Promise.race([exited, new Promise((r) => setTimeout(() => r('still running'), 20_000))])).toBe(0);
    } finally {
      await workers.stop();
      server.process.kill('SIGKILL');
      pg.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

/** A job of `items` rows through a small MLP, two rows a task, one replica. */
async function submitMlp(api: ApiClient, items: number, seed: number) {
  const model = mlpModel(4, 16, 3, seed);
  const x = writeNpy('float32', [items, 4], floatData(seed, items * 4));
  const m = await api.uploadModel(model);
  const d = await api.uploadDataset(x);
  return { job: await api.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, replicas: 1 }), model, x };
}

/** The job's output `y` equals onnxruntime-node's on the same input. */
async function expectReference(api: ApiClient, jobId: string, model: Uint8Array, x: Uint8Array): Promise<void> {
  const want = await reference(model, { x });
  const got = npyTensor('y', await api.result(jobId, 'y'));
  expect(compareOutputs([got], [want.y!], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
}
