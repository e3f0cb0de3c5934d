/**
 * The `tabgrid` command as a user runs it: serve (its data folder private, the admin key in a file, not on the
 * screen), worker, submit, status, wait, results, keys, rerun.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../../server/app.js';
import { configSchema } from '../../server/config.js';
import { systemClock } from '../../server/scheduler/clock.js';
import { BlobStore } from '../../server/store/blob-store.js';
import { SqliteStore } from '../../server/store/sqlite-store.js';
import { taskId } from '../../server/store/store.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { floatData, mlpModel, twoInputModel } from '../helpers/models.js';
import { BIN, startServe } from '../helpers/serve-process.js';
import { npyTensor, reference, startWorkers } from '../helpers/workers.js';

const run = promisify(execFile);

describe('the tabgrid CLI', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-cli-'));
  const procs: ChildProcess[] = [];
  let url = '';
  let env: NodeJS.ProcessEnv;

  const tabgrid = (...args: string[]) => run(process.execPath, [BIN, ...args], { env, cwd: dir });

  let serveOutput = '';

  beforeAll(async () => {
    // A data folder that exists already, open to everyone, as an older version or a careless mkdir left it.
    fs.mkdirSync(path.join(dir, 'data'), { mode: 0o755 });
    fs.chmodSync(path.join(dir, 'data'), 0o755);
    const serve = await startServe(dir);
    procs.push(serve.process);
    url = serve.url;
    serveOutput = serve.output;
    env = { ...process.env, TABGRID_SERVER: url, TABGRID_API_KEY: '' };
    // Two volunteers, one of them donating a single core.
    for (const threads of [[], ['--threads', '1']]) procs.push(spawn(process.execPath, [BIN, 'worker', '--server', url, '--ephemeral', ...threads], { cwd: dir, env, stdio: 'ignore' }));
  });
  afterAll(() => {
    for (const p of procs) p.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the admin key in the data folder, readable by its owner only, and prints where, not the key', () => {
    const file = path.join(dir, 'data', 'admin.key');
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const key = fs.readFileSync(file, 'utf8').trim();
    expect(key).toMatch(/^tg_[0-9a-f]{48}$/);
    expect(serveOutput).not.toContain(key);
    expect(serveOutput).not.toMatch(/tg_[0-9a-f]{8}/);
    expect(serveOutput).toContain(`admin API key:   in ${file} (mode 0600, created now)`);
  });

  it('submits, waits, reports status and downloads results that match onnxruntime-node', async () => {
    const model = mlpModel(4, 8, 3, 77);
    fs.writeFileSync(path.join(dir, 'model.onnx'), model);
    const x = writeNpy('float32', [21, 4], floatData(21, 84));
    fs.writeFileSync(path.join(dir, 'x.npy'), x);
    // The key comes from ./data/admin.key, as for a researcher on the server's machine.
    const submitted = await tabgrid('submit', 'model.onnx', '--inputs', 'x.npy', '--batch', '4', '--detach');
    const jobId = submitted.stdout.trim().split('\n').at(-1)!;
    expect(jobId).toMatch(/^job-[0-9a-f]+$/);
    const waited = await tabgrid('wait', jobId);
    expect(waited.stderr).toContain('completed');
    const status = JSON.parse((await tabgrid('status', jobId, '--json')).stdout);
    expect(status).toMatchObject({ id: jobId, status: 'completed', items: 21, tasks: { total: 6, done: 6 } });
    const results = await tabgrid('results', jobId, '--out', 'out');
    expect(results.stdout.trim()).toBe(path.join('out', 'y.npy'));
    const got = npyTensor('y', new Uint8Array(fs.readFileSync(path.join(dir, 'out', 'y.npy'))));
    const want = await reference(model, { x });
    expect(got.dims).toEqual([21, 3]);
    expect(compareOutputs([got], [want.y], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
  });

  it('keeps the data folder private: folders 0700, files 0600, the database and the blobs included', () => {
    const modes: Record<string, string> = {};
    const walk = (p: string) => {
      const st = fs.statSync(p);
      modes[path.relative(dir, p) || '.'] = (st.mode & 0o777).toString(8);
      if (st.isDirectory()) for (const f of fs.readdirSync(p)) walk(path.join(p, f));
    };
    walk(path.join(dir, 'data'));
    // The submit above stored a model and a data set.
    expect(Object.keys(modes).filter((p) => p.startsWith(path.join('data', 'blobs', ''))).length).toBeGreaterThanOrEqual(4);
    expect(modes[path.join('data', 'tabgrid.sqlite')]).toBe('600');
    const wrong = Object.entries(modes).filter(([p, m]) => m !== (fs.statSync(path.join(dir, p)).isDirectory() ? '700' : '600'));
    expect(wrong).toEqual([]);
  });

  it('lists, creates and revokes API keys; a revoked key is refused at once', async () => {
    const created = await tabgrid('keys', 'create', 'bob');
    const bobKey = created.stdout.trim();
    expect(bobKey).toMatch(/^tg_[0-9a-f]{48}$/);
    const id = /created researcher key (key-[0-9a-f]+) \(bob\); it is shown only now/.exec(created.stderr)?.[1];
    expect(id).toBeDefined();
    const asBob = (...args: string[]) => run(process.execPath, [BIN, ...args, '--api-key', bobKey], { env, cwd: dir });
    expect((await asBob('status')).stdout.trim()).toBe('no jobs');
    const listed = (await tabgrid('keys', 'list')).stdout.split('\n');
    expect(listed[0]).toMatch(/^ID\s+NAME\s+ROLE\s+WEIGHT\s+CREATED \(UTC\)\s+REVOKED \(UTC\)$/);
    expect(listed.find((l) => l.startsWith(id!))).toMatch(/\s+bob\s+researcher\s+1\s+\d{4}-\d\d-\d\d \d\d:\d\d\s+-$/);
    expect((await tabgrid('keys', 'weight', id!, '3')).stderr).toMatch(/now has weight 3/);
    expect(listed.some((l) => /\s+admin\s+admin\s+/.test(l))).toBe(true);
    expect(listed.join('\n')).not.toContain(bobKey);

    const refused = await asBob('keys', 'list').catch((e) => e);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('listing keys needs an admin key (UNAUTHORIZED)');
    expect((await tabgrid('keys', 'revoke', id!)).stderr).toContain(`revoked key ${id} (bob)`);
    const after = await asBob('status').catch((e) => e);
    expect(after.code).toBe(1);
    expect(after.stderr).toContain('unknown or revoked API key (UNAUTHORIZED)');
    const keys = JSON.parse((await tabgrid('keys', 'list', '--json')).stdout) as { id: string; admin: boolean; revokedAt: number | null }[];
    expect(keys.find((k) => k.id === id)?.revokedAt).toEqual(expect.any(Number));
    const last = keys.find((k) => k.admin)!;
    const kept = await tabgrid('keys', 'revoke', last.id).catch((e) => e);
    expect(kept.code).toBe(1);
    expect(kept.stderr).toContain('is the last admin key');
  });

  it('follows a job with a progress bar and takes a folder of inputs for a multi-input model', async () => {
    fs.writeFileSync(path.join(dir, 'two.onnx'), twoInputModel());
    fs.mkdirSync(path.join(dir, 'in'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'in', 'a.npy'), writeNpy('float32', [5, 4], floatData(1, 20)));
    fs.writeFileSync(path.join(dir, 'in', 'b.npy'), writeNpy('float32', [5, 4], floatData(2, 20)));
    const res = await tabgrid('submit', 'two.onnx', '--inputs', 'in', '--batch', '2', '--replicas', '2', '--rtol', '1e-4');
    expect(res.stderr).toMatch(/\[#+\] 100% 3\/3 tasks/);
    expect(res.stderr).toContain('completed');
    expect(res.stdout.trim()).toMatch(/^job-/);
  });

  it('refuses inputs that do not fit at submit, naming the input and both shapes', async () => {
    fs.writeFileSync(path.join(dir, 'bad.npy'), writeNpy('float32', [3, 7], new Uint8Array(84)));
    const err = await tabgrid('submit', 'model.onnx', '--inputs', 'bad.npy').catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('input x: the data has shape [3, 7] (first axis = items), the model takes [batch, 4]');
  });

  it('says clearly when the server cannot be reached', async () => {
    const err = await run(process.execPath, [BIN, 'status', 'job-x', '--server', 'http://127.0.0.1:1'], { cwd: dir }).catch((e) => e);
    expect(err.code).toBe(1);
    expect(err.stderr).toContain('cannot reach the TabGrid server at http://127.0.0.1:1');
  });
});

describe('tabgrid worker identity', () => {
  it('keeps its volunteer token in a file between runs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-token-'));
    const { startTestServer } = await import('../helpers/server.js');
    const server = await startTestServer();
    try {
      const file = path.join(dir, 'token');
      const once = async () => {
        const p = spawn(process.execPath, [BIN, 'worker', '--server', server.url, '--token-file', file], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        const id = await new Promise<string>((resolve) => p.stderr!.on('data', (d) => {
          err += d;
          const m = /as volunteer (vol-[0-9a-f]+)/.exec(err);
          if (m) resolve(m[1]);
        }));
        p.kill('SIGTERM');
        return id;
      };
      const first = await once();
      expect(fs.statSync(file).mode & 0o777).toBe(0o600);
      expect(await once()).toBe(first);
    } finally {
      await server.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('tabgrid status and rerun for tainted tasks', () => {
  it('reports tainted tasks of a finished job and recomputes them with rerun --tainted', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-rerun-'));
    // Built here rather than by startTestServer: the test marks a task tainted through the server's own store,
    // as the audit does when a volunteer who helped accept it is quarantined after the job ended.
    const store = new SqliteStore(path.join(dir, 'tabgrid.sqlite'));
    const app = createApp({
      store, blobs: new BlobStore(path.join(dir, 'blobs')), clock: systemClock, log: pino({ level: 'silent' }),
      config: configSchema.parse({ port: 0, dataDir: dir, logLevel: 'silent' }),
    });
    const key = app.keys.ensureAdmin(dir)!;
    const url = `http://127.0.0.1:${await app.start()}`;
    const workers = startWorkers(url, 2, 1);
    const env = { ...process.env, TABGRID_SERVER: url, TABGRID_API_KEY: key };
    const tabgrid = (...args: string[]) => run(process.execPath, [BIN, ...args], { env, cwd: dir });
    try {
      const model = mlpModel(4, 8, 3, 5);
      const x = writeNpy('float32', [6, 4], floatData(6, 24));
      fs.writeFileSync(path.join(dir, 'model.onnx'), model);
      fs.writeFileSync(path.join(dir, 'x.npy'), x);
      const jobId = (await tabgrid('submit', 'model.onnx', '--inputs', 'x.npy', '--batch', '2', '--canary-rate', '0')).stdout.trim();
      expect(store.getJob(jobId)?.status).toBe('completed');
      expect((await tabgrid('rerun', jobId, '--tainted')).stderr).toContain(`job ${jobId} has no tainted tasks; nothing to rerun`);

      store.updateTask(taskId(jobId, 0, 1), { tainted: true });
      const status = (await tabgrid('status', jobId)).stdout;
      expect(status).toContain(`1 task tainted (accepted with a volunteer since quarantined): run \`tabgrid rerun ${jobId} --tainted\``);
      expect(JSON.parse((await tabgrid('status', jobId, '--json')).stdout)).toMatchObject({ tainted: 1 });

      const rerun = await tabgrid('rerun', jobId, '--tainted');
      expect(rerun.stderr).toContain(`reopened 1 tainted task of job ${jobId}`);
      expect(rerun.stderr).toMatch(/\[#+\] 100% 3\/3 tasks/);
      expect(rerun.stderr).toMatch(new RegExp(`job ${jobId} .*: completed`));
      expect(store.getJob(jobId)?.status).toBe('completed');
      await tabgrid('results', jobId, '--out', 'out');
      const got = npyTensor('y', new Uint8Array(fs.readFileSync(path.join(dir, 'out', 'y.npy'))));
      expect(compareOutputs([got], [(await reference(model, { x })).y], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });

      const missing = await tabgrid('rerun', jobId).catch((e) => e);
      expect(missing.code).toBe(1);
      expect(missing.stderr).toContain("required option '--tainted' not specified");
    } finally {
      await workers.stop();
      await app.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
