/**
 * The `tabgrid` command as a user runs it: serve, worker, submit, status, wait, results.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { floatData, mlpModel, twoInputModel } from '../helpers/models.js';
import { BIN, startServe } from '../helpers/serve-process.js';
import { npyTensor, reference } from '../helpers/workers.js';

const run = promisify(execFile);

describe('the tabgrid CLI', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-cli-'));
  const procs: ChildProcess[] = [];
  let url = '';
  let env: NodeJS.ProcessEnv;

  const tabgrid = (...args: string[]) => run(process.execPath, [BIN, ...args], { env, cwd: dir });

  beforeAll(async () => {
    const serve = await startServe(dir);
    procs.push(serve.process);
    url = serve.url;
    const out = serve.output;
    expect(out).toMatch(/admin API key:\s+tg_[0-9a-f]{48}/);
    env = { ...process.env, TABGRID_SERVER: url, TABGRID_API_KEY: '' };
    for (let i = 0; i < 2; i++) procs.push(spawn(process.execPath, [BIN, 'worker', '--server', url, '--ephemeral'], { cwd: dir, env, stdio: 'ignore' }));
  });
  afterAll(() => {
    for (const p of procs) p.kill('SIGTERM');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the admin key in the data folder, readable by its owner only', () => {
    const stat = fs.statSync(path.join(dir, 'data', 'admin.key'));
    expect(stat.mode & 0o777).toBe(0o600);
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
