// @vitest-environment node
/**
 * The researchers' dashboard in Chromium, following jobs live over socket.io (the page never reloads):
 * a bad key is refused; a job that fails shows its reason; a job runs from submission to completion on a
 * browser tab and a headless worker, with its progress, ETA, throughput chart, the workers and their
 * adapters, and the agreement between their results; its output downloads from the page and equals
 * onnxruntime-node's; a running job is cancelled from the page.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import { NodeRunner } from '../../cli/node-runner.js';
import { type Runner, WorkLoop } from '../../client/net/work-loop.js';
import { compareOutputs } from '../../shared/compare.js';
import { writeNpy } from '../../shared/npy.js';
import { launchChromium, watchProblems } from '../helpers/browser.js';
import { ensureClientBuilt } from '../helpers/build-client.js';
import { floatData, mlpModel, reshapeFailModel } from '../helpers/models.js';
import { startTestServer } from '../helpers/server.js';
import { npyTensor, reference } from '../helpers/workers.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SCREENSHOT = path.join(ROOT, 'test-results', 'dashboard.png');
const TASKS = 24;

/** A headless worker whose runner is `wrap`ped: slowed down (so progress can be watched) or failing. */
function worker(url: string, wrap: (inner: Runner) => Runner): { loop: WorkLoop; stop(): Promise<void> } {
  const inner = new NodeRunner();
  const loop = new WorkLoop({ serverUrl: url, runner: wrap(inner), hello: { kind: 'node', backends: ['cpu'] } });
  loop.start();
  return { loop, async stop() { loop.stop(); await inner.close(); } };
}

const slow = (ms: number) => (inner: Runner): Runner => ({
  async run(task, url) { const out = await inner.run(task, url); await new Promise((r) => setTimeout(r, ms)); return out; },
});
const failing = (message: string) => (): Runner => ({ run: () => Promise.reject(new Error(message)) });

describe('researchers\' dashboard (Chromium, real server)', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let api: ApiClient;
  let browser: Browser;
  let page: Page;
  let problems: string[];
  let navigations = 0;
  const model = mlpModel(16, 64, 4, 21);
  let modelHash = '';

  const card = (jobId: string) => page.locator(`article.job[data-job-id="${jobId}"]`);

  async function submit(tasks: number, seed: number, name: string, replicas = 1) {
    const x = writeNpy('float32', [tasks * 8, 16], floatData(seed, tasks * 8 * 16));
    const data = await api.uploadDataset(x);
    const job = await api.createJob({ model: modelHash, inputs: { x: data.hash }, batchSize: 8, replicas, adaptive: false, canaryRate: 0, name });
    return { job, x };
  }

  beforeAll(async () => {
    await ensureClientBuilt();
    // One failure fails a task, so a failing worker fails its job quickly.
    server = await startTestServer({ config: { maxFailures: 1 } });
    api = new ApiClient(server.url, server.apiKey);
    modelHash = (await api.uploadModel(model)).hash;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 1280, height: 900 }, acceptDownloads: true });
    page = await context.newPage();
    problems = watchProblems(page);
    page.on('framenavigated', (f) => { if (f === page.mainFrame()) navigations++; });
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('refuses a wrong key and connects with a good one', async () => {
    await page.goto(`${server.url}/dashboard`);
    await page.fill('#api-key', 'tg_wrong');
    await page.click('#key-form button[type=submit]');
    await expect.poll(() => page.textContent('#key-problem')).toContain('refused this key: unknown API key');
    expect(await page.isVisible('#board')).toBe(false);
    await page.fill('#api-key', server.apiKey);
    await page.click('#key-form button[type=submit]');
    await page.waitForSelector('#board:not([hidden])');
    await expect.poll(() => page.textContent('#conn')).toBe('Live');
  });

  it('shows a failed job with its reason, in the server\'s words', async () => {
    // A volunteer's error does not fail a job: the server runs the task itself, and this model fails there too.
    const bad = worker(server.url, failing('simulated: the worker ran out of memory'));
    try {
      const doomed = (await api.uploadModel(reshapeFailModel(16))).hash;
      const data = await api.uploadDataset(writeNpy('float32', [16, 16], floatData(1, 16 * 16)));
      const job = await api.createJob({ model: doomed, inputs: { x: data.hash }, batchSize: 8, replicas: 1, adaptive: false, canaryRate: 0, name: 'doomed' });
      await expect.poll(() => card(job.id).getAttribute('data-status'), { timeout: 15_000 }).toBe('failed');
      await expect.poll(() => card(job.id).locator('.failures').textContent()).toContain('the server\'s own run failed too');
      expect(await card(job.id).locator('.failures').textContent()).not.toContain('simulated');
    } finally {
      await bad.stop();
    }
  });

  it('follows a job from submission to download, live', async () => {
    const { job, x } = await submit(TASKS, 2, 'embeddings-batch-7', 2);
    // Submitted with no worker online: it appears, running, at 0.
    await expect.poll(() => card(job.id).getAttribute('data-status'), { timeout: 10_000 }).toBe('running');
    expect(await card(job.id).locator('.bar').getAttribute('aria-valuenow')).toBe('0');

    // A volunteer tab (wasm) and a slowed headless worker: every task on both (two replicas).
    const tab = await browser.newPage();
    const tabProblems = watchProblems(tab);
    await tab.goto(`${server.url}/?autostart=1&backend=wasm`);
    const cpu = worker(server.url, slow(400));
    try {
      await expect.poll(async () => Number(await card(job.id).locator('.bar').getAttribute('aria-valuenow')), { timeout: 30_000 }).toBeGreaterThan(0);
      const midway = await card(job.id).locator('.nums').textContent();
      expect(midway).toMatch(/ETA /);
      await expect.poll(() => page.locator('#workers tr').count(), { timeout: 10_000 }).toBe(2);
      const workers = await page.locator('#workers').textContent();
      expect(workers).toContain('browser');
      expect(workers).toContain('swiftshader');
      expect(workers).toContain('node');
      // Mid-job: the chart has points, the job its ETA; this is the moment worth a screenshot.
      await expect.poll(() => page.locator('#chart polyline').count(), { timeout: 15_000 }).toBe(1);
      fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
      await page.screenshot({ path: SCREENSHOT, fullPage: true });
      await expect.poll(() => card(job.id).getAttribute('data-status'), { timeout: 60_000 }).toBe('completed');
    } finally {
      await cpu.stop();
      await tab.close();
    }
    expect(tabProblems).toEqual([]);
    await expect.poll(() => card(job.id).locator('.bar').getAttribute('aria-valuenow')).toBe(String(TASKS));
    await expect.poll(() => page.textContent('#t-agreement'), { timeout: 10_000 }).toBe('100%');
    await expect.poll(() => card(job.id).locator('.verify').textContent(), { timeout: 10_000 }).toContain('replicas per task 2.00');

    const [download] = await Promise.all([page.waitForEvent('download'), card(job.id).locator('button[data-output="y"]').click()]);
    expect(download.suggestedFilename()).toBe(`${job.id}-y.npy`);
    const got = npyTensor('y', new Uint8Array(fs.readFileSync(await download.path())));
    const want = await reference(model, { x });
    expect(got.dims).toEqual([TASKS * 8, 4]);
    expect(compareOutputs([got], [want.y!], { rtol: 1e-3, atol: 1e-4 })).toEqual({ verdict: 'agree' });
  }, 120_000);

  it('cancels a running job from the page (two clicks)', async () => {
    const { job } = await submit(4, 3, 'mistake');
    const cancel = card(job.id).locator('button[data-action="cancel"]');
    await cancel.click();
    expect(await cancel.textContent()).toBe('Click again to cancel');
    expect((await api.getJob(job.id)).status).toBe('running');
    await cancel.click();
    await expect.poll(() => card(job.id).getAttribute('data-status'), { timeout: 5000 }).toBe('cancelled');
    expect((await api.getJob(job.id)).status).toBe('cancelled');
    expect(navigations).toBe(1);
    expect(problems).toEqual([]);
  });
});
