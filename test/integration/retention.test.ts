/**
 * Retention on the real server: a job deleted by its owner or an admin (404 for anyone else, and for all once it is
 * gone) leaves no row and no output behind in the SQLite file; a running job is cancelled first, its leases withdrawn
 * from the worker holding them; an ended job keeps only the outputs its results are; models and data sets no job uses
 * leave the data folder after the grace period; finished jobs go after the retention's days. Time is a fake clock.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Database from 'better-sqlite3';
import pino from 'pino';
import { io as connect } from 'socket.io-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiError, TabGridClient } from '../../cli/api-client.js';
import type { Retention } from '../../server/jobs/retention.js';
import { FakeClock } from '../../server/scheduler/clock.js';
import { BlobStore } from '../../server/store/blob-store.js';
import { writeNpy } from '../../shared/npy.js';
import type { TaskAssignment } from '../../shared/protocol.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { BIN } from '../helpers/serve-process.js';
import { type TestServer, startTestServer } from '../helpers/server.js';
import { loopbacks, startWorkers } from '../helpers/workers.js';

const HOUR = 3600_000;
const DAY = 24 * HOUR;

describe('retention', () => {
  let server: TestServer;
  let admin: TabGridClient;
  let alice: TabGridClient;
  let bob: TabGridClient;
  let retention: Retention;
  let db: Database.Database;
  const clock = new FakeClock();

  beforeAll(async () => {
    // The app's own sweep (started with the server) waits an hour of real time: the tests sweep when they choose.
    server = await startTestServer({ clock, config: { retentionSweepMs: 3_600_000 } });
    admin = new TabGridClient(server.url, server.apiKey);
    alice = new TabGridClient(server.url, (await admin.createKey({ name: 'alice' })).key);
    bob = new TabGridClient(server.url, (await admin.createKey({ name: 'bob' })).key);
    retention = server.app.jobs.retention({
      blobs: new BlobStore(path.join(server.dataDir, 'blobs')), log: pino({ level: 'silent' }),
      settings: { retainDays: 2, blobGraceMs: HOUR, retentionSweepMs: 60_000 },
    });
    db = new Database(path.join(server.dataDir, 'tabgrid.sqlite'), { readonly: true });
  });
  afterAll(async () => {
    db?.close();
    await server?.close();
  });

  const count = (sql: string, ...args: unknown[]) => (db.prepare(sql).get(...args) as { n: number }).n;
  /** What the SQLite file holds of a job: rows of every table, by the ids it had. */
  const rowsOf = (jobId: string, replicaIds: string[]) => ({
    jobs: count('SELECT COUNT(*) AS n FROM jobs WHERE id = ?', jobId),
    tasks: count('SELECT COUNT(*) AS n FROM tasks WHERE job_id = ?', jobId),
    replicas: count('SELECT COUNT(*) AS n FROM replicas WHERE job_id = ?', jobId),
    results: count(`SELECT COUNT(*) AS n FROM task_results WHERE task_id LIKE ? || '-%'`, jobId),
    outputs: count(`SELECT COUNT(*) AS n FROM replica_outputs WHERE replica_id IN (SELECT value FROM json_each(?))`, JSON.stringify(replicaIds)),
  });
  const replicaIds = (jobId: string) => (db.prepare('SELECT id FROM replicas WHERE job_id = ?').all(jobId) as { id: string }[]).map((r) => r.id);
  const blobFile = (hash: string) => path.join(server.dataDir, 'blobs', hash.slice(0, 2), hash);

  /**
   * Uploads a model and a data set (distinct per seed) and runs a job to the end on two volunteers from distinct
   * network origins, so their agreeing replicas decide each task (a result is then one replica's outputs).
   */
  async function completedJob(api: TabGridClient, seed: number, extra: { keepReplicaOutputs?: boolean } = {}) {
    const m = await api.uploadModel(mlpModel(4, 8, 3, seed));
    const d = await api.uploadDataset(writeNpy('float32', [8, 4], floatData(seed, 32)));
    const workers = startWorkers(server.url, 2, 2, { bind: loopbacks });
    try {
      const job = await api.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, replicas: 2, adaptive: false, canaryRate: 0, ...extra });
      const end = await api.waitJob(job.id, undefined, 50);
      expect(end.status).toBe('completed');
      return { job: end, model: m.hash, dataset: d.hash };
    } finally {
      await workers.stop();
    }
  }

  it('deletes a job for its owner or an admin, with every row and output; anyone else, and everyone after, gets 404', async () => {
    const { job } = await completedJob(alice, 1);
    const replicas = replicaIds(job.id);
    expect(replicas.length).toBeGreaterThanOrEqual(8);
    expect(rowsOf(job.id, replicas)).toMatchObject({ jobs: 1, tasks: 4, results: 4, outputs: replicas.length });
    const disk = await alice.jobDisk(job.id);
    expect(disk.outputs).toBeGreaterThan(0);

    await expect(bob.deleteJob(job.id)).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
    await expect(bob.jobDisk(job.id)).rejects.toMatchObject({ status: 404 });
    expect(rowsOf(job.id, replicas).jobs).toBe(1);

    expect(await alice.deleteJob(job.id)).toEqual({ id: job.id, status: 'completed', bytes: disk.outputs + disk.results });
    expect(rowsOf(job.id, replicas)).toEqual({ jobs: 0, tasks: 0, replicas: 0, results: 0, outputs: 0 });
    for (const call of [() => alice.getJob(job.id), () => alice.deleteJob(job.id), () => alice.jobDisk(job.id), () => alice.result(job.id, 'y')]) {
      await expect(call()).rejects.toMatchObject({ status: 404, code: 'NOT_FOUND' });
    }
    expect((await alice.listJobs()).map((j) => j.id)).not.toContain(job.id);

    // An admin deletes anyone's job.
    const other = await completedJob(bob, 2);
    expect(await admin.deleteJob(other.job.id)).toMatchObject({ id: other.job.id, status: 'completed' });
    await expect(bob.getJob(other.job.id)).rejects.toBeInstanceOf(ApiError);
  });

  it('cancels a running job first: the worker holding its lease is told to stop, and the job is gone', async () => {
    const m = await alice.uploadModel(mlpModel(4, 8, 3, 3));
    const d = await alice.uploadDataset(writeNpy('float32', [4, 4], floatData(3, 16)));
    const job = await alice.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, replicas: 2, canaryRate: 0 });
    const socket = connect(server.url, { transports: ['websocket'], forceNew: true });
    try {
      await new Promise<void>((resolve) => socket.on('connect', () => resolve()));
      expect((await socket.emitWithAck('worker:hello', { kind: 'node', backends: ['cpu'] })).ok).toBe(true);
      const { tasks } = await socket.emitWithAck('work:request', { slots: 2 }) as { tasks: TaskAssignment[] };
      expect(tasks.map((t) => t.jobId)).toEqual([job.id, job.id]);
      const cancelled = new Promise<string[]>((resolve) => socket.on('task:cancel', resolve));
      expect(await alice.deleteJob(job.id)).toMatchObject({ id: job.id, status: 'cancelled' });
      expect((await cancelled).sort()).toEqual(tasks.map((t) => t.replicaId).sort());
      await expect(alice.getJob(job.id)).rejects.toMatchObject({ status: 404 });
      expect(rowsOf(job.id, tasks.map((t) => t.replicaId))).toEqual({ jobs: 0, tasks: 0, replicas: 0, results: 0, outputs: 0 });
      // A late answer for a withdrawn lease of a deleted job is refused, not a crash.
      const late = await socket.emitWithAck('task:result', {
        replicaId: tasks[0]!.replicaId, outputs: [{ name: 'y', dtype: 'float32', dims: [2, 3], data: new Uint8Array(24) }], backend: 'cpu', runMs: 1,
      });
      expect(late).toMatchObject({ ok: false, error: { code: 'LEASE_NOT_HELD' } });
    } finally {
      socket.disconnect();
    }
  });

  it('keeps only the outputs a result is once a job ends, and every one for a job that asks to keep them', async () => {
    const plain = await completedJob(alice, 4);
    const kept = await completedJob(alice, 5, { keepReplicaOutputs: true });
    const before = await alice.result(plain.job.id, 'y');
    const outputsOf = (jobId: string) => count(`SELECT COUNT(*) AS n FROM replica_outputs o JOIN replicas r ON r.id = o.replica_id WHERE r.job_id = ?`, jobId);
    const referenced = (jobId: string) => count(`SELECT COUNT(*) AS n FROM replica_outputs o JOIN replicas r ON r.id = o.replica_id
      JOIN task_results tr ON tr.task_id = r.task_id AND tr.replica_id = r.id WHERE r.job_id = ?`, jobId);
    const keptBefore = outputsOf(kept.job.id);
    expect(outputsOf(plain.job.id)).toBeGreaterThanOrEqual(8);
    const diskBefore = await alice.jobDisk(plain.job.id);

    const swept = retention.sweep();
    expect(swept.prunedJobs).toContain(plain.job.id);
    expect(swept.prunedJobs).not.toContain(kept.job.id);
    // Four tasks, each with the one replica its result is.
    expect(outputsOf(plain.job.id)).toBe(4);
    expect(referenced(plain.job.id)).toBe(4);
    expect(outputsOf(kept.job.id)).toBe(keptBefore);
    expect(await alice.result(plain.job.id, 'y')).toEqual(before);
    const diskAfter = await alice.jobDisk(plain.job.id);
    expect(diskAfter.outputs).toBeLessThan(diskBefore.outputs);
    expect(await alice.jobDisk(kept.job.id)).toMatchObject({ keepReplicaOutputs: true });
    await alice.deleteJob(plain.job.id);
    await alice.deleteJob(kept.job.id);
  });

  it('removes models and data sets, rows and files, once no job has used them for the grace period', async () => {
    const a = await completedJob(alice, 6);
    // Bob runs the same model on other data: the model is shared, the data sets are not.
    const d = await bob.uploadDataset(writeNpy('float32', [4, 4], floatData(60, 16)));
    const workers = startWorkers(server.url, 2, 2, { bind: loopbacks });
    const b = await bob.createJob({ model: a.model, inputs: { x: d.hash }, batchSize: 2, replicas: 2, adaptive: false, canaryRate: 0 });
    expect((await bob.waitJob(b.id, undefined, 50)).status).toBe('completed');
    await workers.stop();
    const disk = await alice.jobDisk(a.job.id);
    expect(disk.files).toEqual([
      { kind: 'model', hash: a.model, size: expect.any(Number), shared: true },
      { kind: 'dataset', hash: a.dataset, size: expect.any(Number), shared: false },
    ]);

    await alice.deleteJob(a.job.id);
    retention.sweep();
    clock.advance(HOUR - 1);
    retention.sweep();
    expect(fs.existsSync(blobFile(a.dataset))).toBe(true);
    clock.advance(1);
    const swept = retention.sweep();
    expect(swept.removedDatasets).toContain(a.dataset);
    expect(swept.removedModels).not.toContain(a.model);
    expect(fs.existsSync(blobFile(a.dataset))).toBe(false);
    expect(count('SELECT COUNT(*) AS n FROM datasets WHERE hash = ?', a.dataset)).toBe(0);
    // The model Bob's job still uses stays, rows, file and public route.
    expect(fs.existsSync(blobFile(a.model))).toBe(true);
    expect((await fetch(`${server.url}/models/${a.model}`)).status).toBe(200);

    await bob.deleteJob(b.id);
    retention.sweep();
    clock.advance(HOUR);
    expect(retention.sweep()).toMatchObject({ removedModels: [a.model], removedDatasets: [d.hash] });
    expect(fs.existsSync(blobFile(a.model))).toBe(false);
    expect(count('SELECT COUNT(*) AS n FROM models WHERE hash = ?', a.model)).toBe(0);
    expect((await fetch(`${server.url}/models/${a.model}`)).status).toBe(404);
  });

  it('tabgrid submit --keep-replica-outputs, status with the disk a job holds, and delete', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-retention-cli-'));
    try {
      const tabgrid = (...args: string[]) => promisify(execFile)(process.execPath, [BIN, ...args, '--server', server.url, '--api-key', server.apiKey], { cwd: dir });
      fs.writeFileSync(path.join(dir, 'model.onnx'), mlpModel(4, 8, 3, 9));
      fs.writeFileSync(path.join(dir, 'x.npy'), writeNpy('float32', [4, 4], floatData(9, 16)));
      const id = (await tabgrid('submit', 'model.onnx', '--inputs', 'x.npy', '--batch', '2', '--canary-rate', '0', '--keep-replica-outputs', '--detach')).stdout.trim();
      expect(await admin.jobDisk(id)).toMatchObject({ jobId: id, keepReplicaOutputs: true, outputs: 0 });
      const status = (await tabgrid('status', id)).stdout;
      expect(status).toMatch(new RegExp(`job ${id} \\(model\\.onnx\\): running`));
      expect(status).toMatch(/disk \d+(\.\d)? (B|KiB) its own · outputs 0 B \(every replica's kept\) · results 0 B/);
      expect(JSON.parse((await tabgrid('status', id, '--json')).stdout)).toMatchObject({ id, disk: { jobId: id, files: [{ kind: 'model' }, { kind: 'dataset' }] } });
      const deleted = await tabgrid('delete', id);
      expect(deleted.stderr).toContain(`deleted job ${id} (cancelled)`);
      await expect(admin.getJob(id)).rejects.toMatchObject({ status: 404 });
      await expect(tabgrid('delete', id)).rejects.toMatchObject({ stderr: expect.stringContaining('NOT_FOUND') });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('deletes finished jobs the retention\'s days after they ended, and leaves running ones', async () => {
    const done = await completedJob(alice, 7);
    const m = await alice.uploadModel(mlpModel(4, 8, 3, 8));
    const d = await alice.uploadDataset(writeNpy('float32', [4, 4], floatData(8, 16)));
    const running = await alice.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, canaryRate: 0 });
    clock.advance(2 * DAY - 1);
    expect(retention.sweep().deletedJobs).not.toContain(done.job.id);
    expect((await alice.getJob(done.job.id)).status).toBe('completed');
    clock.advance(1);
    expect(retention.sweep().deletedJobs).toEqual([done.job.id]);
    await expect(alice.getJob(done.job.id)).rejects.toMatchObject({ status: 404 });
    expect(rowsOf(done.job.id, []).tasks).toBe(0);
    clock.advance(100 * DAY);
    retention.sweep();
    expect((await alice.getJob(running.id)).status).toBe('running');
  });

  it('a server started with retainDays (tabgrid serve --retain-days) deletes finished jobs on its own periodic sweep', async () => {
    const own = new FakeClock();
    const other = await startTestServer({ clock: own, config: { retainDays: 1, retentionSweepMs: 20 } });
    try {
      const api = new TabGridClient(other.url, other.apiKey);
      const m = await api.uploadModel(mlpModel(4, 8, 3, 10));
      const d = await api.uploadDataset(writeNpy('float32', [4, 4], floatData(10, 16)));
      const job = await api.createJob({ model: m.hash, inputs: { x: d.hash }, batchSize: 2, canaryRate: 0 });
      expect((await api.cancelJob(job.id)).status).toBe('cancelled');
      own.advance(DAY);
      // The sweep runs on the server's own timer: the job is gone once it has.
      for (let gone = false; !gone;) {
        gone = await api.getJob(job.id).then(() => false, (err: ApiError) => err.status === 404);
        if (!gone) await new Promise((r) => setTimeout(r, 20));
      }
      expect((await api.listJobs()).map((j) => j.id)).not.toContain(job.id);
    } finally {
      await other.close();
    }
  });
});
