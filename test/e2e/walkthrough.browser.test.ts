// @vitest-environment node
/**
 * The README's walkthrough as a newcomer does it: `tabgrid serve`, one browser tab and one headless worker
 * volunteering, `tabgrid submit` with two replicas on a model and data set made outside the repo, then
 * `tabgrid results`; the outputs equal onnxruntime-node's, each task confirmed by the server's own run.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { launchChromium, watchProblems } from '../helpers/browser.js';
import { ensureClientBuilt } from '../helpers/build-client.js';
import { floatData, mlpModel } from '../helpers/models.js';
import { BIN, startServe } from '../helpers/serve-process.js';
import { npyTensor, reference } from '../helpers/workers.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tabgrid-walk-'));
const procs: ChildProcess[] = [];
let browser: Browser;
let url = '';

beforeAll(async () => {
  await ensureClientBuilt();
  const serve = await startServe(dir);
  procs.push(serve.process);
  url = serve.url;
  browser = await launchChromium();
});

afterAll(async () => {
  await browser?.close();
  for (const p of procs) p.kill('SIGTERM');
  fs.rmSync(dir, { recursive: true, force: true });
});

it('computes a job with one browser tab and one headless worker, each task confirmed by the server', async () => {
  const page = await browser.newPage();
  const problems = watchProblems(page);
  await page.goto(`${url}/?autostart=1`);
  procs.push(spawn(process.execPath, [BIN, 'worker', '--server', url, '--ephemeral'], { cwd: dir, stdio: 'ignore' }));

  const model = mlpModel(8, 32, 4, 5);
  const x = writeNpy('float32', [24, 8], floatData(13, 24 * 8));
  fs.writeFileSync(path.join(dir, 'model.onnx'), model);
  fs.writeFileSync(path.join(dir, 'x.npy'), x);
  const env = { ...process.env, TABGRID_SERVER: url, TABGRID_API_KEY: '' };
  const run = promisify(execFile);
  const submitted = await run(process.execPath, [BIN, 'submit', 'model.onnx', '--inputs', 'x.npy', '--batch', '6', '--replicas', '2'], { cwd: dir, env });
  expect(submitted.stderr).toContain('completed');
  const jobId = submitted.stdout.trim().split('\n').at(-1)!;
  await run(process.execPath, [BIN, 'results', jobId, '--out', 'out'], { cwd: dir, env });

  const got = npyTensor('y', new Uint8Array(fs.readFileSync(path.join(dir, 'out', 'y.npy'))));
  const want = await reference(model, { x });
  expect(got.dims).toEqual([24, 4]);
  expect(compareOutputs([got], [want.y], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
  // Both volunteers are new and on one machine: nobody could vouch for them, so the server settled each of the 4
  // tasks with its own run (a check, or the known answer of the job's canary task).
  const key = fs.readFileSync(path.join(dir, 'data', 'admin.key'), 'utf8').trim();
  const runs = await (await fetch(`${url}/api/v1/stats/server-runs`, { headers: { authorization: `Bearer ${key}` } })).json() as { checks: number; canaries: number };
  expect(runs.checks + runs.canaries).toBe(4);
  expect(problems).toEqual([]);
});
